import { resourcesOf, sameResources, type StepResources } from '../model/resources.js';
import { addHistory, withHistory, type StatusRecord } from '../store/records.js';
import { nodeLost, spawnRefused, takeJobStep } from './core-nodes.js';
import { heartbeat, interrupt, killDequeued, launcherLost, stopStartingRuns } from './core-stops.js';
import type { Effect, PackerEvent } from './events.js';
import { routeOf } from './launch-policy.js';
import type { ExitRecord } from './launcher-protocol.js';
import { afterStepExit, EXTERNAL_STOP_SETTLE_MS, hookFailure, mayBeJobWideStop, RUNNING_WRITE_DELAY_MS, type LifecyclePolicy, type Next } from './lifecycle.js';
import { nextLaunches, type QueueItem } from './plan.js';
import { release, type Slot } from './pool.js';
import type { LoadedCandidate } from './queue.js';
import { describeStop, type HeldRun, type PackerState, type StopCause } from './state.js';

/** The moment an event is handled: the packer's clock (ms) and the wall clock (ISO, for records). */
export interface At {
  now: number;
  iso: string;
}

/**
 * The packer's core: what one event does to the state, and what it asks the world to do. No I/O,
 * no clock (the moment comes in `at`), no randomness: a test drives it with events and reads the
 * effects. For speed the state is updated in place (copying a 100,000-run state per event would make
 * a launch cost grow with the allocation); effects come back in the order they must be carried out.
 */
export function transition(s: PackerState, ev: PackerEvent, at: At): Effect[] {
  const out: Effect[] = [];
  if (s.finished !== null) return out;
  const t = new Core(s, out, at);
  switch (ev.type) {
    case 'decide':
      t.decide(ev.candidates, ev.windowSize);
      break;
    case 'claimed':
      t.claimed(ev);
      break;
    case 'claim-failed':
      t.claimFailed(ev);
      break;
    case 'orphan-settled':
      t.orphanSettled(ev);
      break;
    case 'hook-done':
      t.hookDone(ev);
      break;
    case 'result-written':
      t.resultWritten(ev);
      break;
    case 'status-written':
      t.statusWritten(ev);
      break;
    case 'step-started': {
      const a = s.byKey.get(ev.key);
      if (a && (a.phase.kind === 'running' || a.phase.kind === 'lost')) a.phase.pid = ev.pid;
      break;
    }
    case 'step-exited':
      t.stepExited(ev.key, ev.exit);
      break;
    case 'running-write-due':
      t.runningWriteDue(ev.key);
      break;
    case 'job-stop-window-closed': {
      const a = s.byKey.get(ev.key);
      if (a && a.phase.kind === 'exited') t.settleExit(a, a.phase.slot, ev.key, a.phase.exit);
      break;
    }
    case 'failures-counted':
      t.failuresCounted(ev.failed);
      break;
    case 'heartbeat':
      heartbeat(t, ev);
      break;
    case 'rescan-due':
      if (ev.recheck) s.scan.recheckPending = false;
      t.startRescan();
      break;
    case 'scanned':
      t.scanned(ev.pending, ev.suspects);
      break;
    case 'stop-starting':
      stopStartingRuns(t, ev.cause);
      break;
    case 'interrupt':
      interrupt(t, ev.cause);
      break;
    case 'signal':
      s.signal ??= ev.signal;
      t.log(`received ${ev.signal}: stopping every step and putting their runs back in the queue`);
      interrupt(t, { kind: 'signal', signal: ev.signal });
      break;
    case 'launcher-lost':
      launcherLost(t, ev.why);
      break;
    case 'node-lost':
      nodeLost(t, ev.node, ev.why, ev.exits);
      break;
    case 'spawn-refused':
      if (ev.limitReached) s.steps.exhausted = true;
      spawnRefused(t, ev.key, ev.why);
      break;
  }
  return out;
}

export type Ev<T extends PackerEvent['type']> = Extract<PackerEvent, { type: T }>;

/**
 * One event's handling: the state, the effects so far and the moment, shared by the helpers below
 * and by the transitions about job steps and other nodes (`core-nodes.ts`) and about heartbeats and
 * stops (`core-stops.ts`). The run's life cycle (decide, claim, start, exit, settle) is here.
 */
