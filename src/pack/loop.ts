import { ThemisError } from '../model/errors.js';
import { releaseClaim, tryClaim, type ClaimOptions, type OwnerInput } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { setupPaths } from '../store/layout.js';
import { journalFile, removeJournal } from '../store/journal.js';
import { hostName } from '../store/proc.js';
import { readStatus, withHistory, type EnsembleRecord, type StatusRecord } from '../store/records.js';
import { Hooks } from './hooks.js';
import { Launcher, type ExitRecord } from './launcher.js';
import { settleOrphan } from './orphan.js';
import { nextLaunches, type QueueItem } from './plan.js';
import { release, type PoolState, type Slot } from './pool.js';
import { dequeueRequested, noteBlocked, type Candidate } from './queue.js';
import { RunQueue, windowFor } from './run-queue.js';
import { spawnRequest, type LaunchSetup } from './launch-policy.js';
import type { PackerConfig } from './types.js';
import { HeldRuns, type Active } from './held.js';
import { EXTERNAL_STOP_SETTLE_MS, mayBeJobWideStop } from './lifecycle.js';

/**
 * The packer's event loop. Everything happens in response to an event: a step exit (from the
 * launcher), a heartbeat tick, a rescan tick, a signal, the walltime. Between events it does
 * nothing, so it costs no CPU while steps run.
 */
export class PackLoop extends HeldRuns {
  readonly blocked = new Map<number, string>();
  private pool: PoolState;
  private readonly runs: RunQueue;
  private scheduled = false;
  private recheck: NodeJS.Timeout | null = null;
  private finished!: (reason: string) => void;
  readonly done: Promise<string>;
  private timers: NodeJS.Timeout[] = [];
  private readonly claimOpts: ClaimOptions;
  /** Who claims: all this packer's claims link to one owner file in the setup dir's packers/. */
  readonly who: OwnerInput;

  constructor(
    cfg: PackerConfig,
    ens: EnsembleRecord,
    hooks: Hooks,
    pool: PoolState,
    private readonly launch: LaunchSetup,
  ) {
    super(cfg, ens, hooks);
    this.pool = pool;
    this.done = new Promise((resolve) => (this.finished = resolve));
    this.claimOpts = { leaseMs: cfg.leaseMs, now: () => fileServerNow(cfg.setupDir) };
    this.who = { jobId: cfg.jobId, packerId: this.packerId, ownerDir: setupPaths(cfg.setupDir).packersDir };
    this.runs = new RunQueue(cfg, this.claimOpts, windowFor(pool.nodes.reduce((n, x) => n + x.cores, 0)));
  }

  async start(): Promise<void> {
    this.launcher = await Launcher.start(this.cfg.graceMs, {
      exit: (key, exit) => void this.onExit(key, exit).catch((e) => this.fatal(e)),
      started: (key, pid) => {
        const a = this.byKey.get(key);
        if (a) a.pid = pid;
      },
      lost: (why) => this.launcherLost(why),
    }, journalFile(this.cfg.setupDir, this.packerId));
    this.every(this.cfg.heartbeatMs, () => this.heartbeat());
    this.every(this.cfg.rescanMs, () => {
      if (this.runs.due(this.cfg.rescanMs)) void this.rescan();
    });
    await this.rescan();
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    this.timers.push(t);
  }

  /** Stop starting runs (walltime near, stop flag, max_failed_runs); running steps finish. */
  stopStartingRuns(why: string): void {
    if (this.stopStarting) return;
    this.stopStarting = why;
    this.log(`starting no more runs: ${why}`);
    for (const a of this.waiting.splice(0)) this.requeue(a, why);
    this.checkDone();
  }

