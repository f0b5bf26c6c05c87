import { coresPerTask, sameResources, type StepResources } from '../model/resources.js';
import type { NodeInfo } from '../schedulers/adapter.js';
import { allocate, findSlot, freeCoreCountOf, freeGpuCountOf, liveNodes, neverFits, type PoolState, type Slot } from './pool.js';

/** A run waiting to start (or to start its next step), in run order. */
export interface QueueItem {
  runId: number;
  need: StepResources;
  /** When it became a candidate (ms, the caller's clock). */
  since: number;
  /** Decisions in which a run behind it started while it did not fit. */
  passedOver: number;
}

export interface PlanOptions {
  /** Cap on running steps (Infinity = none). */
  maxConcurrency: number;
  /** A run that waited this long gets resources reserved for it. */
  starveAfterMs: number;
  /** … or that was passed over by backfill this many times. */
  starveAfterDecisions: number;
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = { maxConcurrency: Infinity, starveAfterMs: 120_000, starveAfterDecisions: 50 };

export interface Decision {
  launches: { runId: number; slot: Slot }[];
  /** Runs that can never fit this allocation, with the reason in words. */
  blocked: { runId: number; reason: string }[];
  /** Runs that did not fit while a run behind them started (the caller counts these up). */
  passedOver: number[];
  /** The pool with the launches allocated. */
  pool: PoolState;
  /** The waiting run that backfill must not starve, if any. */
  reservedFor: number | null;
}

function shapeKey(need: StepResources): string {
  return `${need.tasks}x${coresPerTask(need)}c${need.gpusPerTask}g`;
}

/**
 * The packing decision, pure: first fit in run order with backfill. A run that does not fit is
 * skipped and later, smaller runs may start; once a skipped run has waited `starveAfterMs` or been
 * passed over `starveAfterDecisions` times, the node it is closest to fitting on (every node, for a
 * multi-node run) is kept free of backfill until it starts, so it is never starved. Runs that could
 * not fit even an empty allocation are reported as blocked, never started.
 */
export function nextLaunches(queue: readonly QueueItem[], pool: PoolState, running: number, now: number, opts: PlanOptions = DEFAULT_PLAN_OPTIONS): Decision {
  let p = pool;
  let budget = opts.maxConcurrency - running;
  let freeCores = p.freeCoreCount;
  const launches: Decision['launches'] = [];
  const blocked: Decision['blocked'] = [];
  const misses: { index: number; runId: number }[] = [];
  // A shape that did not fit will not fit later in the same decision: the pool only shrinks and
  // the reserved set only grows. Remembering it keeps a long uniform queue cheap to scan.
  const failed = new Set<string>();
  const never = neverFitsCache(pool);
  let avoid = new Set<number>();
  let reservedFor: number | null = null;
  let lastLaunch = -1;
  for (let index = 0; index < queue.length; index++) {
    if (budget <= 0 || freeCores === 0) break;
    const item = queue[index]!;
    const key = shapeKey(item.need);
    let why = never.get(key);
    if (why === undefined) {
      why = neverFits(liveNodes(p), item.need);
      never.set(key, why);
    }
    if (why !== null) {
      blocked.push({ runId: item.runId, reason: why });
      continue;
    }
    const slot = failed.has(key) ? null : findSlot(p, item.need, avoid);
    if (slot) {
      p = allocate(p, slot);
      freeCores -= slot.nodes.reduce((s, n) => s + n.cores.length, 0);
      launches.push({ runId: item.runId, slot });
      budget--;
      lastLaunch = index;
      continue;
    }
    failed.add(key);
    misses.push({ index, runId: item.runId });
    if (reservedFor === null && (now - item.since >= opts.starveAfterMs || item.passedOver >= opts.starveAfterDecisions)) {
      reservedFor = item.runId;
      avoid = reserveFor(p, item.need);
      // Shapes that failed before the reservation still fail with more nodes avoided.
    }
  }
  const passedOver = misses.filter((m) => m.index < lastLaunch).map((m) => m.runId);
  // Runs not reached because the budget or the cores ran out still need their blocked check, so
  // the packer can say why and exit when only such runs remain.
  return { launches, blocked: blocked.concat(blockedBeyond(queue, p, never, launches.length + blocked.length + misses.length)), passedOver, pool: p, reservedFor };
}

/**
 * What `neverFits` said per shape, kept across decisions: it depends only on the nodes steps may
 * go to, which stay the same array while no node is given up (`liveNodes`), and it walks every
 * node, which a decision per launch on 1,024 nodes must not do.
 */
const neverFitsByNodes = new WeakMap<readonly NodeInfo[], Map<string, string | null>>();
function neverFitsCache(pool: PoolState): Map<string, string | null> {
  if (pool.down.size > 0) return new Map();
  let m = neverFitsByNodes.get(pool.nodes);
  if (!m) {
    m = new Map();
    neverFitsByNodes.set(pool.nodes, m);
  }
  return m;
}

function blockedBeyond(queue: readonly QueueItem[], pool: PoolState, never: Map<string, string | null>, from: number): Decision['blocked'] {
  const out: Decision['blocked'] = [];
  // Only distinct shapes cost anything; runs of equal needs in a row reuse the last answer.
  let last: StepResources | null = null;
  let why: string | null | undefined = null;
  for (let i = from; i < queue.length; i++) {
    const item = queue[i]!;
    const n = item.need;
    if (!last || !sameResources(n, last)) {
      const key = shapeKey(n);
      why = never.get(key);
      if (why === undefined) {
        why = neverFits(liveNodes(pool), n);
        never.set(key, why);
      }
      last = n;
    }
    if (why !== null) out.push({ runId: item.runId, reason: why! });
  }
  return out;
}

/** Nodes to keep free for a starving run: the one node it is closest to fitting on, or all of them. */
function reserveFor(pool: PoolState, need: StepResources): Set<number> {
  const cpt = coresPerTask(need);
  let best = -1;
  let bestFree = -1;
  pool.nodes.forEach((node, i) => {
    if (pool.down.has(i)) return;
    const fitsEmpty = node.cores >= need.tasks * cpt && node.gpus.length >= need.tasks * need.gpusPerTask;
    if (!fitsEmpty) return;
    const free = freeCoreCountOf(pool, i) + freeGpuCountOf(pool, i) * 1000;
    if (free > bestFree) {
      best = i;
      bestFree = free;
    }
  });
  if (best >= 0) return new Set([best]);
  return new Set(pool.nodes.map((_, i) => i).filter((i) => !pool.down.has(i)));
}