export class Core {
  constructor(
    readonly s: PackerState,
    readonly out: Effect[],
    readonly at: At,
  ) {}

  log(line: string): void {
    this.out.push({ type: 'log', line });
  }

  // --- deciding what starts ---

  decide(candidates: LoadedCandidate[], windowSize: number): void {
    const s = this.s;
    if (s.interrupted) {
      this.checkDone();
      return;
    }
    const cands = s.stopStarting ? [] : candidates;
    // Loaded candidates are QueueItems themselves; runs in hand get an item only while they wait.
    const items: QueueItem[] = s.waiting.length === 0 ? cands : s.waiting.map(itemOf).concat(cands);
    if (items.length > 0) {
      const d = nextLaunches(items, s.pool, s.byKey.size, this.at.now, s.cfg.planOptions);
      s.pool = d.pool;
      for (const b of d.blocked) {
        const c = cands.find((x) => x.id === b.runId);
        if (c) {
          c.gone = true;
          s.blocked.set(c.id, b.reason);
          this.log(`run ${c.id} cannot run in this allocation: ${b.reason}`);
          this.out.push({ type: 'note-blocked', dir: c.dir, reason: b.reason });
          continue;
        }
        // A later step of a run in hand that cannot fit: back to the queue at that step, with why.
        const a = this.takeWaiting(b.runId);
        if (a) {
          s.blocked.set(a.id, b.reason);
          this.log(`run ${a.id} step ${a.status.step} cannot run in this allocation: ${b.reason}`);
          this.requeue(a, `blocked: ${b.reason}`);
        }
      }
      if (d.passedOver.length > 0) {
        const passed = new Set(d.passedOver);
        for (const a of s.waiting) if (passed.has(a.id)) a.passedOver++;
        for (const c of cands) if (passed.has(c.id)) c.passedOver++;
      }
      for (const l of d.launches) {
        const a = this.takeWaiting(l.runId);
        if (a) {
          this.startStep(a, l.slot);
          continue;
        }
        const c = cands.find((x) => x.id === l.runId)!;
        c.gone = true;
        // A scan that raced with our own claim can list a run we hold. Never claim it again: under
        // load our own heartbeat can look older than a short lease, and we would break our own
        // claim and start the same step twice.
        if (s.held.has(c.id)) {
          this.giveBack(l.slot);
          continue;
        }
        s.claimsInFlight++;
        this.out.push({ type: 'claim', candidate: c, slot: l.slot });
      }
    }
    const windowWasFull = cands.length >= windowSize;
    const allTaken = cands.every((c) => c.gone);
    // Out of candidates: look for new work (add, requeue, stale claims), at most once per heartbeat.
    if (!s.stopStarting && allTaken && !s.scan.running && s.held.size + s.claimsInFlight > 0) this.out.push({ type: 'look-for-work', windowWasFull });
    this.checkDone({ remaining: !allTaken, windowWasFull });
  }

  takeWaiting(runId: number): HeldRun | null {
    const w = this.s.waiting.findIndex((a) => a.id === runId);
    if (w < 0) return null;
    return this.s.waiting.splice(w, 1)[0]!;
  }

  /** Cores and GPUs back to the pool, and a decision soon to use them. */
  giveBack(slot: Slot): void {
    this.s.pool = release(this.s.pool, slot);
    this.out.push({ type: 'decide-soon' });
  }

  // --- claiming ---

