import { describe, expect, it } from 'vitest';
import { endOfWork, exitCodeOf, PACK_EXIT, type PackerEnd } from '../../src/pack/exit-policy.js';
import { describeStop } from '../../src/pack/state.js';
import { newStatus } from '../../src/store/records.js';
import { CoreHarness } from './core-harness.js';

/** Drain the ensemble after its last run settled: the core rescans once, then finishes. */
function drain(h: CoreHarness, pending = 0): string | null {
  const rescans = h.of('rescan').length;
  if (rescans > 0) h.send({ type: 'scanned', pending, suspects: 0 });
  return h.state.finished;
}

describe('packer core (transitions, in process)', () => {
  it('a run is claimed and spawned at once; its running status (naming the launch) is written once the step has run a moment; on exit 0 it is successful and its claim released', () => {
    const h = new CoreHarness();
    h.addRun(1);
    const fx = h.decide();
    expect(fx.map((e) => e.type).filter((t) => ['claim', 'write-status', 'spawn', 'write-running-later'].includes(t))).toEqual(['claim', 'spawn', 'write-running-later']);
    expect(h.of('write-running-later', fx)).toEqual([{ type: 'write-running-later', key: h.keyOf(1), ms: 1000 }]);
    // The key names the status version the step was launched from (rev 0: as gen wrote it).
    expect(h.keyOf(1)).toMatch(/^1:0:0:0\.\d+$/);
    expect(h.phaseOf(1)).toBe('running');
    expect(h.state.counts.started).toBe(1);
    h.started(1);
    const due = h.runningDue(1);
    expect(h.written(1, due)).toEqual([expect.objectContaining({ status: 'running', step: 0, launch: { packer: 'p1', key: h.keyOf(1) } })]);
    expect(h.runningDue(1)).toEqual([]); // written once
    const done = h.exited(1, 0);
    expect(h.written(1, done)).toEqual([expect.objectContaining({ status: 'successful', exitCode: 0, launch: null })]);
    expect(h.of('release-claim', done)).toHaveLength(1);
    expect(h.state.held.size).toBe(0);
    // Nothing left in the window: one fresh scan, then done.
    expect(h.of('rescan', done)).toHaveLength(1);
    expect(drain(h)).toBe('nothing left to run');
    expect(h.of('finish')).toEqual([{ type: 'finish', reason: 'nothing left to run', keepJournal: false }]);
    expect(h.poolProblems()).toEqual([]);
  });

  it('a plain success asks for the next decision before its own bookkeeping (the next run starts first)', () => {
    const h = new CoreHarness({ cores: 1 });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    const fx = h.exited(1, 0);
    const types = fx.map((e) => (e.type === 'write-status' ? `write ${e.runId} ${e.status.status}` : e.type));
    expect(types.indexOf('decide-now')).toBeLessThan(types.indexOf('write 1 successful'));
    expect(types.indexOf('spawn')).toBeGreaterThan(-1);
    expect(types.indexOf('spawn')).toBeLessThan(types.indexOf('write 1 successful'));
    expect(h.phaseOf(2)).toBe('running');
  });

  it('a step that ends before its running status is due costs one status write (its final one); the timer then does nothing', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    const key = h.keyOf(1);
    h.exited(1, 0);
    expect(h.written(1).map((s) => s.status)).toEqual(['successful']);
    expect(h.send({ type: 'running-write-due', key })).toEqual([]);
    expect(h.written(1)).toHaveLength(1);
  });

  it('a composite run goes on to its next step without a status write in between, keeping its claim', () => {
    const h = new CoreHarness();
    h.addRun(1, [{}, { args: ['/bin/post'] }]);
    h.decide();
    const fx = h.exited(1, 0);
    expect(h.of('release-claim', fx)).toHaveLength(0);
    const spawns = h.of('spawn', fx);
    expect(spawns).toHaveLength(1);
    expect(spawns[0]).toMatchObject({ stepIndex: 1, attempt: 0 });
    expect(h.written(1, fx)).toEqual([]);
    expect(h.written(1, h.runningDue(1)).map((s) => `${s.status}@${s.step}`)).toEqual(['running@1']);
    h.exited(1, 0);
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'successful', step: 2 });
  });

  it('a failing step restarts while the budget lasts (same step, next attempt), then the run fails and is counted', () => {
    const h = new CoreHarness({ core: { maxRestarts: 1 } });
    h.addRun(1);
    h.decide();
    const first = h.exited(1, 3);
    expect(h.of('release-claim', first)).toHaveLength(0);
    expect(h.of('spawn', first)).toEqual([expect.objectContaining({ stepIndex: 0, attempt: 1 })]);
    expect(h.state.held.get(1)!.status).toMatchObject({ restarts: 1, status: 'running' });
    const second = h.exited(1, 3);
    expect(h.written(1, second).at(-1)).toMatchObject({ status: 'failed', exitCode: 3, reason: 'step 0: exit 3; all 1 restarts used' });
    expect(h.of('mark-failed', second)).toEqual([{ type: 'mark-failed', runId: 1, count: false }]);
    expect(h.state.counts).toMatchObject({ started: 2, failed: 1 });
  });

  it('with no restarts allowed a failing step fails the run at once', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    const fx = h.exited(1, 1);
    expect(h.written(1, fx).at(-1)).toMatchObject({ status: 'failed', reason: 'step 0: exit 1; no restarts allowed' });
    expect(h.of('spawn', fx)).toHaveLength(0);
  });

  it('an exit code in abort_on aborts the run without a restart', () => {
    const h = new CoreHarness({ core: { maxRestarts: 5, abortOn: [42] } });
    h.addRun(1);
    h.decide();
    const fx = h.exited(1, 42);
    expect(h.written(1, fx).at(-1)).toMatchObject({ status: 'aborted', restarts: 0 });
    expect(h.state.counts.aborted).toBe(1);
    expect(h.of('mark-failed', fx)).toHaveLength(0);
  });

  it('a step stopped at its timeout counts as a failure with the limit in the reason', () => {
    const h = new CoreHarness();
    h.addRun(1, [{ timeout: 0.5 }]);
    h.decide();
    const fx = h.exited(1, null, { signal: 'SIGTERM', stoppedBy: 'timeout' });
    expect(h.written(1, fx).at(-1)!.reason).toMatch(/^timeout: step 0 ran over its 30 s limit/);
    expect(h.diskStatus.get(1)!.status).toBe('failed');
  });

  it('a claim lost while its step runs: the step is killed, and its status is never written again nor its claim released', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    h.started(1, 4242);
    const hb = h.send({ type: 'heartbeat', lost: [{ runId: 1, why: 'broken by another packer?' }], dequeues: [], stopFlag: null });
    expect(h.of('kill', hb)).toEqual([{ type: 'kill', key: expect.any(String), reason: 'lost-claim' }]);
    expect(h.phaseOf(1)).toBe('lost');
    const fx = h.exited(1, null, { signal: 'SIGTERM', stoppedBy: 'lost-claim' });
    expect(h.of('write-status', fx)).toHaveLength(0);
    expect(h.of('release-claim', fx)).toHaveLength(0);
    expect(h.state.held.size).toBe(0);
    drain(h);
    // The journal stays: the run's status still points into it for whoever holds the claim now.
    expect(h.of('finish').at(-1)).toMatchObject({ keepJournal: true });
    expect(h.poolProblems()).toEqual([]);
  });

  it('a claim lost while the run waits between steps drops the run at once: nothing to kill, nothing freed twice', () => {
    const h = new CoreHarness({ cores: 2 });
    h.addRun(1, [{}, { coresPerTask: 2 }]);
    h.addRun(2);
    h.decide();
    h.exited(1, 0); // step 1 needs both cores; run 2 holds one
    expect(h.phaseOf(1)).toBe('waiting');
    const hb = h.send({ type: 'heartbeat', lost: [{ runId: 1, why: 'x' }], dequeues: [], stopFlag: null });
    expect(h.of('kill', hb)).toHaveLength(0);
    expect(h.of('write-status', hb)).toHaveLength(0);
    expect(h.state.held.has(1)).toBe(false);
    expect(h.state.waiting).toHaveLength(0);
    expect(h.poolProblems()).toEqual([]);
  });

  it('dequeue of a running run stops its step; the run ends killed, and its request is cleared', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    const hb = h.send({ type: 'heartbeat', lost: [], dequeues: [1], stopFlag: null });
    expect(h.of('kill', hb)).toEqual([expect.objectContaining({ reason: 'dequeue' })]);
    const fx = h.exited(1, null, { signal: 'SIGTERM', stoppedBy: 'dequeue' });
    expect(h.written(1, fx).at(-1)).toMatchObject({ status: 'killed', reason: 'dequeued while running' });
    expect(h.of('clear-dequeue', fx)).toHaveLength(1);
    expect(h.state.counts.killed).toBe(1);
  });

  it('a dequeue request found right after the claim settles the run as killed without starting it', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.dequeueOnClaim.add(1);
    const fx = h.decide();
    expect(h.of('spawn', fx)).toHaveLength(0);
    expect(h.written(1, fx)).toEqual([expect.objectContaining({ status: 'killed' })]);
    expect(h.poolProblems()).toEqual([]);
  });

  it('the early stop before the walltime starts nothing more, lets running steps finish, and ends with the reason', () => {
    const h = new CoreHarness({ cores: 1 });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    const cause = { kind: 'walltime', endsAt: Date.parse('2030-01-01T00:00:00Z'), earlyStopMinutes: 5 } as const;
    const stop = h.send({ type: 'stop-starting', cause });
    expect(h.logs(stop)).toEqual(['starting no more runs: allocation ends at 2030-01-01T00:00:00.000Z (early stop 5 min)']);
    expect(h.of('kill', stop)).toHaveLength(0);
    const fx = h.exited(1, 0);
    expect(h.of('claim', fx)).toHaveLength(0);
    expect(h.diskStatus.get(1)!.status).toBe('successful');
    expect(h.state.finished).toBe(describeStop(cause));
    expect(h.state.held.has(2)).toBe(false);
  });

  it('the walltime end interrupts: steps are killed and their runs requeued at the same step, no restart used', () => {
    const h = new CoreHarness({ core: { maxRestarts: 3 } });
    h.addRun(1, [{}, {}]);
    h.addRun(2);
    h.decide();
    const cause = { kind: 'walltime', endsAt: 0, earlyStopMinutes: null } as const;
    const fx = h.send({ type: 'interrupt', cause });
    expect(h.of('kill', fx).map((k) => k.reason)).toEqual(['interrupt', 'interrupt']);
    h.exited(1, null, { signal: 'SIGTERM', stoppedBy: 'interrupt' });
    h.exited(2, 0, { stoppedBy: 'interrupt' }); // it had finished its work: exit 0 wins
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'queued', step: 0, restarts: 0, attempt: 1 });
    expect(h.diskStatus.get(2)!.status).toBe('successful');
    expect(h.state.finished).toBe('allocation ends at 1970-01-01T00:00:00.000Z');
    expect(endOfWork(endOf(h)).timeUp).toBe(true);
  });

  it('a signal records itself for the exit code (128 + N) and puts every running run back', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    const fx = h.send({ type: 'signal', signal: 'SIGTERM' });
    expect(h.logs(fx)[0]).toBe('received SIGTERM: stopping every step and putting their runs back in the queue');
    h.send({ type: 'signal', signal: 'SIGINT' });
    expect(h.state.signal).toBe('SIGTERM');
    h.exited(1, 143, { stoppedBy: 'interrupt' });
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(h.state.counts.requeued).toBe(1);
    expect(exitCodeOf(endOf(h), false)).toBe(143);
  });

  it('a step killed by a job-wide signal waits for our own stop: with it, an interruption; without it, a failure', () => {
    const h = new CoreHarness({ cores: 2 });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    const w = h.exited(1, null, { signal: 'SIGTERM' });
    expect(h.of('wait-job-stop', w)).toHaveLength(1);
    expect(h.phaseOf(1)).toBe('exited');
    h.send({ type: 'interrupt', cause: { kind: 'signal', signal: 'SIGTERM' } });
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'queued', restarts: 0 });

    const g = new CoreHarness();
    g.addRun(1);
    g.decide();
    g.exited(1, 143);
    const key = [...g.state.byKey.keys()][0]!;
    g.send({ type: 'job-stop-window-closed', key });
    expect(g.diskStatus.get(1)!.status).toBe('failed');
    expect(g.poolProblems()).toEqual([]);
  });

  it('more failed runs than max_failed_runs set the stop flag and stop every packer from starting runs', () => {
    const h = new CoreHarness({ cores: 1, core: { maxFailedRuns: 0 } });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    const fx = h.exited(1, 1);
    expect(h.of('mark-failed', fx)).toEqual([{ type: 'mark-failed', runId: 1, count: true }]);
    expect(h.of('set-stop-flag', fx)).toEqual([{ type: 'set-stop-flag', reason: '1 runs failed, more than max_failed_runs (0)', kind: 'max-failed-runs' }]);
    expect(h.of('claim', fx)).toHaveLength(0);
    expect(h.state.finished).toBe('1 runs failed, more than max_failed_runs (0)');
    expect(h.diskStatus.has(2)).toBe(false);
  });

  it('prepRun runs before the first step only; when it throws the step fails like an exit, and prepRun runs again on the retry', () => {
    const h = new CoreHarness({ core: { hasPrepRun: true, maxRestarts: 1 } });
    h.addRun(1, [{}, {}]);
    const fx = h.decide();
    expect(h.of('run-hook', fx)).toEqual([expect.objectContaining({ hook: 'prepRun', runId: 1 })]);
    expect(h.phaseOf(1)).toBe('prepping');
    const fail = h.send({ type: 'hook-done', runId: 1, hook: 'prepRun', ok: false, message: 'no input', detail: 'Error: no input\n  at prep' });
    expect(h.of('append-log', fail)[0]!.text).toContain('themis: prepRun failed: Error: no input');
    expect(h.state.held.get(1)!.status).toMatchObject({ restarts: 1, reason: 'prepRun failed: no input' });
    expect(h.of('run-hook', fail)).toHaveLength(1); // the retry calls prepRun again
    const ok = h.send({ type: 'hook-done', runId: 1, hook: 'prepRun', ok: true, value: undefined });
    expect(h.of('spawn', ok)).toHaveLength(1);
    const next = h.exited(1, 0);
    expect(h.of('run-hook', next)).toHaveLength(0); // not before step 1
    expect(h.of('spawn', next)).toEqual([expect.objectContaining({ stepIndex: 1 })]);
  });

  it('postRun runs after the last step; its value is written as the result; a throw runs postRun again, then fails the run', () => {
    const h = new CoreHarness({ core: { hasPostRun: true, maxRestarts: 1 } });
    h.addRun(1);
    h.decide();
    const fx = h.exited(1, 0);
    expect(h.of('decide-now', fx)).toHaveLength(0); // a postRun may stop the ensemble: settled first
    expect(h.of('run-hook', fx)).toEqual([expect.objectContaining({ hook: 'postRun' })]);
    const again = h.send({ type: 'hook-done', runId: 1, hook: 'postRun', ok: false, message: 'bad', detail: 'Error: bad' });
    expect(h.of('run-hook', again)).toHaveLength(1);
    expect(h.of('spawn', again)).toHaveLength(0); // postRun alone is retried, not the step
    const ok = h.send({ type: 'hook-done', runId: 1, hook: 'postRun', ok: true, value: { energy: 1.5 } });
    expect(h.of('write-result', ok)).toEqual([expect.objectContaining({ value: { energy: 1.5 } })]);
    const written = h.send({ type: 'result-written', runId: 1, ok: true });
    expect(h.written(1, written).at(-1)).toMatchObject({ status: 'successful', restarts: 1 });

    const g = new CoreHarness({ core: { hasPostRun: true } });
    g.addRun(1);
    g.decide();
    g.exited(1, 0);
    g.send({ type: 'hook-done', runId: 1, hook: 'postRun', ok: false, message: 'bad', detail: 'Error: bad' });
    expect(g.diskStatus.get(1)).toMatchObject({ status: 'failed', reason: 'postRun failed: bad; no restarts left' });
  });

  it("a dead packer's run is settled from its journal: an exit found there is not run again", () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.diskStatus.set(1, { ...newStatus(1), status: 'running', launch: { packer: 'old', key: '1:0:0:1' } });
    const fx = h.decide();
    expect(h.of('settle-orphan', fx)).toHaveLength(1);
    expect(h.of('spawn', fx)).toHaveLength(0);
    const exit = { format: 1, runId: 1, step: 0, attempt: 0, code: 0, signal: null, stoppedBy: null, startedAt: 'a', endedAt: 'b', host: 'h', pid: 9 };
    const settled = h.send({ type: 'orphan-settled', runId: 1, outcome: { exit, note: 'step 0 had ended (0)' }, dequeueRequested: false });
    expect(h.of('spawn', settled)).toHaveLength(0);
    expect(h.diskStatus.get(1)!.status).toBe('successful');
    expect(h.diskStatus.get(1)!.history.map((e) => e.event)).toContain('recovered');
    expect(h.poolProblems()).toEqual([]);
  });

  it("a dead packer's run with no exit recorded runs again at the next attempt, without prepRun", () => {
    const h = new CoreHarness({ core: { hasPrepRun: true } });
    h.addRun(1);
    h.diskStatus.set(1, { ...newStatus(1), status: 'running' });
    h.decide();
    const fx = h.send({ type: 'orphan-settled', runId: 1, outcome: { exit: null, note: 'no exit recorded' }, dequeueRequested: false });
    expect(h.of('run-hook', fx)).toHaveLength(0);
    expect(h.of('spawn', fx)).toEqual([expect.objectContaining({ attempt: 1 })]);
  });

  it('a status write the file system refuses: the packer stops starting runs, keeps the claim and its journal, and exits 1', () => {
    const h = new CoreHarness({ cores: 1 });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    h.failWrites.set(1, 'io');
    const fx = h.exited(1, 0);
    expect(h.of('release-claim', fx)).toHaveLength(0);
    expect(h.state.error).toBe('ENOSPC: no space left on device');
    expect(h.state.stopStarting).toEqual({ kind: 'status-unwritable', why: 'ENOSPC: no space left on device' });
    // Run 2 had started on the freed core before the write failed; it finishes, then the packer ends.
    h.exited(2, 0);
    expect(h.of('finish').at(-1)).toMatchObject({ keepJournal: true });
    expect(exitCodeOf(endOf(h), false)).toBe(PACK_EXIT.error);
  });

  it('a running status that cannot be written (claim gone meanwhile) stops the step; its exit gives the cores back and writes nothing', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    h.failWrites.set(1, 'claim-lost');
    const fx = h.runningDue(1);
    expect(h.of('kill', fx)).toEqual([{ type: 'kill', key: h.keyOf(1), reason: 'lost-claim' }]);
    expect(h.logs(fx)).toContain('run 1: claim lost; stopping its step and leaving its status to the new holder');
    const end = h.exited(1, null, { signal: 'SIGTERM', stoppedBy: 'lost-claim' });
    expect(h.written(1, end)).toEqual([]);
    expect(h.of('release-claim', end)).toEqual([]);
    expect(h.state.held.size).toBe(0);
    expect(h.poolProblems()).toEqual([]);
  });

  it('a running status that cannot be written (disk full) lets the step run on and starts nothing new', () => {
    const h = new CoreHarness({ cores: 1 });
    h.addRun(1);
    h.addRun(2);
    h.decide();
    h.failWrites.set(1, 'io');
    const fx = h.runningDue(1);
    expect(h.of('kill', fx)).toEqual([]);
    expect(h.state.stopStarting).toMatchObject({ kind: 'status-unwritable' });
    h.exited(1, 0);
    expect(h.of('spawn').map((e) => e.runId)).toEqual([1]);
  });

  it('a run claimed by someone else is given up, and the packer waits for that claim to go stale instead of exiting', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.contested.add(1);
    const fx = h.decide();
    expect(h.state.scan.contested.has(1)).toBe(true);
    expect(h.of('rescan', fx)).toHaveLength(1); // nothing in hand: one fresh look first
    h.addRun(1); // the scan lists the queued run again
    const after = h.send({ type: 'scanned', pending: 1, suspects: 0 });
    expect(h.of('claim', after)).toHaveLength(1);
    expect(h.of('rescan-later', after)).toEqual([{ type: 'rescan-later', ms: 1000 }]);
    expect(h.state.finished).toBeNull();
    expect(h.poolProblems()).toEqual([]);
  });

  it('runs held by silent packers keep the packer waiting (one log line, one recheck) until a scan settles them', () => {
    const h = new CoreHarness();
    h.send({ type: 'rescan-due' });
    const fx = h.send({ type: 'scanned', pending: 3, suspects: 3 });
    expect(h.logs(fx)).toEqual(['3 runs are held by packers that stopped heartbeating or never finished claiming; waiting to take them over']);
    expect(h.of('rescan-later', fx)).toEqual([{ type: 'rescan-later', ms: 1000 }]);
    h.decide();
    expect(h.of('rescan-later')).toHaveLength(1);
    h.send({ type: 'rescan-due', recheck: true });
    expect(h.send({ type: 'scanned', pending: 0, suspects: 0 }).some((e) => e.type === 'finish')).toBe(true);
  });

  it('a run that can never fit is blocked with why, written into its status, and the packer ends saying so (exit 3)', () => {
    const h = new CoreHarness({ cores: 2 });
    h.addRun(1, [{ tasks: 1, coresPerTask: 4 }]);
    const fx = h.decide();
    expect(h.of('note-blocked', fx)).toEqual([{ type: 'note-blocked', dir: '/e/runs/1', reason: 'needs 4 cores on one node, nodes have 2' }]);
    expect(h.of('claim', fx)).toHaveLength(0);
    expect(drain(h)).toBe('only runs that cannot fit this allocation remain');
    expect(exitCodeOf(endOf(h), false)).toBe(PACK_EXIT.blocked);
  });

  it('the launcher lost: every step is killed by its process group and its run requeued; the packer exits 1', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.addRun(2);
    h.decide();
    h.started(1, 501);
    h.started(2, 502);
    const fx = h.send({ type: 'launcher-lost', why: 'launcher exited unexpectedly (SIGKILL)' });
    expect(
      h
        .of('kill-group', fx)
        .map((k) => k.pid)
        .sort(),
    ).toEqual([501, 502]);
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(h.diskStatus.get(2)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(h.state.finished).toBe('launcher lost: launcher exited unexpectedly (SIGKILL)');
    expect(exitCodeOf(endOf(h), false)).toBe(PACK_EXIT.error);
    expect(h.poolProblems()).toEqual([]);
  });

  it('the stop flag seen at a heartbeat requeues waiting runs and starts nothing', () => {
    const h = new CoreHarness({ cores: 1 });
    h.addRun(1, [{}, {}]);
    h.addRun(2);
    h.decide();
    h.send({ type: 'heartbeat', lost: [], dequeues: [], stopFlag: 'stopEnsemble() called by postRun of run 9' });
    const fx = h.exited(1, 0);
    expect(h.written(1, fx).at(-1)).toMatchObject({ status: 'queued', step: 1, reason: 'requeued: ensemble stopped: stopEnsemble() called by postRun of run 9' });
    expect(h.state.finished).toBe('ensemble stopped: stopEnsemble() called by postRun of run 9');
    expect(exitCodeOf(endOf(h, 1), true)).toBe(PACK_EXIT.stopped);
  });

  it('an error while packing interrupts and is remembered even after another stop', () => {
    const h = new CoreHarness();
    h.addRun(1);
    h.decide();
    h.send({ type: 'interrupt', cause: { kind: 'signal', signal: 'SIGTERM' } });
    h.send({ type: 'interrupt', cause: { kind: 'error', message: 'boom' } });
    expect(h.state.error).toBe('boom');
    expect(h.state.interrupted).toEqual({ kind: 'signal', signal: 'SIGTERM' });
  });

  it('keeps every core and GPU accounted for through a mixed queue of many runs', () => {
    const h = new CoreHarness({ nodes: 2, cores: 4, gpus: 2, core: { maxRestarts: 1 } });
    for (let id = 1; id <= 60; id++) h.addRun(id, [{ coresPerTask: 1 + (id % 3), gpusPerTask: id % 4 === 0 ? 1 : 0, tasks: id % 5 === 0 ? 2 : 1 }]);
    h.decide();
    for (let round = 0; round < 200 && h.state.held.size > 0; round++) {
      const ids = [...h.state.byKey.values()].map((a) => a.id);
      for (const id of ids) {
        h.exited(id, id % 7 === 0 && round === 0 ? 1 : 0);
        expect(h.poolProblems()).toEqual([]);
      }
    }
    drain(h);
    expect(h.state.counts.successful).toBe(60);
    expect(h.state.finished).toBe('nothing left to run');
    expect(h.state.pool.freeCores.map((c) => c.length)).toEqual([4, 4]);
  });
});

