import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequeueRuns, requeueRuns } from '../../src/store/run-ops.js';
import { writeScript } from '../helpers/cli.js';
import { stepPid, stepStart } from '../helpers/journal.js';
import { alive, groupMembers, makeEnsemble, readStatusOf, startPack, statuses, waitFor } from './helpers.js';

const FAST = ['--heartbeat', '0.2', '--grace', '0.5'];

describe('run life cycle (real processes)', () => {
  it('restarts, abort codes, timeouts and exit explanations', async () => {
    const e = makeEnsemble([]);
    // Fails on its first two attempts (counted in a file in its cwd), then succeeds.
    const flaky = writeScript(path.join(e.root, 'flaky.sh'), 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "attempt $n"; [ $n -ge 3 ]');
    const e2 = makeEnsemble(
      [
        { steps: [{ args: [flaky], cwd: 'work' }] },
        { steps: [{ args: ['/bin/sh', '-c', 'exit 3'] }] },
        { steps: [{ args: ['/bin/sh', '-c', 'exit 42'] }] },
        { steps: [{ args: ['/bin/sleep', '30'], timeout: 0.01 }] },
        { steps: [{ args: ['/bin/sh', '-c', 'exit 137'] }] },
      ],
      { root: e.root, maxRestarts: 2, abortOn: [42] },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '4', ...FAST]).done;
    expect(r.code, r.stderr).toBe(0);
    const [flakyRun, fails, aborts, slow, oom] = statuses(e2.root, 5);
    expect(flakyRun).toMatchObject({ status: 'successful', restarts: 2 });
    // The old logs were rotated in the step's own cwd before each restart.
    const work = path.join(e2.runDir(1), 'work');
    expect(fs.readFileSync(path.join(work, 'run_0001.log'), 'utf8')).toContain('attempt 1');
    expect(fs.readFileSync(path.join(work, 'run_0002.log'), 'utf8')).toContain('attempt 2');
    expect(fs.readFileSync(path.join(work, 'run.log'), 'utf8')).toContain('attempt 3');
    expect(fails).toMatchObject({ status: 'failed', restarts: 2, exitCode: 3 });
    expect(fails!.reason).toContain('all 2 restarts used');
    expect(aborts).toMatchObject({ status: 'aborted', restarts: 0, exitCode: 42 });
    expect(slow).toMatchObject({ status: 'failed', restarts: 2, signal: 'SIGTERM' });
    expect(slow!.reason).toMatch(/^timeout/);
    expect(oom!.reason).toContain('often out of memory');
    // Failed runs are counted ensemble-wide.
    expect(fs.readdirSync(path.join(e2.setupDir, 'state', 'failed')).sort()).toEqual(['2', '4', '5']);
  }, 30_000);

  it('a program that cannot be started fails its run with the reason, in the status and in run.log', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/nonexistent/app', '-x'] }] }]);
    const r = await startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST]).done;
    expect(r.code, r.stderr).toBe(0);
    const s = readStatusOf(e.runDir(1));
    expect(s).toMatchObject({ status: 'failed', exitCode: 127 });
    expect(s.reason).toContain('command not found');
    expect(fs.readFileSync(path.join(e.runDir(1), 'run.log'), 'utf8')).toContain('cannot start /nonexistent/app');
  }, 30_000);

  it('a multi-step run resumes from the step that failed, not from the start', async () => {
    const e = makeEnsemble([]);
    const ledger = path.join(e.root, 'ledger');
    const step = (name: string, body = '') => ({ args: ['/bin/sh', '-c', `echo "${name} $THEMIS_STEP" >> "$0"; ${body}`, ledger] });
    const gate = path.join(e.root, 'gate');
    const e2 = makeEnsemble([{ steps: [step('prepare'), step('solve', `[ -e "${gate}" ]`), step('report')] }], { root: e.root });
    let r = await startPack(['--setup-dir', e2.setupDir, '--cores', '2', ...FAST]).done;
    expect(r.code, r.stderr).toBe(0);
    expect(readStatusOf(e2.runDir(1))).toMatchObject({ status: 'failed', step: 1 });
    fs.writeFileSync(gate, '');
    requeueRuns(e2.setupDir, [1]);
    r = await startPack(['--setup-dir', e2.setupDir, '--cores', '2', ...FAST]).done;
    expect(r.code, r.stderr).toBe(0);
    expect(readStatusOf(e2.runDir(1)).status).toBe('successful');
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n')).toEqual(['prepare 0', 'solve 1', 'solve 1', 'report 2']);
  }, 30_000);

  it('dequeue of a running run stops it within a heartbeat and marks it killed', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }, { steps: [{ args: ['/bin/true'] }] }]);
    const p = startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST]);
    await waitFor(() => stepPid(e.runDir(1)) !== null, 10_000, 'run 1 to start');
    const pid = stepPid(e.runDir(1))!;
    // The packer's heartbeat file names it and the run it holds.
    const packers = path.join(e.setupDir, 'packers');
    const info = () => JSON.parse(fs.readFileSync(path.join(packers, fs.readdirSync(packers).filter((f) => f.endsWith('.json'))[0]!), 'utf8'));
    await waitFor(() => fs.existsSync(packers) && fs.readdirSync(packers).length > 0 && info().running.length === 1, 5000, 'packer heartbeat file');
    expect(info()).toMatchObject({ pid: p.child.pid, running: [1] });
    const report = dequeueRuns(e.setupDir, [1]);
    expect(report.pending).toEqual([1]);
    // Well before its `sleep 30` could end: stopped by the packer's heartbeat, not by itself.
    await waitFor(() => readStatusOf(e.runDir(1)).status === 'killed', 5000, 'run 1 killed');
    expect(readStatusOf(e.runDir(1))).toMatchObject({ signal: 'SIGTERM', reason: expect.stringMatching(/dequeue/) });
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(readStatusOf(e.runDir(2)).status).toBe('successful');
    expect(fs.existsSync(path.join(e.runDir(1), '.themis', 'dequeue.request'))).toBe(false);
  }, 30_000);

  it("a packer whose claim was taken away (outside the lease protocol) notices within half a lease, stops the step and never writes that run's status again", async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }]);
    const p = startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST, '--lease', '2']);
    const meta = path.join(e.runDir(1), '.themis');
    await waitFor(() => stepPid(e.runDir(1)) !== null, 10_000, 'run 1 to start');
    const pid = stepPid(e.runDir(1))!;
    const before = fs.readFileSync(path.join(meta, 'status.json'), 'utf8');
    // As if another packer had broken the claim and taken the run.
    fs.renameSync(path.join(meta, 'claim'), path.join(meta, 'claim.taken'));
    fs.mkdirSync(path.join(meta, 'claim'));
    fs.writeFileSync(path.join(meta, 'claim', 'owner.json'), JSON.stringify({ token: 'someone-else', host: 'x', pid: 1, packerId: 'other' }));
    // The other owner stays alive: its heartbeat goes on (the lease here is 2 s).
    const beat = setInterval(() => fs.utimesSync(path.join(meta, 'claim', 'owner.json'), new Date(), new Date()), 200);
    const r = await p.done.finally(() => clearInterval(beat));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('claim lost');
    expect(alive(pid)).toBe(false);
    expect(fs.readFileSync(path.join(meta, 'status.json'), 'utf8')).toBe(before);
    expect(JSON.parse(fs.readFileSync(path.join(meta, 'claim', 'owner.json'), 'utf8')).token).toBe('someone-else');
  }, 30_000);

  it('if the launcher process dies, the packer stops its steps, requeues their runs and exits 1', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }]);
    const p = startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST]);
    await waitFor(() => stepStart(e.runDir(1)) !== null, 10_000, 'run 1 to start');
    const rec = stepStart(e.runDir(1))!;
    await waitFor(() => readStatusOf(e.runDir(1)).status === 'running', 5000, 'status running');
    process.kill(rec.launcherPid, 'SIGKILL');
    const r = await p.done;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('launcher exited unexpectedly');
    expect(alive(rec.pid)).toBe(false);
    expect(readStatusOf(e.runDir(1))).toMatchObject({ status: 'queued', step: 0, restarts: 0 });
  }, 30_000);

  it('max_failed_runs stops every packer from starting runs once exceeded', async () => {
    const n = 20;
    const e = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: ['/bin/false'] }] })),
      { maxFailedRuns: 2 },
    );
    const r = await startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST]).done;
    expect(r.code).toBe(4);
    const st = statuses(e.root, n);
    const failed = st.filter((s) => s.status === 'failed').length;
    expect(failed).toBe(3);
    expect(st.filter((s) => s.status === 'queued').length).toBe(n - failed);
    expect(JSON.parse(fs.readFileSync(path.join(e.setupDir, 'state', 'stop.json'), 'utf8')).kind).toBe('max-failed-runs');
    // A second packer starts nothing while the stop flag stands.
    const again = await startPack(['--setup-dir', e.setupDir, '--cores', '1', ...FAST]).done;
    expect(again.code).toBe(4);
    expect(statuses(e.root, n).filter((s) => s.status === 'failed').length).toBe(3);
  }, 30_000);

  it('SIGTERM mid-run: steps stopped, no process left, runs back to queued at their step without using a restart', async () => {
    const e = makeEnsemble([]);
    const trap = writeScript(path.join(e.root, 'stubborn.sh'), "trap '' TERM; sleep 30 & wait; sleep 30");
    const e2 = makeEnsemble([{ steps: [{ args: ['/bin/true'] }, { args: ['/bin/sleep', '30'] }] }, { steps: [{ args: [trap] }] }, { steps: [{ args: ['/bin/sleep', '30'] }] }], {
      root: e.root,
      maxRestarts: 1,
    });
    const p = startPack(['--setup-dir', e2.setupDir, '--cores', '4', ...FAST]);
    const runDirs = [1, 2, 3].map((i) => e2.runDir(i));
    await waitFor(() => readStatusOf(e2.runDir(1)).step === 1 && runDirs.every((d) => stepPid(d) !== null), 10_000, 'all runs running');
    const pids = runDirs.map((d) => stepPid(d)!);
    p.child.kill('SIGTERM');
    const r = await p.done;
    expect(r.code).toBe(143);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    // Nothing the steps started is left either (the stubborn script's own sleep included).
    for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
    const st = statuses(e2.root, 3);
    expect(st.map((s) => [s.status, s.step, s.restarts])).toEqual([
      ['queued', 1, 0],
      ['queued', 0, 0],
      ['queued', 0, 0],
    ]);
    expect(fs.existsSync(path.join(e2.runDir(1), '.themis', 'claim'))).toBe(false);
  }, 30_000);

  it('a heartbeat that fails (its packer file cannot be written) is logged once; the packer and its steps carry on', async () => {
    const e = makeEnsemble([]);
    const gate = path.join(e.root, 'gate');
    const e2 = makeEnsemble(
      [1, 2].map(() => ({ steps: [{ args: ['/bin/sh', '-c', 'while [ ! -e "$0" ]; do sleep 0.05; done', gate] }] })),
      { root: e.root },
    );
    const p = startPack(['--setup-dir', e2.setupDir, '--cores', '2', ...FAST]);
    await waitFor(() => [1, 2].every((i) => stepPid(e2.runDir(i)) !== null), 10_000, 'both runs running');
    // `packers/` becomes a plain file: the packer's heartbeat file cannot be written any more.
    const packers = path.join(e2.setupDir, 'packers');
    fs.renameSync(packers, `${packers}.moved`);
    fs.writeFileSync(packers, 'in the way');
    await new Promise((r) => setTimeout(r, 1000)); // several heartbeats
    fs.writeFileSync(gate, '');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/heartbeat: /g) ?? []).toHaveLength(1);
    expect(statuses(e2.root, 2).map((s) => s.status)).toEqual(['successful', 'successful']);
  }, 30_000);
});