  claimed(ev: Ev<'claimed'>): void {
    const s = this.s;
    const c = ev.candidate;
    s.claimsInFlight--;
    s.scan.contested.delete(c.id);
    const releaseClaim = () => this.out.push({ type: 'release-claim', claim: ev.claim });
    if (ev.statusError !== null) {
      this.log(`run ${c.id}: ${ev.statusError}; skipped`);
      releaseClaim();
      this.giveBack(ev.slot);
      return;
    }
    let status = ev.status;
    // The claim, not the earlier scan, makes the status current: it may have finished meanwhile.
    if (!status || (status.status !== 'queued' && status.status !== 'running') || s.stopStarting) {
      releaseClaim();
      this.giveBack(ev.slot);
      return;
    }
    if (!(status.step >= 0 && status.step < ev.record.steps.length)) {
      // A status pointing past the run's steps (edited by hand, or a newer themis): never guess.
      const why = `status says step ${status.step} but the run has ${ev.record.steps.length} steps; \`themis requeue --hard ${c.id}\` starts it over`;
      releaseClaim();
      this.giveBack(ev.slot);
      s.blocked.set(c.id, why);
      this.log(`run ${c.id} not started: ${why}`);
      return;
    }
    const b = ev.broken;
    if (b) status = withHistory(status, 'claim broken', `stale claim of packer ${b.packerId} (host ${b.host}, pid ${b.pid})`, this.at.iso);
    const need = c.need;
    const a: HeldRun = {
      id: c.id,
      dir: c.dir,
      record: ev.record,
      status,
      claim: ev.claim,
      since: c.since,
      passedOver: c.passedOver,
      // A `running` status means a step was launched, so prepRun had run.
      needsPrep: status.status !== 'running',
      phase: { kind: 'recovering', slot: ev.slot, need },
      launchKey: null,
    };
    s.held.set(a.id, a);
    // Its packer died mid-step: finish that packer's bookkeeping before anything runs again.
    if (status.status === 'running') return void this.out.push({ type: 'settle-orphan', runId: a.id, dir: a.dir, status });
    this.afterClaim(a, ev.slot, need, ev.dequeueRequested);
  }

  claimFailed(ev: Ev<'claim-failed'>): void {
    const s = this.s;
    s.claimsInFlight--;
    this.giveBack(ev.slot);
    if (ev.why === 'contested') {
      s.scan.contested.add(ev.candidate.id);
      return;
    }
    // One run directory refusing its claim (read-only, deleted meanwhile, a symlinked .themis)
    // must not stop the whole packer: skip that run, say why, carry on with the others.
    s.blocked.set(ev.candidate.id, ev.message);
    this.log(`run ${ev.candidate.id} not started: ${ev.message}`);
  }

  orphanSettled(ev: Ev<'orphan-settled'>): void {
    const a = this.s.held.get(ev.runId);
    if (!a) return;
    if (a.phase.kind === 'lost') {
      this.dropLost(a);
      return;
    }
    if (a.phase.kind !== 'recovering') return;
    const { slot, need } = a.phase;
    a.status = withHistory(a.status, 'recovered', ev.outcome.note, this.at.iso);
    if (ev.outcome.exit) {
      this.giveBack(slot);
      this.applyExit(a, ev.outcome.exit, true);
      return;
    }
    a.status = { ...a.status, attempt: a.status.attempt + 1 };
    this.afterClaim(a, slot, need, ev.dequeueRequested);
  }

  private afterClaim(a: HeldRun, slot: Slot, need: StepResources, dequeueRequested: boolean): void {
    if (a.status.step > 0 || a.status.attempt > 0 || a.status.restarts > 0) a.needsPrep = false;
    // `themis dequeue` raced with our claim: honour it before starting anything.
    if (dequeueRequested) {
      this.giveBack(slot);
      killDequeued(this, a);
      return;
    }
    // The slot was found for the needs the scan saw; the status read under the claim may be at another step.
    if (sameResources(needOf(a), need)) {
      this.startStep(a, slot);
      return;
    }
    this.giveBack(slot);
    this.wait(a);
  }

  // --- starting a step ---

  private startStep(a: HeldRun, slot: Slot): void {
    const s = this.s;
    if (s.interrupted) {
      this.giveBack(slot);
      this.requeue(a, describeStop(s.interrupted));
      return;
    }
    if (a.needsPrep && s.cfg.hasPrepRun) {
      a.needsPrep = false;
      a.phase = { kind: 'prepping', slot };
      return void this.out.push({ type: 'run-hook', hook: 'prepRun', runId: a.id, record: a.record, dir: a.dir });
    }
    a.needsPrep = false;
    this.launchStep(a, slot);
  }