describe('exit policy (pure)', () => {
  const base: PackerEnd = { interrupted: null, stopStarting: null, error: null, signal: null, pending: 0, blocked: 0 };
  it('an error wins, then a signal, then a stopped ensemble with work left, then blocked runs', () => {
    expect(exitCodeOf({ ...base, error: 'x', signal: 'SIGTERM' }, true)).toBe(1);
    expect(exitCodeOf({ ...base, signal: 'SIGUSR1', pending: 3, blocked: 1 }, true)).toBe(128 + 10);
    expect(exitCodeOf({ ...base, pending: 3, blocked: 1 }, true)).toBe(4);
    expect(exitCodeOf({ ...base, pending: 0, blocked: 1 }, true)).toBe(3);
    expect(exitCodeOf(base, false)).toBe(0);
  });
  it('the ensemble is complete only when nothing stopped the packer and nothing is pending; time is up at the walltime or on a signal', () => {
    expect(endOfWork(base)).toEqual({ ensembleComplete: true, timeUp: false });
    expect(endOfWork({ ...base, pending: 1 }).ensembleComplete).toBe(false);
    const walltime = { kind: 'walltime', endsAt: 0, earlyStopMinutes: 2 } as const;
    expect(endOfWork({ ...base, stopStarting: walltime })).toEqual({ ensembleComplete: false, timeUp: true });
    expect(endOfWork({ ...base, interrupted: { kind: 'error', message: 'x' }, stopStarting: walltime }).timeUp).toBe(false);
    expect(endOfWork({ ...base, signal: 'SIGTERM', interrupted: { kind: 'signal', signal: 'SIGTERM' } }).timeUp).toBe(true);
  });
});

