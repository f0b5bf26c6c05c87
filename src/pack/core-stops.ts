import { withHistory } from '../store/records.js';
import type { ExitRecord } from './launcher-protocol.js';
import { describeStop, type HeldRun, type StopCause } from './state.js';
import type { Core, Ev } from './transitions.js';

/*
 * The packer core's transitions about holding and stopping: what a heartbeat found (claims lost,
 * dequeue requests, the stop flag), and the stops (stop starting runs; interrupt; the launcher
 * lost). See `transitions.ts`.
 */

// --- heartbeat: lost claims, dequeue requests, the stop flag ---

export function heartbeat(c: Core, ev: Ev<'heartbeat'>): void {
  const s = c.s;
  for (const l of ev.lost) {
    const a = s.held.get(l.runId);
    if (a && a.phase.kind !== 'lost') loseClaim(c, a, l.why);
  }
  for (const id of ev.dequeues) {
    const a = s.held.get(id);
    if (a) dequeue(c, a);
  }
  if (ev.stopFlag !== null && !s.stopStarting) stopStartingRuns(c, { kind: 'stop-flag', reason: ev.stopFlag });
}

function loseClaim(c: Core, a: HeldRun, why: string): void {
  c.log(`run ${a.id}: claim lost (${why}); stopping its step`);
  const p = a.phase;
  switch (p.kind) {
    case 'running':
      c.out.push({ type: 'kill', key: p.key, reason: 'lost-claim' });
      a.phase = { kind: 'lost', awaits: 'exit', slot: p.slot, key: p.key, route: p.route, pid: p.pid };
      return;
    case 'exited':
      a.phase = { kind: 'lost', awaits: 'exit', slot: p.slot, key: p.key, route: null, pid: 0 };
      c.dropLost(a);
      return;
    case 'waiting':
      c.takeWaiting(a.id);
      c.drop(a, true);
      return;
    case 'prepping':
      a.phase = { kind: 'lost', awaits: 'hook', slot: p.slot, key: null, route: null, pid: 0 };
      return;
    case 'post-run':
      a.phase = { kind: 'lost', awaits: 'hook', slot: null, key: null, route: null, pid: 0 };
      return;
    case 'recovering':
      a.phase = { kind: 'lost', awaits: 'recovery', slot: p.slot, key: null, route: null, pid: 0 };
      return;
    case 'writing':
      a.phase = { kind: 'lost', awaits: 'write', slot: null, key: null, route: null, pid: 0 };
      return;
    case 'lost':
      return;
  }
}

/** `themis dequeue` of a run we hold: stop its step, or settle it now when none runs. */
function dequeue(c: Core, a: HeldRun): void {
  const p = a.phase;
  if (p.kind === 'running') return void c.out.push({ type: 'kill', key: p.key, reason: 'dequeue' });
  if (p.kind !== 'waiting') return; // a hook, a recovery or a write in flight: the request waits for the next heartbeat
  c.takeWaiting(a.id);
  killDequeued(c, a);
}

export function killDequeued(c: Core, a: HeldRun): void {
  a.status = withHistory({ ...a.status, status: 'killed', reason: 'dequeued while running' }, 'killed', 'dequeued', c.at.iso);
  c.out.push({ type: 'clear-dequeue', runId: a.id, dir: a.dir });
  c.complete(a);
}

// --- stopping ---

/** Stop starting runs (walltime near, stop flag, max_failed_runs); running steps finish. */
export function stopStartingRuns(c: Core, cause: StopCause): void {
  const s = c.s;
  if (s.stopStarting) return;
  s.stopStarting = cause;
  const why = describeStop(cause);
  c.log(`starting no more runs: ${why}`);
  for (const a of s.waiting.splice(0)) c.requeue(a, why);
  c.checkDone();
}

/** Signal, allocation end or a packer error: start nothing, stop every step, put the runs back. */
export function interrupt(c: Core, cause: StopCause): void {
  const s = c.s;
  if (cause.kind === 'error') s.error ??= cause.message;
  if (s.interrupted) return;
  s.interrupted = cause;
  stopStartingRuns(c, cause);
  for (const a of s.byKey.values()) if (a.phase.kind === 'running') c.out.push({ type: 'kill', key: a.phase.key, reason: 'interrupt' });
  // Steps that died of a job-wide signal just before: that was this stop.
  for (const a of [...s.byKey.values()]) if (a.phase.kind === 'exited') c.settleExit(a, a.phase.slot, a.phase.key, { ...a.phase.exit, stoppedBy: 'interrupt' });
  c.checkDone();
}

/** The launcher died on its own: its steps may live on, detached. Stop them and requeue. */
export function launcherLost(c: Core, why: string): void {
  const s = c.s;
  c.log(`packer error: ${why}; stopping its steps`);
  s.error ??= why;
  const cause: StopCause = { kind: 'launcher-lost', why };
  s.interrupted = cause;
  stopStartingRuns(c, cause);
  for (const [key, a] of [...s.byKey]) {
    const p = a.phase;
    if ((p.kind === 'running' || p.kind === 'lost') && p.pid > 0) c.out.push({ type: 'kill-group', pid: p.pid });
    if (p.kind === 'lost') c.dropLost(a);
    else if (p.kind === 'exited') c.settleExit(a, p.slot, key, { ...p.exit, stoppedBy: 'interrupt' });
    else if (p.kind === 'running') {
      const exit: ExitRecord = {
        format: 1,
        runId: a.id,
        step: a.status.step,
        attempt: a.status.attempt,
        code: null,
        signal: 'SIGKILL',
        stoppedBy: 'interrupt',
        startedAt: c.at.iso,
        endedAt: c.at.iso,
        host: s.cfg.host,
        pid: p.pid,
      };
      c.settleExit(a, p.slot, key, exit);
    }
  }
  c.checkDone();
}