  /**
   * Launch the run's step at once; its `running` status (naming the launch) is written only if the
   * step still runs RUNNING_WRITE_DELAY_MS later: a step that ends sooner costs one status write,
   * its final one, not two. A successor that finds the run's status still `queued` under our stale
   * claim looks our journal up for a launch made from that very status version (the key says
   * which: `journal.ts`, adoptLaunch), so it settles the step instead of running it again.
   */
  private launchStep(a: HeldRun, slot: Slot): void {
    const s = this.s;
    const stepIndex = a.status.step;
    const route = routeOf(s.cfg.launch, slot, a.record.steps[stepIndex]!);
    if (!takeJobStep(this, a, slot, route)) return;
    const remote = route.kind === 'node' && route.node !== s.cfg.launch.ownNode ? s.pool.nodes[route.node]!.name : null;
    // A key no other launch of this packer has (a requeued run counts attempts from 0 again), and
    // the revision of the status on disk it was launched from.
    const key = `${a.id}:${stepIndex}:${a.status.attempt}:${a.status.rev ?? 0}.${++s.launchSeq}`;
    a.status = addHistory(
      {
        ...a.status,
        status: 'running',
        startedAt: this.at.iso,
        endedAt: null,
        exitCode: null,
        signal: null,
        host: s.cfg.host,
        jobId: s.cfg.jobId,
        reason: null,
        launch: remote ? { packer: s.cfg.packerId, key, node: remote } : { packer: s.cfg.packerId, key },
      },
      'started',
      `step ${stepIndex} attempt ${a.status.attempt}`,
      this.at.iso,
    );
    a.phase = { kind: 'running', slot, key, route, pid: 0, written: false };
    s.byKey.set(key, a);
    s.counts.started++;
    this.out.push({ type: 'changed' });
    this.out.push({ type: 'spawn', key, runId: a.id, dir: a.dir, slot, route, stepIndex, attempt: a.status.attempt, step: a.record.steps[stepIndex]! });
    this.out.push({ type: 'write-running-later', key, ms: RUNNING_WRITE_DELAY_MS });
  }

  /** The step still runs: now its `running` status says so (and names the launch). */
  runningWriteDue(key: string): void {
    const a = this.s.byKey.get(key);
    const p = a?.phase;
    if (!a || p?.kind !== 'running' || p.key !== key || p.written) return;
    p.written = true;
    this.out.push({ type: 'write-status', runId: a.id, dir: a.dir, claim: a.claim, status: a.status });
  }

  // --- hooks ---

  hookDone(ev: Ev<'hook-done'>): void {
    const a = this.s.held.get(ev.runId);
    if (!a) return;
    const p = a.phase;
    if (p.kind === 'lost') {
      this.dropLost(a);
      return;
    }
    if (ev.hook === 'prepRun' && p.kind === 'prepping') {
      if (!ev.ok) {
        this.prepFailed(a, p.slot, ev.message, ev.detail);
        return;
      }
      if (this.s.interrupted) {
        this.giveBack(p.slot);
        this.requeue(a, describeStop(this.s.interrupted));
        return;
      }
      this.launchStep(a, p.slot);
      return;
    }
    if (ev.hook === 'postRun' && p.kind === 'post-run') {
      // postRun after the last step; its value is the run's result. A throw retries postRun alone.
      if (!ev.ok) {
        this.postRunFailed(a, ev.message, ev.detail);
        return;
      }
      if (ev.value === undefined) {
        this.postRunOver(a);
        return;
      }
      this.out.push({ type: 'write-result', runId: a.id, dir: a.dir, value: ev.value });
    }
  }

  resultWritten(ev: Ev<'result-written'>): void {
    const a = this.s.held.get(ev.runId);
    if (!a) return;
    if (a.phase.kind === 'lost') {
      this.dropLost(a);
      return;
    }
    if (a.phase.kind !== 'post-run') return;
    if (ev.ok) {
      this.postRunOver(a);
      return;
    }
    this.postRunFailed(a, ev.message, ev.message);
  }

  /** The run is settled after its postRun: now what it may have changed (a stop) is known, decide. */
  private postRunOver(a: HeldRun): void {
    this.complete(a);
    this.out.push({ type: 'decide-soon' });
  }