function endOf(h: CoreHarness, pending = h.state.scan.pending): PackerEnd {
  const s = h.state;
  return { interrupted: s.interrupted, stopStarting: s.stopStarting, error: s.error, signal: s.signal, pending, blocked: s.blocked.size };
}

describe('packer core: launchers on other nodes and the step limit (in process)', () => {
  const slurm = (more: Partial<{ nodeLaunchers: boolean; stepLimit: number | null }> = {}) =>
    new CoreHarness({
      nodes: 3,
      cores: 1,
      core: { launch: { mode: 'auto', scheduler: 'slurm', jobId: 'j1', ownNode: 0, bind: false, nodeLaunchers: more.nodeLaunchers ?? true }, stepLimit: more.stepLimit ?? null },
    });

  it("a single-node step goes to its node's launcher: the status names that node's journal; one job step per node, not per run", () => {
    const h = slurm();
    for (let id = 1; id <= 3; id++) h.addRun(id);
    const fx = h.decide();
    const spawns = h.of('spawn', fx);
    expect(spawns.map((e) => e.route)).toEqual([
      { kind: 'node', node: 0 },
      { kind: 'node', node: 1 },
      { kind: 'node', node: 2 },
    ]);
    h.runningDue(1);
    h.runningDue(2);
    expect(h.written(1)[0]!.launch).toEqual({ packer: 'p1', key: h.keyOf(1) });
    expect(h.written(2)[0]!.launch).toEqual({ packer: 'p1', key: h.keyOf(2), node: 'n1' });
    expect(h.state.steps).toEqual({ used: 2, scheduler: 0, nodeLaunchers: 2, exhausted: false });
    h.exited(2, 0);
    h.addRun(4, [{}]);
    h.decide();
    expect(h.state.steps.used).toBe(2); // n1's launcher is up: run 4 costs no step
  });

  it('multi-task steps go through the scheduler, one job step each; without node launchers so do steps on other nodes', () => {
    const h = slurm({ nodeLaunchers: false });
    h.addRun(1);
    h.addRun(2, [{ tasks: 2 }]);
    const fx = h.decide();
    expect(h.of('spawn', fx).map((e) => e.route.kind)).toEqual(['node', 'scheduler']);
    h.addRun(3);
    h.exited(1, 0);
    expect(h.of('spawn').at(-1)!.route).toEqual({ kind: 'node', node: 0 });
    expect(h.state.steps.scheduler).toBe(1);
  });

  it('at the step limit a scheduler step is not started: the run is blocked here and requeued with why; a node without a launcher is given up', () => {
    const h = slurm({ stepLimit: 2 });
    h.addRun(1, [{ tasks: 2 }]); // needs 2 nodes: the scheduler
    h.decide();
    expect(h.state.steps.used).toBe(1);
    h.exited(1, 0);
    h.addRun(2, [{ tasks: 2 }]);
    const fx = h.decide();
    expect(h.of('spawn', fx)).toHaveLength(0);
    expect(h.diskStatus.get(2)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(h.diskStatus.get(2)!.reason).toMatch(/^requeued: blocked: the allocation's job steps are used up \(1 of the step limit 2/);
    expect(h.state.blocked.has(2)).toBe(true);
    const g = slurm({ stepLimit: 2 });
    g.addRun(1);
    g.addRun(2);
    g.addRun(3);
    g.decide(); // n1's launcher takes the one step left; n2 cannot get one
    expect(g.state.pool.down).toEqual(new Set([2]));
    expect(g.logs().some((l) => /stopping placing steps on node n2: the allocation's job steps are used up/.test(l))).toBe(true);
    expect(g.diskStatus.get(3)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(g.poolProblems()).toEqual([]);
  });

  it('a node launcher that dies: journaled exits count, the rest go back to the queue without a restart, its leftovers are stopped; a second loss gives the node up', () => {
    const h = new CoreHarness({
      nodes: 2,
      cores: 2,
      core: { maxRestarts: 0, launch: { mode: 'auto', scheduler: 'slurm', jobId: 'j1', ownNode: 0, bind: false, nodeLaunchers: true }, stepLimit: null },
    });
    for (let id = 1; id <= 4; id++) h.addRun(id);
    h.decide();
    const onN1 = [...h.state.byKey.values()].filter((a) => a.phase.kind === 'running' && a.phase.route.kind === 'node' && a.phase.route.node === 1).map((a) => a.id);
    expect(onN1).toEqual([3, 4]);
    h.started(3, 303);
    h.started(4, 404);
    const k3 = h.keyOf(3);
    const journaled = { format: 1, runId: 3, step: 0, attempt: 0, code: 0, signal: null, stoppedBy: null, startedAt: 'a', endedAt: 'b', host: 'n1', pid: 303 };
    const fx = h.send({ type: 'node-lost', node: 1, why: 'launcher exited unexpectedly (SIGKILL)', exits: [{ key: k3, exit: journaled }] });
    expect(h.diskStatus.get(3)!.status).toBe('successful');
    expect(h.diskStatus.get(4)).toMatchObject({ status: 'queued', restarts: 0, attempt: 1 });
    expect(h.of('clean-node', fx)).toEqual([{ type: 'clean-node', node: 1, pids: [404] }]);
    expect(h.state.pool.down.size).toBe(0);
    expect(h.state.nodes[1]).toEqual({ launcher: 'none', losses: 1 });
    h.addRun(5);
    h.addRun(6);
    h.decide();
    const second = h.send({ type: 'node-lost', node: 1, why: 'gone again', exits: [] });
    expect(h.logs(second).some((l) => l.startsWith('stopping placing steps on node n1: its launcher died 2 times'))).toBe(true);
    expect(h.state.pool.down).toEqual(new Set([1]));
    expect(h.poolProblems()).toEqual([]);
  });

  it("a launch its node's launcher could not start goes back to the queue, no restart used, and the node is given up", () => {
    const h = slurm();
    h.addRun(1);
    h.addRun(2);
    h.decide();
    const fx = h.send({ type: 'spawn-refused', key: h.keyOf(2), why: 'the launcher on node n1 did not start: srun: error: Unable to create step for job 1: Step limit reached for this job' });
    expect(h.diskStatus.get(2)).toMatchObject({ status: 'queued', restarts: 0 });
    expect(h.diskStatus.get(2)!.reason).toContain('Step limit reached');
    expect(h.state.pool.down).toEqual(new Set([1]));
    expect(h.logs(fx).some((l) => l.startsWith('run 2 step 0 not started'))).toBe(true);
    expect(h.poolProblems()).toEqual([]);
  });
});

describe('packer core: a step the scheduler refused (in process)', () => {
  it('goes back to the queue with why; with the limit reached no scheduler step is tried again, and the run is blocked here', () => {
    const h = new CoreHarness({ nodes: 1, cores: 4, core: { launch: { mode: 'auto', scheduler: 'slurm', jobId: 'j1', ownNode: 0, bind: false, nodeLaunchers: true }, stepLimit: null } });
    h.addRun(1, [{ tasks: 2 }]);
    h.addRun(2, [{ tasks: 2 }]);
    h.decide();
    h.send({ type: 'spawn-refused', key: h.keyOf(1), why: 'srun: Unable to create step for job 1: Step limit reached for this job', limitReached: true });
    expect(h.diskStatus.get(1)).toMatchObject({ status: 'queued', restarts: 0, reason: 'requeued: not started: srun: Unable to create step for job 1: Step limit reached for this job' });
    expect(h.state.steps.exhausted).toBe(true);
    h.exited(2, 0);
    h.addRun(3, [{ tasks: 2 }]);
    const fx = h.decide();
    expect(h.of('spawn', fx)).toHaveLength(0);
    expect(h.state.blocked.get(3)).toMatch(/the scheduler refused a step: its step limit was reached/);
  });
});
