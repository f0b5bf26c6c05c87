import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, runThemis, writeScript } from '../helpers/cli.js';
import { ensureBuilt } from '../api/build.js';

/**
 * A user's session with the built binary: gen, run, look, fix, requeue, run, export, clear.
 * One ensemble walked through in order, so each step sees what the previous one left.
 */
let root: string;
const themis = (...args: string[]) => runThemis(args, { cwd: root });

beforeAll(() => {
  ensureBuilt();
  root = makeTempDir('themis-manage-');
  // Fails for odd x until ./fixed exists; writes its result from inside the run.
  writeScript(
    path.join(root, 'sim.sh'),
    `#!/bin/sh\nx=$(${JSON.stringify(process.execPath)} ${JSON.stringify(path.resolve('dist/bin/themis.js'))} sample x)\n` +
      `if [ $((x % 2)) -eq 1 ] && [ ! -f ${JSON.stringify(path.join(root, 'fixed'))} ]; then echo "x=$x is odd" >&2; exit 5; fi\n` +
      `${JSON.stringify(process.execPath)} ${JSON.stringify(path.resolve('dist/bin/themis.js'))} result set "{\\"square\\": $((x * x))}"\n`,
  );
  fs.writeFileSync(path.join(root, 'samples.csv'), 'x,label\n1,one\n2,two\n3,"three, really"\n4,four\n');
}, 120_000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('a session with the themis binary', () => {
  it('gen, run: odd runs fail; status and progress say so', () => {
    const g = themis('gen', './sim.sh', 'samples.csv', '--no-batch-script', '--scheduler', 'local');
    expect(g.code, g.stderr).toBe(0);
    expect(themis('run', '--cores', '2').code).toBe(0);
    const st = JSON.parse(themis('status', '--json', '--no-allocations').stdout);
    expect(st.counts).toMatchObject({ successful: 2, failed: 2 });
    expect(st.ended.map((e: { id: number; reason: string }) => [e.id, e.reason])).toEqual([
      [1, expect.stringContaining('exit 5')],
      [3, expect.stringContaining('exit 5')],
    ]);
    expect(themis('status', 'failed').stdout).toBe('1 3\n');
    expect(themis('progress').stdout).toContain('100.0% (4/4)');
  });

  it('requeue --status failed after the fix; run again; everything succeeds', () => {
    fs.writeFileSync(path.join(root, 'fixed'), '');
    const r = themis('requeue', '--status', 'failed');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('requeued 2 runs: 1,3');
    expect(themis('status', 'queued', '--count').stdout).toBe('2\n');
    expect(themis('run', '--cores', '2').code).toBe(0);
    expect(themis('status', 'successful', '--count').stdout).toBe('4\n');
  });

  it('write csv has resources, the samples in order and the results the runs stored', () => {
    expect(themis('write', 'csv').stdout).toBe(
      'run_id,status,tasks,cores_per_task,gpus_per_task,x,label,square\n' +
        '1,successful,1,1,0,1,one,1\n2,successful,1,1,0,2,two,4\n3,successful,1,1,0,3,"three, really",9\n4,successful,1,1,0,4,four,16\n',
    );
    expect(themis('display', '3').stdout).toMatch(/3\s+successful\s+runs\/3\s+\S*sim\.sh\s+1x1c\s+x=3 label=three, really\s+\{"square":9\}/);
    expect(themis('rundirs').stdout.trim().split('\n')).toHaveLength(4);
  });

  it('unknown ids exit 2; dequeue of finished runs changes nothing; clear leaves run directories', () => {
    const u = themis('dequeue', '2,7');
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('no such run: 7');
    expect(u.stderr).toContain('run 2 left as it is: already successful');
    expect(themis('clear').code).toBe(0);
    expect(fs.existsSync(path.join(root, '.themis_setup'))).toBe(false);
    expect(fs.readdirSync(path.join(root, 'runs')).sort()).toEqual(['1', '2', '3', '4']);
    expect(fs.existsSync(path.join(root, 'runs', '1', '.themis'))).toBe(false);
    const s = themis('status');
    expect(s.code).toBe(2);
    expect(s.stderr).toContain('themis gen');
  });
});