  /** postRun threw (or its result could not be written): run postRun again while the budget lasts. */
  private postRunFailed(a: HeldRun, message: string, detail: string): void {
    this.appendLog(a, `themis: postRun failed: ${detail}`);
    const budgetLeft = this.s.cfg.maxRestarts === -1 || a.status.restarts < this.s.cfg.maxRestarts;
    const reason = `postRun failed: ${message}`;
    if (!budgetLeft || this.s.interrupted) {
      a.status = withHistory({ ...a.status, status: 'failed', reason: `${reason}; no restarts left` }, 'failed', reason, this.at.iso);
      this.postRunOver(a);
      return;
    }
    a.status = withHistory({ ...a.status, restarts: a.status.restarts + 1 }, 'restart', reason, this.at.iso);
    this.out.push({ type: 'run-hook', hook: 'postRun', runId: a.id, record: a.record, dir: a.dir });
  }

  /** prepRun threw: the step fails like a non-zero exit, and prepRun runs again before its retry. */
  private prepFailed(a: HeldRun, slot: Slot, message: string, detail: string): void {
    this.appendLog(a, `themis: prepRun failed: ${detail}`);
    this.giveBack(slot);
    a.needsPrep = true;
    const r = hookFailure(a.status, 'prepRun', message, this.policy(a), this.at.iso);
    a.status = r.status;
    this.advance(a, r.next);
  }

  private appendLog(a: HeldRun, text: string): void {
    const step = a.record.steps[Math.min(a.status.step, a.record.steps.length - 1)]!;
    this.out.push({ type: 'append-log', dir: a.dir, cwd: step.cwd, text });
  }

  // --- step exits ---

  stepExited(key: string, reported: ExitRecord): void {
    const s = this.s;
    const a = s.byKey.get(key);
    if (!a) return;
    const p = a.phase;
    if (p.kind === 'lost') {
      this.dropLost(a);
      return;
    }
    if (p.kind !== 'running') return;
    let exit = reported;
    if (exit.stoppedBy === null && mayBeJobWideStop(exit)) {
      // `scancel` and a job's time limit signal every process of the job at once: the step may die
      // just before or just after our own SIGTERM arrives. If we are told to stop within a short
      // window, the step was interrupted with the allocation (back to the queue), not a failure.
      if (!s.interrupted) {
        a.phase = { kind: 'exited', slot: p.slot, key, exit };
        return void this.out.push({ type: 'wait-job-stop', key, ms: EXTERNAL_STOP_SETTLE_MS });
      }
      exit = { ...exit, stoppedBy: 'interrupt' };
    }
    this.settleExit(a, p.slot, key, exit);
  }

  settleExit(a: HeldRun, slot: Slot, key: string, exit: ExitRecord): void {
    const s = this.s;
    s.byKey.delete(key);
    s.pool = release(s.pool, slot);
    // The run's last step succeeded: start the next run on the freed cores first, then do this
    // one's bookkeeping, so the launcher forks while we write files. Anything else (a failure that
    // may hit max_failed_runs, a postRun that may stop the ensemble, a next step that keeps its
    // priority for the cores) is settled before deciding, as usual.
    const plainSuccess = exit.code === 0 && exit.signal === null && exit.stoppedBy === null && !s.cfg.hasPostRun;
    const decidedFirst = plainSuccess && a.status.step === a.record.steps.length - 1 && !s.interrupted;
    if (decidedFirst) this.out.push({ type: 'decide-now' });
    this.applyExit(a, exit, false);
    // Decided already (the bookkeeping frees nothing more), or a postRun that may stop the
    // ensemble is settled before deciding (see `postRunOver`).
    if (!decidedFirst && a.phase.kind !== 'post-run') this.out.push({ type: 'decide-soon' });
  }

  /** `recovered`: the exit of a dead packer's launch, found in its journal. */
  private applyExit(a: HeldRun, exit: ExitRecord, recovered: boolean): void {
    // Our own step stopped because we lost its claim: the new holder settles the run. A dead
    // packer's step stopped that way (recovered: the claim is ours now) runs again, like any
    // interrupted step; dropping it would leave its `running` status with no claim, forever.
    if (!recovered && exit.stoppedBy === 'lost-claim') {
      this.drop(a, true);
      return;
    }
    let r = afterStepExit(a.status, exit, this.policy(a), this.at.iso);
    // An interrupted step of a dead packer is simply run again here (no restart used).
    if (recovered && r.next === 'requeue') r = { status: { ...r.status, status: 'running' }, next: 'restart' };
    a.status = r.status;
    if (exit.stoppedBy === 'dequeue') this.out.push({ type: 'clear-dequeue', runId: a.id, dir: a.dir });
    if (r.next === 'done' && a.status.status === 'successful' && this.s.cfg.hasPostRun) {
      a.phase = { kind: 'post-run' };
      return void this.out.push({ type: 'run-hook', hook: 'postRun', runId: a.id, record: a.record, dir: a.dir });
    }
    this.advance(a, r.next);
  }

