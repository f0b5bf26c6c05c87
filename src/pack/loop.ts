import { heartbeatClaim, type ClaimOptions, type OwnerInput } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { listDequeueRequests, readStop } from '../store/ensemble-state.js';
import { readEnsemble } from '../store/records.js';
import { SummaryLog } from '../store/summary.js';
import { removePackerJournals } from '../store/journal.js';
import { setupPaths } from '../store/layout.js';
import { carryOut, type Shell } from './effects.js';
import type { Effect, PackerEvent } from './events.js';
import type { Hooks } from './hooks.js';
import { Launchers } from './node-launchers.js';
import type { SchedulerAdapter } from '../schedulers/adapter.js';
import type { LaunchSetup } from './launch-policy.js';
import type { PoolState } from './pool.js';
import { RunQueue, windowFor } from './run-queue.js';
import { createState, type CoreConfig, type PackerState, type StopCause } from './state.js';
import { transition, type At } from './transitions.js';
import type { PackerConfig } from './types.js';

/**
 * The packer's event loop: the event sources (the launcher's messages, heartbeat and rescan
 * timers, the stops `runPacker` hands in) feed the core (`transitions.ts`), and its effects are
 * carried out (`effects.ts`). Between events it does nothing, so it costs no CPU while steps run.
 */
export class PackLoop implements Shell {
  readonly state: PackerState;
  readonly done: Promise<string>;
  readonly setupDir: string;
  readonly graceMs: number;
  readonly claimOpts: ClaimOptions;
  /** Who claims: all this packer's claims link to one owner file in the setup dir's packers/. */
  readonly who: OwnerInput;
  private readonly queue: RunQueue;
  readonly launchers: Launchers;
  private resolveDone!: (reason: string) => void;
  private readonly intervals: NodeJS.Timeout[] = [];
  private readonly timeouts = new Set<NodeJS.Timeout>();
  private decisionScheduled = false;
  private scanning: Promise<void> | null = null;
  private started = false;
  private readonly early: PackerEvent[] = [];
  private inFatal = false;
  /** The last heartbeat problem logged, so a failure that persists is said once, not every tick. */
  private heartbeatProblem: string | null = null;
  readonly summary: SummaryLog;
  /** `state/dequeue/` as the last heartbeat listed it. */
  private dequeueListing = new Set<number>();

  constructor(
    private readonly cfg: PackerConfig,
    core: CoreConfig,
    readonly hooks: Hooks,
    pool: PoolState,
    readonly launch: LaunchSetup,
    initialStop: StopCause | null,
    adapter: SchedulerAdapter | null = null,
  ) {
    this.state = createState(core, pool, initialStop);
    this.setupDir = cfg.setupDir;
    this.graceMs = cfg.graceMs;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.claimOpts = { leaseMs: cfg.leaseMs, now: () => fileServerNow(cfg.setupDir) };
    this.who = { jobId: cfg.jobId, packerId: core.packerId, ownerDir: setupPaths(cfg.setupDir).packersDir };
    this.queue = new RunQueue(cfg, this.claimOpts, windowFor(pool.nodes.reduce((n, x) => n + x.cores, 0)));
    this.summary = new SummaryLog(cfg.setupDir, core.packerId, readEnsemble(cfg.setupDir).createdAt);
    this.launchers = new Launchers({
      setupDir: cfg.setupDir,
      packerId: core.packerId,
      graceMs: cfg.graceMs,
      nodes: pool.nodes,
      ownNode: launch.ownNode,
      adapter,
      dispatch: (ev) => this.dispatch(ev),
      log: (line) => this.log(line),
    });
  }

  get pool(): PoolState {
    return this.state.pool;
  }

  dequeueAsked(runId: number): boolean {
    return this.dequeueListing.has(runId);
  }

  /** Start the launcher and the timers, and scan the queue once (its errors are the caller's). */
  async start(): Promise<void> {
    this.dequeueListing = listDequeueRequests(this.cfg.setupDir);
    await this.launchers.start();
    this.every(this.cfg.heartbeatMs, () => this.heartbeat());
    this.every(this.cfg.rescanMs, () => {
      if (this.queue.due(this.cfg.rescanMs)) this.dispatch({ type: 'rescan-due' });
    });
    this.dispatch({ type: 'rescan-due' });
    for (const ev of this.early.splice(0)) this.dispatch(ev);
    try {
      await this.scanning;
    } catch (e) {
      this.stopTimers();
      await this.launchers.close();
      throw e;
    }
    this.started = true;
  }

  /** Hand an event to the core and carry out what it asks, in order (answers are handled as they come). */
  dispatch(ev: PackerEvent): void {
    // A stop before the launcher is up (a signal during start-up) waits until it is.
    if (!this.launchers.started) {
      this.early.push(ev);
      return;
    }
    let effects: Effect[];
    try {
      effects = transition(this.state, ev, moment(this.cfg.now()));
    } catch (e) {
      this.fatal(e);
      return;
    }
    for (const e of effects) {
      try {
        carryOut(e, this);
      } catch (err) {
        this.fatal(err);
      }
    }
  }

