import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writePackerHeartbeat, setStop } from '../../src/store/ensemble-state.js';
import { hostName } from '../../src/store/proc.js';
import { recordJobs } from '../../src/store/jobs.js';
import { spawnSync } from 'node:child_process';
import { makeTempDir } from '../helpers/cli.js';
import { cli, writeHandEnsemble, type HandRun } from '../api/helpers.js';

let root: string;
let setupDir: string;

const RUNS: HandRun[] = [
  { sample: { x: '1' }, status: 'successful', result: { y: 2 } },
  { sample: { x: '2' }, status: 'failed', reason: 'exit 3', steps: [{}, { args: ['/bin/false'], tasks: 2 }], step: 1 },
  { sample: { x: '3' }, status: 'queued', reason: 'blocked: needs 64 cores on one node, nodes have 32' },
  { sample: { x: '4' }, status: 'aborted', reason: 'exit 9 is in abort_on' },
  { sample: { x: '5' }, status: 'running' },
  { sample: { x: '6' }, status: 'killed' },
];

beforeEach(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, RUNS);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const S = () => ['--setup-dir', setupDir];

describe('themis status', () => {
  it('overview: counts, progress (aborted counts as completed), blocked runs and why, no packers', async () => {
    const r = await cli(['status', '--no-allocations', ...S()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/successful\s+1\n/);
    expect(r.stdout).toMatch(/queued\s+1\n/);
    expect(r.stdout).toContain('66.7% (4/6)');
    expect(r.stdout).toContain('run 2: failed at step 1: exit 3');
    expect(r.stdout).toContain('1 queued run and no live packer');
    expect(r.stdout).toContain('packers: none live');
    expect(r.stdout).toContain('running:\n  run 5: step 0\n');
    expect(r.stdout).toContain('run 3: needs 64 cores on one node, nodes have 32');
  });

  it('--json is the same report as data', async () => {
    setStop(setupDir, { reason: '3 runs failed, more than max_failed_runs 2', by: 'test', kind: 'max-failed-runs' });
    writePackerHeartbeat(setupDir, {
      packerId: 'p1',
      host: hostName(),
      pid: process.pid,
      pidStart: null,
      jobId: '77',
      allocation: 1,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      running: [5],
      note: 'run 3 needs 64 cores on one node, nodes have 32',
    });
    const r = await cli(['status', '--json', '--no-allocations', ...S()]);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.counts).toEqual({ queued: 1, running: 1, successful: 1, failed: 1, killed: 1, aborted: 1 });
    expect(rep.completed).toBe(4);
    expect(rep.endedCount).toBe(3);
    expect(rep.running).toEqual([{ id: 5, step: 0, host: null, jobId: null, startedAt: null }]);
    expect(rep.ended.map((e: { id: number }) => e.id)).toEqual([2, 4, 6]);
    expect(rep.total).toBe(6);
    expect(rep.packers).toHaveLength(1);
    expect(rep.packers[0]).toMatchObject({ packerId: 'p1', jobId: '77', alive: true, running: [5] });
    expect(rep.blocked.map((b: { reason: string }) => b.reason).join('\n')).toContain('needs 64 cores');
    expect(rep.blocked[0].reason).toContain('stopped');
    const table = await cli(['status', '--no-allocations', ...S()]);
    expect(table.stdout).toMatch(/p1\s+\S+\s+\d+\s+77\s+1\s+[\d.]+ s ago\s+1/);
    expect(table.stdout).toContain('[p1] run 3 needs 64 cores');
  });

  it("shows each allocation's newest job and what the scheduler says of it", async () => {
    const dead = spawnSync('true').pid!;
    const at = new Date().toISOString();
    recordJobs(setupDir, [
      { allocation: 1, jobId: String(dead), scheduler: 'local', submittedAt: at, script: '/x/themis-1.sh', by: 'submit' },
      { allocation: 2, jobId: String(process.pid), scheduler: 'local', submittedAt: at, script: '/x/themis-2.sh', by: 'submit' },
    ]);
    const rep = JSON.parse((await cli(['status', '--json', ...S()])).stdout);
    expect(rep.allocations.map((a: { allocation: number; state: string }) => [a.allocation, a.state])).toEqual([
      [1, 'gone'],
      [2, 'running'],
    ]);
    const table = (await cli(['status', ...S()])).stdout;
    expect(table).toMatch(new RegExp(`allocations:\\n\\s+alloc\\s+job\\s+scheduler\\s+state\\s+submitted\\n\\s+1\\s+${dead}\\s+local\\s+gone`));
  });

  it('NAME… prints matching ids; --count counts them', async () => {
    expect((await cli(['status', 'failed', 'killed', ...S()])).stdout).toBe('2 6\n');
    expect((await cli(['status', 'queued,running', '--count', ...S()])).stdout).toBe('2\n');
    expect((await cli(['status', '--count', ...S()])).stdout).toBe('6\n');
    expect(JSON.parse((await cli(['status', 'successful', '--json', ...S()])).stdout)).toEqual({ ids: [1] });
  });

  it('an unknown status name is a usage error (exit 2) listing the valid ones', async () => {
    const r = await cli(['status', 'done', ...S()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown status "done"');
    expect(r.stderr).toContain('queued, running, successful, failed, killed, aborted');
  });

  it('no ensemble: exit 2 naming the setup directory and `themis gen`', async () => {
    const r = await cli(['status', '--setup-dir', path.join(root, 'nope')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('themis gen');
  });
});

describe('themis progress', () => {
  it('bar, and -v lines per status; --json', async () => {
    const r = await cli(['progress', '-v', ...S()]);
    expect(r.stdout).toContain('aborted runs: 1');
    expect(r.stdout).toContain('(4/6)');
    expect(JSON.parse((await cli(['progress', '--json', ...S()])).stdout)).toMatchObject({ completed: 4, total: 6, percent: 66.7 });
  });
});

describe('themis write / rundirs / display', () => {
  it('write csv to stdout and to a file', async () => {
    const r = await cli(['write', 'csv', ...S()]);
    expect(r.stdout.split('\n')[0]).toBe('run_id,status,tasks,cores_per_task,gpus_per_task,x,y');
    expect(r.stdout.split('\n')[1]).toBe('1,successful,1,1,0,1,2');
    expect(r.stdout.split('\n')[2]).toBe('2,failed,2,1,0,2,');
    const out = path.join(root, 'out.json');
    const w = await cli(['write', 'json', '-o', out, ...S()]);
    expect(w.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toHaveLength(6);
    expect((await cli(['write', 'yaml', ...S()])).stdout).toContain('run_id: 6');
    expect((await cli(['write', 'xml', ...S()])).code).toBe(2);
  });

  it('rundirs lists existing directories; --nonexistent all of them', async () => {
    fs.rmSync(path.join(root, 'runs', '6'), { recursive: true });
    const r = await cli(['rundirs', ...S()]);
    expect(r.stdout.trim().split('\n')).toEqual([1, 2, 3, 4, 5].map((i) => path.join(root, 'runs', String(i))));
    const all = JSON.parse((await cli(['rundirs', '--nonexistent', '--json', ...S()])).stdout);
    expect(all).toHaveLength(6);
    expect(all[5]).toEqual({ id: 6, dir: path.join(root, 'runs', '6') });
  });

  it('display shows status, directory, args, resources, sample and result; a line per step', async () => {
    const r = await cli(['display', '1-2', ...S()]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^run\s+status\s+directory\s+args\s+resources\s+sample\s+result$/);
    expect(lines[1]).toMatch(/^1\s+successful\s+runs\/1\s+\/bin\/true\s+1x1c\s+x=1\s+\{"y":2\}$/);
    expect(lines[2]).toMatch(/^2\s+failed\s+runs\/2\s+ 0 \/bin\/true/);
    expect(lines[3]).toMatch(/^\s+>1 \/bin\/false\s+2x1c/);
    expect(lines).toHaveLength(4);
  });
});