  private advance(a: HeldRun, next: Next): void {
    if (next === 'requeue') {
      this.requeue(a, a.status.reason ?? 'interrupted');
      return;
    }
    if (next === 'done') {
      this.complete(a);
      return;
    }
    a.since = this.at.now;
    a.passedOver = 0;
    this.wait(a);
  }

  private wait(a: HeldRun): void {
    if (this.s.stopStarting) {
      this.requeue(a, describeStop(this.s.stopStarting));
      return;
    }
    a.phase = { kind: 'waiting' };
    this.s.waiting.push(a);
    this.out.push({ type: 'decide-soon' });
  }

  private policy(a: HeldRun): LifecyclePolicy {
    const step = a.record.steps[Math.min(a.status.step, a.record.steps.length - 1)]!;
    const c = this.s.cfg;
    return { maxRestarts: c.maxRestarts, abortOn: c.abortOn, stepCount: a.record.steps.length, timeoutMinutes: step.timeout };
  }

  // --- settling a run: its last status, then the claim goes ---

  complete(a: HeldRun): void {
    this.writeHeld(a, a.status, 'final');
  }

  requeue(a: HeldRun, why: string): void {
    this.writeHeld(a, withHistory({ ...a.status, status: 'queued', reason: `requeued: ${why}` }, 'requeued', why, this.at.iso), 'requeue');
  }

  private writeHeld(a: HeldRun, status: StatusRecord, purpose: 'final' | 'requeue'): void {
    // A status that leaves `running` no longer belongs to a launch.
    const s = status.status !== 'running' && status.launch ? { ...status, launch: null } : status;
    a.phase = { kind: 'writing', purpose, status: s };
    this.out.push({ type: 'write-status', runId: a.id, dir: a.dir, claim: a.claim, status: s });
  }

  statusWritten(ev: Ev<'status-written'>): void {
    const s = this.s;
    const a = s.held.get(ev.runId);
    if (!a) return;
    const p = a.phase;
    if (p.kind === 'lost') {
      this.dropLost(a);
      return;
    }
    if (p.kind === 'running') {
      // The deferred `running` status of a step that runs on.
      if (ev.ok) return;
      if (ev.why === 'claim-lost') {
        this.log(`run ${a.id}: claim lost; stopping its step and leaving its status to the new holder`);
        this.out.push({ type: 'kill', key: p.key, reason: 'lost-claim' });
        return;
      }
      // Its final status will most likely fail the same way; start nothing new meanwhile.
      s.error ??= ev.message;
      this.log(`run ${a.id}: cannot write its running status (${ev.message}); its step runs on, but this packer starts nothing new`);
      stopStartingRuns(this, { kind: 'status-unwritable', why: ev.message });
      return;
    }
    if (p.kind !== 'writing') return;
    if (!ev.ok) {
      if (ev.why === 'claim-lost') this.log(`run ${a.id}: claim lost; leaving its status to the new holder`);
      else {
        // Disk full, read-only, or the run directory gone. Leave the run as a dead packer would: the
        // claim is kept (no release) and goes stale a lease after this packer exits (its owner file
        // is refreshed until then), and whoever breaks it finishes the bookkeeping from the step's
        // journaled exit. Start nothing new, so the packer exits once its running steps end.
        s.error ??= ev.message;
        this.log(`run ${a.id}: cannot write its status (${ev.message}); it will be recovered after the lease by another packer or \`themis doctor --repair\``);
        stopStartingRuns(this, { kind: 'status-unwritable', why: ev.message });
      }
      this.drop(a, true);
      return;
    }
    a.status = p.status;
    if (p.purpose === 'requeue') s.counts.requeued++;
    else {
      const st = p.status.status;
      if (st === 'successful') s.counts.successful++;
      else if (st === 'failed') s.counts.failed++;
      else if (st === 'aborted') s.counts.aborted++;
      else if (st === 'killed') s.counts.killed++;
      if (st === 'failed') this.out.push({ type: 'mark-failed', runId: a.id, count: s.cfg.maxFailedRuns !== null });
    }
    this.drop(a, false);
  }