  stopStartingRuns(cause: StopCause): void {
    this.dispatch({ type: 'stop-starting', cause });
  }

  interrupt(cause: StopCause): void {
    this.dispatch({ type: 'interrupt', cause });
  }

  signal(sig: string): void {
    this.dispatch({ type: 'signal', signal: sig });
  }

  fatal(e: unknown): void {
    this.log(`packer error: ${(e as Error)?.stack ?? e}`);
    // A core that throws while handling its own error must not recurse.
    if (this.inFatal) return;
    this.inFatal = true;
    try {
      this.dispatch({ type: 'interrupt', cause: { kind: 'error', message: String((e as Error)?.message ?? e) } });
    } finally {
      this.inFatal = false;
    }
  }

  log(line: string): void {
    this.cfg.log(line);
  }

  // --- what effects ask of the loop ---

  decideNow(): void {
    const s = this.state;
    const candidates = s.stopStarting || s.interrupted ? [] : this.queue.window();
    this.dispatch({ type: 'decide', candidates, windowSize: this.queue.windowSize });
  }

  /** Coalesce many events into one decision per turn of the event loop. */
  decideSoon(): void {
    if (this.decisionScheduled) return;
    this.decisionScheduled = true;
    setImmediate(() => {
      this.decisionScheduled = false;
      this.decideNow();
    });
  }

  rescan(): void {
    const s = this.state;
    const skip = new Set<number>([...s.held.keys(), ...s.blocked.keys()]);
    const scan = this.queue.scan(skip, (id) => s.held.has(id)).then(() => this.dispatch({ type: 'scanned', pending: this.queue.pending, suspects: this.queue.suspects }));
    this.scanning = scan;
    // The first scan's error is start()'s to throw; a later one stops the packer.
    scan.catch((e: unknown) => {
      if (this.started) this.fatal(e);
    });
  }

  lookForWork(windowWasFull: boolean): void {
    // A full window whose runs all started or blocked may have more behind it: look there first.
    if (windowWasFull && this.queue.window().length > 0) return;
    if (!this.state.scan.running && this.queue.due(Math.min(this.cfg.heartbeatMs, 2000))) this.dispatch({ type: 'rescan-due' });
  }

  later(ms: number, ev: PackerEvent): void {
    const t = setTimeout(() => {
      this.timeouts.delete(t);
      this.dispatch(ev);
    }, ms);
    this.timeouts.add(t);
  }

  changed(): void {
    this.cfg.onChange?.();
  }

  finish(reason: string, keepJournal: boolean): void {
    this.stopTimers();
    void this.launchers.close().then(() => {
      this.summary.compact(() => true);
      if (!keepJournal) removePackerJournals(this.cfg.setupDir, this.state.cfg.packerId);
      this.resolveDone(reason);
    });
  }

  // --- event sources ---

  private every(ms: number, fn: () => void): void {
    this.intervals.push(setInterval(fn, ms));
  }

  private stopTimers(): void {
    for (const t of this.intervals) clearInterval(t);
    for (const t of this.timeouts) clearTimeout(t);
    this.timeouts.clear();
  }

  /**
   * Each heartbeat tick: keep the claims alive and see what changed on disk (claims lost, dequeue
   * requests, the stop flag). A failure here (a full disk, an NFS hiccup) is logged, never thrown:
   * a throw from a timer would kill the packer and, with it, every running step.
   */
  private heartbeat(): void {
    const s = this.state;
    let problem: string | null = null;
    try {
      const lost: { runId: number; why: string }[] = [];
      const dequeues: number[] = [];
      // One listing for every run held, however many (not a look into each run directory).
      this.dequeueListing = listDequeueRequests(this.cfg.setupDir);
      for (const a of s.held.values()) {
        if (a.phase.kind === 'lost') continue;
        const shared = a.claim.shared;
        if (!heartbeatClaim(a.claim, this.cfg.leaseMs)) {
          lost.push({ runId: a.id, why: shared && !shared.touchOk ? `its heartbeat has failed for half the lease (${shared.touchError})` : 'broken by another packer?' });
          continue;
        }
        if (this.dequeueListing.has(a.id)) dequeues.push(a.id);
      }
      const touch = [...s.held.values()].find((a) => a.claim.shared && !a.claim.shared.touchOk)?.claim.shared;
      if (touch) problem = `cannot refresh the claims' heartbeat (${touch.touchError}); they go stale after the lease if this goes on`;
      // The stop flag is read each heartbeat (not per decision: it costs a file read per launch).
      const stop = s.stopStarting ? null : readStop(this.cfg.setupDir);
      this.dispatch({ type: 'heartbeat', lost, dequeues, stopFlag: stop ? stop.reason : null });
      this.cfg.onHeartbeat();
    } catch (e) {
      problem = `heartbeat: ${(e as Error)?.message ?? e}`;
    }
    if (problem !== this.heartbeatProblem && problem !== null) this.log(problem);
    this.heartbeatProblem = problem;
  }
}

/** Now, with the ISO time made only if a record needs it. */
function moment(now: number): At {
  let iso: string | null = null;
  return {
    now,
    get iso() {
      iso ??= new Date().toISOString();
      return iso;
    },
  };
}
