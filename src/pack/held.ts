import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { heartbeatClaim, holdsClaim, releaseClaim, type Claim } from '../store/claim.js';
import { failedCount, markFailed, readStop, setStop } from '../store/ensemble-state.js';
import { RUN_LOG, runPaths } from '../store/layout.js';
import { hostName } from '../store/proc.js';
import { withHistory, writeResult, writeStatus, type EnsembleRecord, type RunRecord, type StatusRecord } from '../store/records.js';
import type { Hooks } from './hooks.js';
import type { ExitRecord, Launcher, StopReason } from './launcher.js';
import { afterStepExit, hookFailure, type LifecyclePolicy, type Next } from './lifecycle.js';
import type { Slot } from './pool.js';
import { dequeueRequested } from './queue.js';
import type { PackerConfig, PackerCounts } from './types.js';

/** A run this packer holds the claim of. */
export interface Active {
  id: number;
  dir: string;
  record: RunRecord;
  status: StatusRecord;
  claim: Claim;
  slot: Slot | null;
  key: string | null;
  since: number;
  passedOver: number;
  /** Set when the heartbeat found the claim gone: never write this run's status again. */
  lost: boolean;
  prepped: boolean;
  /** The step's pid (= its process group), once the launcher said it started. */
  pid: number;
}

/**
 * The runs a packer holds: their claims (kept alive each heartbeat), their status writes (only
 * while the claim is still ours), and what happens when a step ends. The scheduling half lives in
 * `PackLoop`, which extends this.
 */