  failuresCounted(failed: number): void {
    const max = this.s.cfg.maxFailedRuns;
    if (max === null || failed <= max) return;
    const cause: StopCause = { kind: 'max-failed', failed, max };
    this.out.push({ type: 'set-stop-flag', reason: describeStop(cause), kind: 'max-failed-runs' });
    stopStartingRuns(this, cause);
  }

  /** The run leaves our hands. `lost`: without our final status (the journal stays for its successor). */
  drop(a: HeldRun, lost: boolean): void {
    const s = this.s;
    if (lost) s.journalNeeded = true;
    else this.out.push({ type: 'release-claim', claim: a.claim });
    s.held.delete(a.id);
    s.scan.dirty = true;
    s.changes++;
    this.out.push({ type: 'changed' });
    this.checkDone();
  }

  /** A lost run whose step, hook or recovery is over: its cores come back, its status is not ours. */
  dropLost(a: HeldRun): void {
    const p = a.phase;
    if (p.kind !== 'lost') return;
    if (p.key) this.s.byKey.delete(p.key);
    if (p.slot) this.giveBack(p.slot);
    this.drop(a, true);
  }

  // --- the queue and the end ---

  startRescan(): void {
    const s = this.s;
    if (s.scan.running || s.interrupted) return;
    s.scan.running = true;
    s.scan.changesAtStart = s.changes;
    this.out.push({ type: 'rescan' });
  }

  scanned(pending: number, suspects: number): void {
    const sc = this.s.scan;
    sc.running = false;
    sc.dirty = this.s.changes !== sc.changesAtStart;
    sc.pending = pending;
    sc.suspects = suspects;
    sc.contested.clear();
    this.out.push({ type: 'decide-soon' });
  }

  /**
   * Is the packer done? Only with nothing in hand and no scan or claim in flight. With a stop it
   * is; otherwise a decision looks at the queue first (`view` comes from one), and with nothing
   * there a fresh scan, runs held by silent packers and blocked runs have the last word.
   */
  checkDone(view?: { remaining: boolean; windowWasFull: boolean }): void {
    const s = this.s;
    if (s.finished !== null || s.held.size > 0 || s.claimsInFlight > 0 || s.scan.running) return;
    const cause = s.interrupted ?? s.stopStarting;
    if (cause) {
      this.finish(describeStop(cause));
      return;
    }
    if (!view) return void this.out.push({ type: 'decide-soon' });
    if (view.remaining) return;
    // Every run of a full window was blocked: there may be more behind it.
    if (view.windowWasFull) return void this.out.push({ type: 'decide-soon' });
    // Nothing in hand and nothing known: one fresh look before deciding the work is done.
    if (s.scan.dirty) {
      this.startRescan();
      return;
    }
    const waitingFor = s.scan.suspects + s.scan.contested.size;
    if (waitingFor > 0) {
      // Runs held by a packer that went silent (or a queued run whose claimer died mid-claim):
      // wait for their claims to go stale and take them over, rather than leave them unfinished.
      if (!s.scan.recheckPending) {
        s.scan.recheckPending = true;
        this.log(`${waitingFor} runs are held by packers that stopped heartbeating or never finished claiming; waiting to take them over`);
        this.out.push({ type: 'rescan-later', ms: s.cfg.heartbeatMs });
      }
      return;
    }
    this.finish(s.blocked.size > 0 ? 'only runs that cannot fit this allocation remain' : 'nothing left to run');
  }

  private finish(reason: string): void {
    const s = this.s;
    s.finished = reason;
    // Every run we held now has a status of our writing that no longer points into our journal,
    // unless a status write failed or a claim was taken from us: then a successor may need it.
    this.out.push({ type: 'finish', reason, keepJournal: s.error !== null || s.journalNeeded });
  }
}

function itemOf(a: HeldRun): QueueItem {
  return { runId: a.id, need: needOf(a), since: a.since, passedOver: a.passedOver };
}

function needOf(a: HeldRun): StepResources {
  return resourcesOf(a.record.steps[a.status.step]!);
}
