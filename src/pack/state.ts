import type { Claim } from '../store/claim.js';
import type { RunRecord, StatusRecord } from '../store/records.js';
import type { Route, LaunchSetup } from './launch-policy.js';
import type { ExitRecord } from './launcher-protocol.js';
import type { PlanOptions } from './plan.js';
import type { StepResources } from '../model/resources.js';
import type { PoolState, Slot } from './pool.js';
import type { PackerCounts } from './types.js';

/**
 * Why a packer stops starting runs, or stops altogether: a tagged union, never a string to parse.
 * `describeStop` gives the words the log, the run histories and the summary use.
 */
export type StopCause =
  /** The allocation's end: `earlyStopMinutes` set = stop starting runs that long before it; null = the end itself. */
  | { kind: 'walltime'; endsAt: number; earlyStopMinutes: number | null; noTimeLeft?: boolean }
  | { kind: 'signal'; signal: string }
  /** The ensemble's stop flag (`state/stop.json`): max_failed_runs in another packer, or stopEnsemble(). */
  | { kind: 'stop-flag'; reason: string; hint?: string }
  | { kind: 'max-failed'; failed: number; max: number }
  | { kind: 'launcher-lost'; why: string }
  | { kind: 'status-unwritable'; why: string }
  | { kind: 'error'; message: string };

export function describeStop(c: StopCause): string {
  switch (c.kind) {
    case 'walltime': {
      const why = `allocation ends at ${new Date(c.endsAt).toISOString()}`;
      if (c.earlyStopMinutes === null) return why;
      return `${why} (early stop ${c.earlyStopMinutes} min)${c.noTimeLeft ? ': no time to start runs' : ''}`;
    }
    case 'signal':
      return `received ${c.signal}`;
    case 'stop-flag':
      return `ensemble stopped: ${c.reason}${c.hint ? ` (${c.hint})` : ''}`;
    case 'max-failed':
      return `${c.failed} runs failed, more than max_failed_runs (${c.max})`;
    case 'launcher-lost':
      return `launcher lost: ${c.why}`;
    case 'status-unwritable':
      return `cannot write status files: ${c.why}`;
    case 'error':
      return `packer error: ${c.message}`;
  }
}

/**
 * Where a held run is. Exactly one phase at a time, each with what it holds: a run's cores and
 * GPUs (`slot`) belong to its phase, so a run can never hold two slots or release one twice.
 */
export type Phase =
  /** A dead packer's launch of this run is being settled (its journal read, its step stopped). */
  | { kind: 'recovering'; slot: Slot; need: StepResources }
  /** Between steps (or claimed for a step whose needs changed): waiting for cores. */
  | { kind: 'waiting' }
  /** prepRun is running before the run's first step. */
  | { kind: 'prepping'; slot: Slot }
  /**
   * The step is running under `key`, started by `route`; `pid` once the launcher said it started
   * (0 before). `written`: its `running` status is on disk (or being written): it is written only
   * once the step has run for RUNNING_WRITE_DELAY_MS, so a short step costs no write of its own.
   */
  | { kind: 'running'; slot: Slot; key: string; route: Route; pid: number; written: boolean }
  /**
   * The step died of a signal a scheduler sends a whole job: if the packer is told to stop within
   * a short window, it was the allocation ending (back to the queue), not the step failing.
   */
  | { kind: 'exited'; slot: Slot; key: string; exit: ExitRecord }
  /** postRun is running after the last step. */
  | { kind: 'post-run' }
  /** The run's next status is being written; the run is dropped when the write is done. */
  | { kind: 'writing'; purpose: 'final' | 'requeue'; status: StatusRecord }
  /**
   * The claim was lost (broken by another packer, or its heartbeat failed for half a lease): its
   * status is never written again. The run is dropped once what it `awaits` is over.
   */
  | { kind: 'lost'; awaits: 'exit' | 'hook' | 'recovery' | 'write'; slot: Slot | null; key: string | null; route: Route | null; pid: number };

