import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeScript } from '../helpers/cli.js';
import { stepPid } from '../helpers/journal.js';
import { alive, makeEnsemble, startPack, statuses, waitFor } from './helpers.js';

describe('allocation time limits and --repeats', () => {
  it('early stop: starts nothing in the last minutes, resubmits its script up to --repeats times', async () => {
    const e = makeEnsemble([]);
    const marks = path.join(e.root, 'submitted');
    const script = writeScript(path.join(e.root, 'batch.sh'), `echo again >> "${marks}"`);
    const e2 = makeEnsemble(
      Array.from({ length: 3 }, () => ({ steps: [{ args: ['/bin/true'] }] })),
      { root: e.root },
    );
    const args = ['--setup-dir', e2.setupDir, '--walltime', '1', '--early-stop', '1', '--repeats', '2', '--script', script, '--heartbeat', '0.2'];
    for (let i = 1; i <= 3; i++) {
      const r = await startPack(args).done;
      expect(r.code, r.stderr).toBe(0);
      if (i <= 2) await waitFor(() => fs.existsSync(marks) && fs.readFileSync(marks, 'utf8').split('\n').filter(Boolean).length === i, 5000, `submission ${i}`);
      else expect(r.stderr).toContain('all 2 repeats are used');
    }
    expect(statuses(e2.root, 3).every((s) => s.status === 'queued')).toBe(true);
    const rec = JSON.parse(fs.readFileSync(path.join(e2.setupDir, 'state', 'repeats-0.json'), 'utf8'));
    expect(rec.used).toBe(2);
    expect(rec.submissions).toHaveLength(2);
    // Resubmissions are also in jobs.json, where `themis status` lists allocations.
    const jobs = JSON.parse(fs.readFileSync(path.join(e2.setupDir, 'jobs.json'), 'utf8'));
    expect(jobs.jobs.filter((j: { by: string }) => j.by === 'repeat')).toHaveLength(2);
  }, 30_000);

  it('the clock override brings the end of the allocation closer: early stop starts nothing', async () => {
    const runs = Array.from({ length: 2 }, () => ({ steps: [{ args: ['/bin/true'] }] }));
    // 10-minute allocation, the packer's clock starts 9.5 minutes in: 30 s left, early stop is 1 minute.
    const shifted = makeEnsemble(runs);
    const args = (setupDir: string) => ['--setup-dir', setupDir, '--walltime', '10', '--early-stop', '1', '--heartbeat', '0.2'];
    const r = await startPack(args(shifted.setupDir), { THEMIS_CLOCK_OFFSET_MS: String(Date.now() + 570_000) }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('no time to start runs');
    expect(statuses(shifted.root, 2).map((s) => s.status)).toEqual(['queued', 'queued']);
    // The same allocation on the real clock has 9 minutes to start them.
    const plain = makeEnsemble(runs);
    const r2 = await startPack(args(plain.setupDir)).done;
    expect(r2.code, r2.stderr).toBe(0);
    expect(statuses(plain.root, 2).map((s) => s.status)).toEqual(['successful', 'successful']);
  }, 30_000);

  it('a step killed by the scheduler together with the packer (scancel) goes back to the queue, not failed', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }]);
    const p = startPack(['--setup-dir', e.setupDir, '--heartbeat', '0.2', '--grace', '0.5']);
    await waitFor(() => stepPid(e.runDir(1)) !== null, 10_000, 'run 1 to start');
    const pid = stepPid(e.runDir(1))!;
    // scancel signals every process of the job at once; here the step even goes first.
    process.kill(-pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 150)); // the packer sees the exit before its own signal
    process.kill(p.child.pid!, 'SIGTERM');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(143);
    const [s] = statuses(e.root, 1);
    expect(s).toMatchObject({ status: 'queued', step: 0, restarts: 0 });
  }, 30_000);

  it('near the end of the walltime, running steps are stopped and their runs queued again', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }, { steps: [{ args: ['/bin/true'] }] }]);
    // 0.1 min = 6 s; the packer interrupts grace + 2 s before the end, 3.5 s after its start.
    const p = startPack(['--setup-dir', e.setupDir, '--walltime', '0.1', '--grace', '0.5', '--heartbeat', '0.2', '--cores', '2']);
    await waitFor(() => stepPid(e.runDir(1)) !== null, 10_000, 'run 1 to start');
    const pid = stepPid(e.runDir(1))!;
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('allocation ends');
    expect(alive(pid)).toBe(false);
    const [a, b] = statuses(e.root, 2);
    expect(a).toMatchObject({ status: 'queued', step: 0, restarts: 0 });
    expect(b!.status).toBe('successful');
  }, 30_000);
});