  /** Resolves after `ms`, or as soon as the packer is interrupted. */
  private settle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.settling.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.settling.add(done);
    });
  }

  private readonly settling = new Set<() => void>();

  /** Signal or allocation end: start nothing, stop every step, put the runs back in the queue. */
  interrupt(why: string): void {
    if (this.interrupted) return;
    this.interrupted = why;
    for (const wake of this.settling) wake();
    this.settling.clear();
    this.stopStartingRuns(why);
    for (const a of this.byKey.values()) this.launcher.kill(a.key!, 'interrupt');
    this.checkDone();
  }

  /** The launcher died on its own: its steps may live on, detached. Stop them and requeue. */
  private launcherLost(why: string): void {
    this.log(`packer error: ${why}; stopping its steps`);
    this.error ??= why;
    this.interrupted = `launcher lost: ${why}`;
    this.stopStartingRuns(this.interrupted);
    for (const [key, a] of [...this.byKey]) {
      if (a.pid > 0) {
        try {
          process.kill(-a.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      const now = new Date().toISOString();
      void this.onExit(key, { format: 1, runId: a.id, step: a.status.step, attempt: a.status.attempt, code: null, signal: 'SIGKILL', stoppedBy: 'interrupt', startedAt: now, endedAt: now, host: hostName(), pid: a.pid });
    }
    this.checkDone();
  }

  private fatal(e: unknown): void {
    this.log(`packer error: ${(e as Error)?.stack ?? e}`);
    this.error ??= String((e as Error)?.message ?? e);
    this.interrupt(`packer error: ${(e as Error)?.message ?? e}`);
  }

  // --- the queue ---

  private async rescan(): Promise<void> {
    if (this.runs.scanning || this.interrupted) return;
    const changesBefore = this.changes;
    await this.runs.scan(new Set<number>([...this.held.keys(), ...this.blocked.keys()]), (id) => this.held.has(id));
    this.dirty = this.changes !== changesBefore;
    this.schedule();
  }

  /** Coalesce many events into one decision per turn of the event loop. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.decide();
      } catch (e) {
        this.fatal(e);
      }
    });
  }

  private decide(): void {
    // The stop flag is read each heartbeat (not per decision: it costs a file read per launch).
    if (this.interrupted) return this.checkDone();
    const cands = this.stopStarting ? [] : this.runs.window();
    // Loaded candidates are QueueItems themselves; runs in hand get an item only while they wait.
    const items: QueueItem[] = this.waiting.length === 0 ? (cands as QueueItem[]) : this.waiting.map(itemOf).concat(cands as QueueItem[]);
    if (items.length > 0) {
      const d = nextLaunches(items, this.pool, this.byKey.size, this.cfg.now(), this.cfg.planOptions);
      this.pool = d.pool;
      for (const b of d.blocked) {
        const c = cands.find((x) => x.id === b.runId);
        if (c) {
          c.gone = true;
          this.markBlocked(c, b.reason);
          continue;
        }
        // A later step of a run in hand that cannot fit: back to the queue at that step, with why.
        const w = this.waiting.findIndex((a) => a.id === b.runId);
        if (w >= 0) {
          const [a] = this.waiting.splice(w, 1);
          this.blocked.set(a!.id, b.reason);
          this.log(`run ${a!.id} step ${a!.status.step} cannot run in this allocation: ${b.reason}`);
          this.requeue(a!, `blocked: ${b.reason}`);
        }
      }
      if (d.passedOver.length > 0) {
        const passed = new Set(d.passedOver);
        for (const a of this.waiting) if (passed.has(a.id)) a.passedOver++;
        for (const c of cands) if (passed.has(c.id)) c.passedOver++;
      }
      for (const l of d.launches) {
        const w = this.waiting.findIndex((a) => a.id === l.runId);
        if (w >= 0) {
          const [a] = this.waiting.splice(w, 1);
          void this.startStep(a!, l.slot).catch((e) => this.fatal(e));
        } else {
          const c = cands.find((x) => x.id === l.runId)!;
          c.gone = true;
          void this.claimAndStart(c, l.slot).catch((e) => this.fatal(e));
        }
      }
    }
    // Out of candidates: look for new work (add, requeue, stale claims), at most once per heartbeat.
    // (A full window whose runs all started or blocked may have more behind it: look again then.)
    const idle = !this.stopStarting && cands.every((c) => c.gone) && (cands.length < this.runs.windowSize || this.runs.window().length === 0);
    if (idle && !this.runs.scanning && this.held.size > 0 && this.runs.due(Math.min(this.cfg.heartbeatMs, 2000))) void this.rescan();
    this.checkDone();
  }

  private markBlocked(c: Candidate, reason: string): void {
    this.blocked.set(c.id, reason);
    this.log(`run ${c.id} cannot run in this allocation: ${reason}`);
    noteBlocked(c.dir, reason, this.who, this.claimOpts);
  }

  // --- starting ---

  private async claimAndStart(c: Candidate, slot: Slot): Promise<void> {
    // A scan that raced with our own claim can list a run we hold. Never claim it again: under
    // load our own heartbeat can look older than a short lease, and we would break our own claim
    // and start the same step twice.
    // The queue keeps its consumed entries until the next scan (minutes apart with a huge
    // ensemble): keep the run's record only in the Active, or every launched run's stays in memory.
    const record = c.record!;
    c.record = undefined;
    if (this.held.has(c.id)) return this.giveBack(slot);
    let got: ReturnType<typeof tryClaim>;
    try {
      got = tryClaim(c.dir, this.who, this.claimOpts);
    } catch (e) {
      // One run directory refusing its claim (read-only, deleted meanwhile, a symlinked .themis)
      // must not stop the whole packer: skip that run, say why, carry on with the others.
      if (!(e instanceof ThemisError)) throw e;
      this.giveBack(slot);
      this.blocked.set(c.id, e.message);
      this.log(`run ${c.id} not started: ${e.message}`);
      return;
    }
    if (!got) {
      this.runs.contested.add(c.id);
      return this.giveBack(slot);
    }
    this.runs.contested.delete(c.id);
    let status: StatusRecord | null;
    try {
      status = readStatus(c.dir);
    } catch (e) {
      this.log(`run ${c.id}: ${(e as Error).message}; skipped`);
      releaseClaim(got.claim);
      return this.giveBack(slot);
    }
    if (!status || (status.status !== 'queued' && status.status !== 'running') || this.stopStarting) {
      releaseClaim(got.claim);
      return this.giveBack(slot);
    }
    if (!(status.step >= 0 && status.step < record.steps.length)) {
      // A status pointing past the run's steps (edited by hand, or a newer themis): never guess.
      const why = `status says step ${status.step} but the run has ${record.steps.length} steps; \`themis requeue --hard ${c.id}\` starts it over`;
      releaseClaim(got.claim);
      this.giveBack(slot);
      this.blocked.set(c.id, why);
      this.log(`run ${c.id} not started: ${why}`);
      return;
    }
    if (got.broken) status = withHistory(status, 'claim broken', `stale claim of packer ${got.broken.packerId} (host ${got.broken.host}, pid ${got.broken.pid})`);
    const a: Active = { id: c.id, dir: c.dir, record, status, claim: got.claim, slot: null, key: null, since: c.since, passedOver: c.passedOver, lost: false, prepped: false, pid: 0 };
    this.held.set(a.id, a);
    if (status.status === 'running') {
      // Its packer died: finish that packer's bookkeeping before anything runs again.
      const o = await settleOrphan(this.cfg.setupDir, a.dir, status, this.cfg.graceMs);
      a.status = withHistory(a.status, 'recovered', o.note);
      if (o.exit) {
        this.giveBack(slot);
        return this.applyExit(a, o.exit, true);
      }
      a.status = { ...a.status, attempt: a.status.attempt + 1 };
    }
    a.prepped = a.status.step > 0 || a.status.attempt > 0 || a.status.restarts > 0;
    // `themis dequeue` raced with our claim: honour it before starting anything.
    if (dequeueRequested(a.dir)) {
      this.giveBack(slot);
      return this.stopRun(a, 'dequeue');
    }
    if (sameNeed(needOf(a), c.need!)) return this.startStep(a, slot);
    this.giveBack(slot);
    this.wait(a);
  }

  protected freeSlot(a: Active): void {
    if (a.slot) this.pool = release(this.pool, a.slot);
    a.slot = null;
  }

  private giveBack(slot: Slot): void {
    this.pool = release(this.pool, slot);
    this.schedule();
  }

  protected wait(a: Active): void {
    if (this.stopStarting) return this.requeue(a, this.stopStarting);
    this.waiting.push(a);
    this.schedule();
  }

  private async startStep(a: Active, slot: Slot): Promise<void> {
    if (this.interrupted || a.lost) {
      this.giveBack(slot);
      return a.lost ? this.drop(a) : this.requeue(a, this.interrupted!);
    }
    a.slot = slot;
    if (!a.prepped && this.hooks.has('prepRun')) {
      a.prepped = true;
      try {
        await this.hooks.call('prepRun', { id: a.id, record: a.record, dir: a.dir });
      } catch (e) {
        return this.hookFailed(a, 'prepRun', e);
      }
      if (this.interrupted || a.lost) {
        this.freeSlot(a);
        this.schedule();
        return a.lost ? this.drop(a) : this.requeue(a, this.interrupted!);
      }
    }
    a.prepped = true;
    const stepIndex = a.status.step;
    const step = a.record.steps[stepIndex]!;
    const now = new Date().toISOString();
    // A key no other launch of this packer has (a requeued run counts attempts from 0 again): the
    // status names it, so a successor finds this launch's start and exit in our journal.
    const key = `${a.id}:${stepIndex}:${a.status.attempt}:${++this.launchSeq}`;
    const next: StatusRecord = withHistory(
      { ...a.status, status: 'running', startedAt: now, endedAt: null, exitCode: null, signal: null, host: hostName(), jobId: this.cfg.jobId, reason: null, launch: { packer: this.packerId, key } },
      'started',
      `step ${stepIndex} attempt ${a.status.attempt}`,
    );
    // Claim, then the `running` status naming the launch, then the spawn: a successor never
    // finds a step running that no status leads to.
    if (!this.writeHeld(a, next)) {
      this.giveBack(slot);
      a.slot = null;
      return this.drop(a);
    }
    a.key = key;
    this.byKey.set(key, a);
    this.counts.started++;
    this.cfg.onChange?.();
    this.launcher.spawn(spawnRequest(this.launch, this.pool, slot, { key, runId: a.id, runDir: a.dir, setupDir: this.cfg.setupDir, stepIndex, attempt: a.status.attempt, step }));
  }

  // --- exits ---

  private async onExit(key: string, exit: ExitRecord): Promise<void> {
    const a = this.byKey.get(key);
    if (!a) return;
    if (exit.stoppedBy === null && mayBeJobWideStop(exit)) {
      // `scancel` and a job's time limit signal every process of the job at once: the step may die
      // just before or just after our own SIGTERM arrives. If we are told to stop within a short
      // window, the step was interrupted with the allocation (back to the queue), not a failure.
      if (!this.interrupted) await this.settle(EXTERNAL_STOP_SETTLE_MS);
      if (this.interrupted) exit = { ...exit, stoppedBy: 'interrupt' };
    }
    this.byKey.delete(key);
    a.key = null;
    if (a.slot) this.pool = release(this.pool, a.slot);
    a.slot = null;
    // The run's last step succeeded: start the next run on the freed cores first, then do this
    // one's bookkeeping, so the launcher forks while we write files. Anything else (a failure that
    // may hit max_failed_runs, a postRun that may stop the ensemble, a next step that keeps its
    // priority for the cores) is settled before deciding, as usual.
    const plainSuccess = exit.code === 0 && exit.signal === null && exit.stoppedBy === null && !this.hooks.has('postRun');
    if (plainSuccess && a.status.step === a.record.steps.length - 1 && !this.interrupted) this.decideNow();
    await this.applyExit(a, exit, false);
    this.schedule();
  }

  private decideNow(): void {
    try {
      this.decide();
    } catch (e) {
      this.fatal(e);
    }
  }

  // --- the end ---

  protected checkDone(): void {
    if (this.held.size > 0 || this.runs.scanning) return;
    if (this.interrupted || this.stopStarting) return this.finish(this.interrupted ?? this.stopStarting!);
    if (this.runs.window().length > 0) return;
    // Nothing in hand and nothing known: one fresh look before deciding the work is done.
    if (this.dirty) {
      void this.rescan();
      return;
    }
    const { suspects, contested } = this.runs;
    if (suspects > 0 || contested.size > 0) {
      // Runs held by a packer that went silent (or a queued run whose claimer died mid-claim):
      // wait for their claims to go stale and take them over, rather than leave them unfinished.
      if (!this.recheck) {
        this.log(`${suspects + contested.size} runs are held by packers that stopped heartbeating or never finished claiming; waiting to take them over`);
        this.recheck = setTimeout(() => {
          this.recheck = null;
          void this.rescan();
        }, this.cfg.heartbeatMs);
      }
      return;
    }
    this.finish(this.blocked.size > 0 ? 'only runs that cannot fit this allocation remain' : 'nothing left to run');
  }

  private finishing = false;
  private finish(reason: string): void {
    if (this.finishing) return;
    this.finishing = true;
    for (const t of this.timers) clearInterval(t);
    if (this.recheck) clearTimeout(this.recheck);
    void this.launcher.close().then(() => {
      // Every run we held now has a status of our writing that no longer points into our journal,
      // unless a status write failed or a claim was taken from us: then a successor may need it.
      if (!this.error && !this.journalNeeded) removeJournal(this.cfg.setupDir, this.packerId);
      this.finished(reason);
    });
  }

  /** Runs queued or running anywhere at the last scan. */
  get pendingAtLastScan(): number {
    return this.runs.pending;
  }
}

function itemOf(a: Active): QueueItem {
  return { runId: a.id, need: needOf(a), since: a.since, passedOver: a.passedOver };
}

function needOf(a: Active) {
  const step = a.record.steps[a.status.step]!;
  return { tasks: step.tasks, coresPerTask: step.coresPerTask, gpusPerTask: step.gpusPerTask };
}

function sameNeed(x: { tasks: number; coresPerTask: number; gpusPerTask: number }, y: { tasks: number; coresPerTask: number; gpusPerTask: number }): boolean {
  return x.tasks === y.tasks && x.coresPerTask === y.coresPerTask && x.gpusPerTask === y.gpusPerTask;
}
