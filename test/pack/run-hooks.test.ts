import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runThemis } from '../helpers/cli.js';
import { alive, makeEnsemble, readStatusOf, startPack, statuses, waitFor } from './helpers.js';

describe('themis run', () => {
  it('runs the queue here, blocking, and says what happened', () => {
    const e = makeEnsemble(Array.from({ length: 6 }, () => ({ steps: [{ args: ['/bin/true'] }] })));
    const r = runThemis(['--setup-dir', e.setupDir, 'run', '--cores', '2'], { cwd: e.root });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('6 runs successful');
    expect(statuses(e.root, 6).every((s) => s.status === 'successful')).toBe(true);
  }, 30_000);

  it('--detach prints the pid and log; the packer finishes on its own', async () => {
    const e = makeEnsemble(Array.from({ length: 3 }, () => ({ steps: [{ args: ['/bin/true'] }] })));
    const r = runThemis(['--setup-dir', e.setupDir, 'run', '--detach', '--json'], { cwd: e.root });
    expect(r.code, r.stderr).toBe(0);
    const { pid, logFile } = JSON.parse(r.stdout) as { pid: number; logFile: string };
    await waitFor(() => !alive(pid), 20_000, 'detached packer to finish');
    expect(fs.readFileSync(logFile, 'utf8')).toContain('nothing left to run');
    expect(statuses(e.root, 3).every((s) => s.status === 'successful')).toBe(true);
  }, 30_000);

  it('rejects bad options with exit 2', () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/true'] }] }]);
    const r = runThemis(['--setup-dir', e.setupDir, 'run', '--cores', '0'], { cwd: e.root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--cores 0');
  });
});

describe('the application interface, across two packers', () => {
  it('prepEnsemble and postEnsemble + on_completion once; prepRun/postRun per run; a throwing hook fails its run', async () => {
    const e = makeEnsemble([]);
    const marks = path.join(e.root, 'marks');
    const iface = path.join(e.root, 'interface.mjs');
    fs.writeFileSync(
      iface,
      `import fs from 'node:fs';
const mark = (s) => fs.appendFileSync(${JSON.stringify(marks)}, s + '\\n');
export function prepEnsemble() { mark('prepEnsemble'); }
export function prepRun({ runId, runDir }) {
  if (runId === 3) throw new Error('no input for run 3');
  fs.writeFileSync(runDir + '/prepped', String(runId));
}
export async function postRun({ runId, run }) { return { id: runId, steps: run.steps.length }; }
export function postEnsemble({ runId, themis }) { mark('postEnsemble ' + runId + ' ' + (themis !== null)); }
`,
    );
    const n = 8;
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: ['/bin/sh', '-c', 'test -e prepped'] }] })),
      {
        root: e.root,
        interface: iface,
        onCompletion: { args: ['/bin/sh', '-c', `echo on_completion >> "${marks}"`], cwd: e.root, stdout: null, stderr: null },
      },
    );
    const args = ['--setup-dir', e2.setupDir, '--cores', '2', '--heartbeat', '0.2'];
    const [a, b] = await Promise.all([startPack(args).done, startPack(args).done]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const st = statuses(e2.root, n);
    expect(st.map((s) => s.status)).toEqual(['successful', 'successful', 'failed', 'successful', 'successful', 'successful', 'successful', 'successful']);
    expect(readStatusOf(e2.runDir(3)).reason).toContain('prepRun failed: no input for run 3');
    expect(fs.readFileSync(path.join(e2.runDir(3), 'run.log'), 'utf8')).toContain('no input for run 3');
    expect(JSON.parse(fs.readFileSync(path.join(e2.runDir(1), '.themis', 'result.json'), 'utf8')).result).toEqual({ id: 1, steps: 1 });
    const lines = fs.readFileSync(marks, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l === 'prepEnsemble')).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('postEnsemble'))).toHaveLength(1);
    expect(lines).toContain('postEnsemble null true');
    expect(lines.filter((l) => l === 'on_completion')).toHaveLength(1);
    // on_completion after postEnsemble.
    expect(lines.indexOf('on_completion')).toBeGreaterThan(lines.findIndex((l) => l.startsWith('postEnsemble')));
  }, 30_000);
});

describe('stopEnsemble() from a hook', () => {
  it('stops every packer from starting runs; what was queued stays queued; exit 4', async () => {
    const e = makeEnsemble([]);
    const iface = path.join(e.root, 'stop.mjs');
    fs.writeFileSync(iface, `export function postRun({ runId, stopEnsemble }) { if (runId === 2) stopEnsemble(); return runId; }\n`);
    const n = 6;
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: ['/bin/true'] }] })),
      { root: e.root, interface: iface },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '1', '--heartbeat', '0.2']).done;
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain('stopEnsemble() called by postRun of run 2');
    const st = statuses(e2.root, n).map((s) => s.status);
    expect(st.slice(0, 2)).toEqual(['successful', 'successful']);
    // At most one more run started before the flag was seen at the next heartbeat.
    expect(st.filter((s) => s === 'queued').length).toBeGreaterThanOrEqual(n - 3);
  }, 30_000);
});