/** A run this packer holds the claim of. */
export interface HeldRun {
  id: number;
  dir: string;
  record: RunRecord;
  status: StatusRecord;
  claim: Claim;
  /** When it last became ready to start (packer clock), for the starvation guard. */
  since: number;
  /** Decisions in which a run behind it started while it did not fit. */
  passedOver: number;
  /** prepRun has still to run before its next step (a run's first start, or after prepRun failed). */
  needsPrep: boolean;
  phase: Phase;
  /** Its launch key while it is in `byKey` (a launched step), else null. */
  launchKey: string | null;
}

/** The sequence number that ends every launch key of this packer (`…:<rev>.<seq>`, or `…:<seq>`). */
function seqOf(key: string): number {
  return Number(key.slice(Math.max(key.lastIndexOf('.'), key.lastIndexOf(':')) + 1));
}

const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;

/**
 * Values by small non-negative integer (run ids, launch sequence numbers), in chunks of 4,096
 * consecutive numbers with an array slot each; a chunk goes once it is empty. With 100,000 runs
 * held at once (1,024 nodes of 128 cores) a lookup in one hash map of 100,000 entries misses the
 * CPU's caches more than an index into an array does, and the packer looks runs up at every
 * start, status write and exit. Iterates in number order.
 */
export class ChunkTable<V> {
  private readonly chunks = new Map<number, { slots: (V | undefined)[]; live: number }>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(n: number): V | undefined {
    return this.chunks.get(n >>> CHUNK_BITS)?.slots[n & (CHUNK - 1)];
  }

  has(n: number): boolean {
    return this.get(n) !== undefined;
  }

  /** Put v at n; returns what was there. */
  set(n: number, v: V): V | undefined {
    const k = n >>> CHUNK_BITS;
    let c = this.chunks.get(k);
    if (c === undefined) {
      c = { slots: new Array<V | undefined>(CHUNK).fill(undefined), live: 0 };
      this.chunks.set(k, c);
    }
    const i = n & (CHUNK - 1);
    const had = c.slots[i];
    if (had === undefined) {
      c.live++;
      this.count++;
    }
    c.slots[i] = v;
    return had;
  }

  delete(n: number): boolean {
    const k = n >>> CHUNK_BITS;
    const c = this.chunks.get(k);
    const i = n & (CHUNK - 1);
    if (c?.slots[i] === undefined) return false;
    c.slots[i] = undefined;
    this.count--;
    if (--c.live === 0) this.chunks.delete(k);
    return true;
  }

  *entries(): IterableIterator<[number, V]> {
    for (const k of [...this.chunks.keys()].sort((a, b) => a - b)) {
      const slots = this.chunks.get(k)?.slots ?? [];
      for (let i = 0; i < slots.length; i++) if (slots[i] !== undefined) yield [(k << CHUNK_BITS) + i, slots[i]!];
    }
  }

  *keys(): IterableIterator<number> {
    for (const [n] of this.entries()) yield n;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }
}

/** Held runs by run id. */
export class HeldRuns extends ChunkTable<HeldRun> {}

/**
 * Runs with a launched step, by launch key, kept by the key's sequence number (a ChunkTable: in
 * launch order). A run answers only to the key of its current launch.
 */
export class LaunchIndex {
  private readonly bySeq = new ChunkTable<HeldRun>();

  get size(): number {
    return this.bySeq.size;
  }

  get(key: string): HeldRun | undefined {
    const a = this.bySeq.get(seqOf(key));
    return a !== undefined && a.launchKey === key ? a : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, a: HeldRun): void {
    const had = this.bySeq.set(seqOf(key), a);
    if (had !== undefined && had !== a) had.launchKey = null;
    a.launchKey = key;
  }

  delete(key: string): boolean {
    const a = this.get(key);
    if (a === undefined) return false;
    a.launchKey = null;
    return this.bySeq.delete(seqOf(key));
  }

  values(): IterableIterator<HeldRun> {
    return this.bySeq.values();
  }

  *keys(): IterableIterator<string> {
    for (const a of this.bySeq.values()) yield a.launchKey!;
  }

  *[Symbol.iterator](): IterableIterator<[string, HeldRun]> {
    for (const a of this.bySeq.values()) yield [a.launchKey!, a];
  }
}