export abstract class HeldRuns {
  readonly packerId = `${hostName()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  readonly counts: PackerCounts = { started: 0, successful: 0, failed: 0, aborted: 0, killed: 0, requeued: 0 };
  protected readonly held = new Map<number, Active>();
  protected readonly byKey = new Map<string, Active>();
  protected waiting: Active[] = [];
  protected launcher!: Launcher;
  /** Something changed since the last scan (a run ended, a claim was lost): rescan before exiting. */
  protected dirty = true;
  /** Bumped on every change, so a scan that overlapped a change does not count as fresh. */
  protected changes = 0;
  stopStarting: string | null = null;
  interrupted: string | null = null;
  /** Set when the packer gave up on an error (it exits 1 after putting its runs back). */
  error: string | null = null;
  /** Launches so far: the last part of each launch key, so keys never repeat in our journal. */
  protected launchSeq = 0;
  /**
   * A run was dropped without our final status (claim lost, status unwritable): its status may
   * still point into our journal, so the journal stays for whoever settles the run.
   */
  protected journalNeeded = false;

  constructor(
    protected readonly cfg: PackerConfig,
    protected readonly ens: EnsembleRecord,
    protected readonly hooks: Hooks,
  ) {}

  protected abstract wait(a: Active): void;
  protected abstract checkDone(): void;
  /** Give the run's cores and GPUs back to the pool. */
  protected abstract freeSlot(a: Active): void;
  abstract stopStartingRuns(why: string): void;

  protected log(line: string): void {
    this.cfg.log(line);
  }

  get runningIds(): number[] {
    return [...this.held.keys()];
  }

  get activeCount(): number {
    return this.held.size;
  }

  protected policy(a: Active): LifecyclePolicy {
    const step = a.record.steps[Math.min(a.status.step, a.record.steps.length - 1)]!;
    return { maxRestarts: this.ens.maxRestarts, abortOn: this.ens.abortOn, stepCount: a.record.steps.length, timeoutMinutes: step.timeout };
  }

  protected async applyExit(a: Active, exit: ExitRecord, recovered: boolean): Promise<void> {
    // Our own step stopped because we lost its claim: the new holder settles the run. A dead
    // packer's step stopped that way (recovered: the claim is ours now) runs again, like any
    // interrupted step; dropping it would leave its `running` status with no claim, forever.
    if (a.lost || (!recovered && exit.stoppedBy === 'lost-claim')) return this.drop(a);
    let r = afterStepExit(a.status, exit, this.policy(a));
    // An interrupted step of a dead packer is simply run again here (no restart used).
    if (recovered && r.next === 'requeue') r = { status: { ...r.status, status: 'running' }, next: 'restart' };
    a.status = r.status;
    if (exit.stoppedBy === 'dequeue') this.clearDequeue(a);
    if (r.next === 'done' && a.status.status === 'successful' && this.hooks.has('postRun')) {
      await this.postRun(a);
    }
    this.advance(a, r.next);
  }

  protected advance(a: Active, next: Next): void {
    if (next === 'requeue') return this.requeue(a, a.status.reason ?? 'interrupted');
    if (next === 'done') return this.complete(a);
    a.since = this.cfg.now();
    a.passedOver = 0;
    this.wait(a);
  }

  /** postRun after the last step; its value is the run's result. A throw retries postRun alone. */
  protected async postRun(a: Active): Promise<void> {
    for (;;) {
      try {
        const value = await this.hooks.call('postRun', { id: a.id, record: a.record, dir: a.dir });
        if (value !== undefined && !a.lost) writeResult(a.dir, value);
        return;
      } catch (e) {
        this.appendLog(a, `themis: postRun failed: ${(e as Error)?.stack ?? e}`);
        const budgetLeft = this.ens.maxRestarts === -1 || a.status.restarts < this.ens.maxRestarts;
        const reason = `postRun failed: ${(e as Error)?.message ?? e}`;
        if (!budgetLeft || this.interrupted) {
          a.status = withHistory({ ...a.status, status: 'failed', reason: `${reason}; no restarts left` }, 'failed', reason);
          return;
        }
        a.status = withHistory({ ...a.status, restarts: a.status.restarts + 1 }, 'restart', reason);
      }
    }
  }

  protected hookFailed(a: Active, hook: 'prepRun', e: unknown): void {
    this.appendLog(a, `themis: ${hook} failed: ${(e as Error)?.stack ?? e}`);
    this.freeSlot(a);
    a.prepped = false;
    const r = hookFailure(a.status, hook, String((e as Error)?.message ?? e), this.policy(a), new Date().toISOString());
    a.status = r.status;
    this.advance(a, r.next);
  }

  protected appendLog(a: Active, text: string): void {
    const step = a.record.steps[Math.min(a.status.step, a.record.steps.length - 1)]!;
    try {
      const cwd = path.resolve(a.dir, step.cwd);
      fs.mkdirSync(cwd, { recursive: true });
      fs.appendFileSync(path.join(cwd, RUN_LOG), text + '\n');
    } catch {
      /* the status reason still says it */
    }
  }

  protected clearDequeue(a: Active): void {
    try {
      fs.unlinkSync(runPaths(a.dir).dequeueRequest);
    } catch {
      /* already gone */
    }
  }

  protected complete(a: Active): void {
    const s = a.status.status;
    if (this.writeHeld(a, a.status)) {
      if (s === 'successful') this.counts.successful++;
      else if (s === 'failed') this.counts.failed++;
      else if (s === 'aborted') this.counts.aborted++;
      else if (s === 'killed') this.counts.killed++;
      if (s === 'failed') this.countFailure(a.id);
    }
    this.drop(a);
  }

  protected countFailure(id: number): void {
    markFailed(this.cfg.setupDir, id);
    const max = this.ens.maxFailedRuns;
    if (max === null) return;
    const n = failedCount(this.cfg.setupDir);
    if (n > max) {
      const reason = `${n} runs failed, more than max_failed_runs (${max})`;
      if (!readStop(this.cfg.setupDir)) setStop(this.cfg.setupDir, { reason, by: this.packerId, kind: 'max-failed-runs' });
      this.stopStartingRuns(reason);
    }
  }

  protected requeue(a: Active, why: string): void {
    const s = withHistory({ ...a.status, status: 'queued', reason: `requeued: ${why}` }, 'requeued', why);
    if (this.writeHeld(a, s)) this.counts.requeued++;
    this.drop(a);
  }

  /** Write status only while the claim is still ours. */
  protected writeHeld(a: Active, s: StatusRecord): boolean {
    if (a.lost || !holdsClaim(a.claim)) {
      a.lost = true;
      this.log(`run ${a.id}: claim lost; leaving its status to the new holder`);
      return false;
    }
    // A status that leaves `running` no longer belongs to a launch.
    if (s.status !== 'running' && s.launch) s = { ...s, launch: null };
    try {
      writeStatus(a.dir, s);
    } catch (e) {
      // Disk full, read-only, or the run directory gone. Leave the run as a dead packer would: the
      // claim is kept (no release) and goes stale a lease after this packer exits (its owner file
      // is refreshed until then), and whoever breaks it finishes the bookkeeping from the step's
      // journaled exit. Start nothing new, so the packer exits once its running steps end.
      const why = (e as Error)?.message ?? String(e);
      a.lost = true;
      this.error ??= why;
      this.log(`run ${a.id}: cannot write its status (${why}); it will be recovered after the lease by another packer or \`themis doctor --repair\``);
      this.stopStartingRuns(`cannot write status files: ${why}`);
      return false;
    }
    a.status = s;
    return true;
  }

  protected drop(a: Active): void {
    if (a.lost) this.journalNeeded = true;
    else releaseClaim(a.claim);
    this.held.delete(a.id);
    this.dirty = true;
    this.changes++;
    this.cfg.onChange?.();
    this.checkDone();
  }

  // --- heartbeat ---

  /** The last heartbeat problem logged, so a failure that persists is said once, not every tick. */
  private heartbeatProblem: string | null = null;

  /**
   * Each heartbeat tick. A failure here (a full disk, an NFS hiccup) is logged, never thrown: a
   * throw from a timer would kill the packer and, with it, every running step.
   */
  protected heartbeat(): void {
    let problem: string | null = null;
    try {
      this.heartbeatClaims();
      const touch = [...this.held.values()].find((a) => a.claim.shared && !a.claim.shared.touchOk)?.claim.shared;
      if (touch) problem = `cannot refresh the claims' heartbeat (${touch.touchError}); they go stale after the lease if this goes on`;
      if (!this.stopStarting) {
        const stop = readStop(this.cfg.setupDir);
        if (stop) this.stopStartingRuns(`ensemble stopped: ${stop.reason}`);
      }
      this.cfg.onHeartbeat();
    } catch (e) {
      problem = `heartbeat: ${(e as Error)?.message ?? e}`;
    }
    if (problem !== this.heartbeatProblem && problem !== null) this.log(problem);
    this.heartbeatProblem = problem;
  }

  private heartbeatClaims(): void {
    for (const a of this.held.values()) {
      if (a.lost) continue;
      if (!heartbeatClaim(a.claim, this.cfg.leaseMs)) {
        a.lost = true;
        const touch = a.claim.shared && !a.claim.shared.touchOk ? `its heartbeat has failed for half the lease (${a.claim.shared.touchError})` : 'broken by another packer?';
        this.log(`run ${a.id}: claim lost (${touch}); stopping its step`);
        if (a.key) this.launcher.kill(a.key, 'lost-claim');
        else this.dropWaiting(a);
        continue;
      }
      if (dequeueRequested(a.dir)) this.stopRun(a, 'dequeue');
    }
  }

  protected stopRun(a: Active, reason: StopReason): void {
    if (a.key) return this.launcher.kill(a.key, reason);
    // Waiting for cores between steps: nothing to kill.
    const i = this.waiting.indexOf(a);
    if (i >= 0) this.waiting.splice(i, 1);
    a.status = withHistory({ ...a.status, status: 'killed', reason: 'dequeued while running' }, 'killed', 'dequeued');
    this.clearDequeue(a);
    this.complete(a);
  }

  protected dropWaiting(a: Active): void {
    const i = this.waiting.indexOf(a);
    if (i >= 0) this.waiting.splice(i, 1);
    this.drop(a);
  }
}
