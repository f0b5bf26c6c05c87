import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/cli.js';
import { stepPid } from '../helpers/journal.js';
import { fakeJobEnsemble } from './fake-jobs.js';
import { alive, groupMembers, statuses } from './helpers.js';

const tmp = tempDirs('themis-fakejob-');

/** What every stopped job must leave: no step running, every run queued at step 0 with no restart used, no claim. */
function expectPutBack(root: string, n: number, pids: number[]) {
  for (const pid of pids) expect(alive(pid)).toBe(false);
  for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
  expect(statuses(root, n).map((s) => [s.status, s.step, s.restarts])).toEqual(Array.from({ length: n }, () => ['queued', 0, 0]));
  for (let i = 1; i <= n; i++) expect(fs.existsSync(path.join(root, 'runs', String(i), '.themis', 'claim'))).toBe(false);
}

function summaryOf(root: string): { jobId: string | null; signal: string | null; exitCode: number } {
  const logs = path.join(root, '.themis_setup', 'logs');
  const f = fs.readdirSync(logs).find((n) => n.endsWith('.summary.json'))!;
  return JSON.parse(fs.readFileSync(path.join(logs, f), 'utf8'));
}

describe('Flux: a batch job cancelled (against a fake flux behaving as flux.md says)', () => {
  it('fake flux: the batch script has no FLUX_JOB_ID, the job id comes from `flux getattr jobid`; `flux cancel` sends SIGTERM then at once SIGHUP: every run back in queued, exit 143 or 129', async () => {
    const e = fakeJobEnsemble(tmp, ['--scheduler', 'flux'], 3);
    const { jobId } = e.submit();
    const pids = await e.allRunning(3, stepPid);
    expect(JSON.parse(fs.readFileSync(path.join(e.runDir(1), '.themis', 'status.json'), 'utf8')).jobId).toBe(jobId);
    const cancel = e.command(['flux', 'cancel', jobId]);
    expect(cancel.status, cancel.stderr).toBe(0);
    // Both arrive in the same instant; whichever the packer handles first sets the exit code
    // (pending together, Node handles them in signal-number order: SIGHUP first).
    const code = await e.exitCode(jobId);
    expect([143, 129], e.output(jobId)).toContain(code);
    expect(e.output(jobId)).toContain('received SIGTERM');
    expect(e.output(jobId)).toContain('received SIGHUP');
    expectPutBack(e.root, 3, pids);
    expect(summaryOf(e.root)).toMatchObject({ jobId, signal: code === 143 ? 'SIGTERM' : 'SIGHUP', exitCode: code });
  }, 40_000);
});