/** What the packer's transitions need to know about the ensemble and the allocation; fixed for its life. */
export interface CoreConfig {
  packerId: string;
  jobId: string | null;
  host: string;
  maxRestarts: number;
  abortOn: readonly number[];
  maxFailedRuns: number | null;
  hasPrepRun: boolean;
  hasPostRun: boolean;
  planOptions: PlanOptions;
  /** How often the packer heartbeats (ms): look for new work at most this often when idle. */
  heartbeatMs: number;
  /** How steps start (routes, see `launch-policy.ts`). */
  launch: LaunchSetup;
  /** The most job steps the allocation may create (Slurm's MaxStepCount); null = no limit known. */
  stepLimit: number | null;
}

/** What the packer knows of one node's launcher (nodes other than its own). */
export interface NodeLauncherState {
  /** `up`: started (or starting) for a step routed there; `none`: the next step there starts one. */
  launcher: 'none' | 'up';
  /** How often its launcher died; the second time the node is given up. */
  losses: number;
}

/** Everything the packer holds. Changed only by the transitions (`transitions.ts`). */
export interface PackerState {
  readonly cfg: CoreConfig;
  readonly held: HeldRuns;
  /** Runs with a launched step, by launch key (phases running and exited, and lost awaiting an exit). */
  readonly byKey: LaunchIndex;
  /** Runs in phase `waiting`, in the order they became ready. */
  readonly waiting: HeldRun[];
  pool: PoolState;
  readonly counts: PackerCounts;
  /** Runs that cannot run in this allocation, with why: never claimed again by this packer. */
  readonly blocked: Map<number, string>;
  /** Start no more runs; running steps finish. */
  stopStarting: StopCause | null;
  /** Start nothing, stop every step, put the runs back in the queue. */
  interrupted: StopCause | null;
  /** The first signal received (the exit code is 128 + its number). */
  signal: string | null;
  /** The packer gave up on an error (it exits 1 once its runs are back). */
  error: string | null;
  /** Launches so far: the last part of each launch key, so keys never repeat in our journal. */
  launchSeq: number;
  /** A run was dropped without our final status: the journal stays for whoever settles it. */
  journalNeeded: boolean;
  /** Claims asked for and not answered yet. */
  claimsInFlight: number;
  /** Bumped on every run dropped, so a scan that overlapped a change does not count as fresh. */
  changes: number;
  readonly scan: {
    running: boolean;
    changesAtStart: number;
    /** Something changed since the last scan began: scan again before deciding the work is done. */
    dirty: boolean;
    /** Runs queued or running anywhere at the last scan (-1 before the first). */
    pending: number;
    /** Runs held by packers that missed heartbeats at the last scan. */
    suspects: number;
    /** Queued runs whose claim someone else held when we tried (cleared by each scan). */
    readonly contested: Set<number>;
    /** A rescan is already due later, for suspects or contested runs. */
    recheckPending: boolean;
  };
  /** The end was decided: nothing happens after it. */
  finished: string | null;
  /** Per node of the pool. */
  readonly nodes: NodeLauncherState[];
  /** Job steps created: through the scheduler's launcher, node launchers, cleanups. */
  readonly steps: { used: number; scheduler: number; nodeLaunchers: number; exhausted: boolean };
}

export function createState(cfg: CoreConfig, pool: PoolState, initialStop: StopCause | null = null): PackerState {
  return {
    cfg,
    held: new HeldRuns(),
    byKey: new LaunchIndex(),
    waiting: [],
    pool,
    counts: { started: 0, successful: 0, failed: 0, aborted: 0, killed: 0, requeued: 0 },
    blocked: new Map(),
    stopStarting: initialStop,
    interrupted: null,
    signal: null,
    error: null,
    launchSeq: 0,
    journalNeeded: false,
    claimsInFlight: 0,
    changes: 0,
    scan: { running: false, changesAtStart: 0, dirty: true, pending: -1, suspects: 0, contested: new Set(), recheckPending: false },
    finished: null,
    nodes: pool.nodes.map(() => ({ launcher: 'none', losses: 0 })),
    steps: { used: 0, scheduler: 0, nodeLaunchers: 0, exhausted: false },
  };
}

/** The slots held by the runs in hand (for the pool's invariant check). */
export function heldSlots(s: PackerState): Slot[] {
  const out: Slot[] = [];
  for (const a of s.held.values()) {
    const p = a.phase;
    if ('slot' in p && p.slot) out.push(p.slot);
  }
  return out;
}
