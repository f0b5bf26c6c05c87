import { coresPerTask, type StepResources } from '../model/resources.js';
import type { NodeInfo, Placement } from '../schedulers/adapter.js';

/**
 * The allocation's cores and GPUs, indexed per node. Pure: `allocate` and `release` return a new
 * pool and never mutate their input (nodes that did not change are shared), so the packing
 * decision can try placements freely and tests can check every intermediate state.
 */
export interface PoolState {
  readonly nodes: readonly NodeInfo[];
  /** Free core indices per node, ascending. */
  readonly freeCores: readonly (readonly number[])[];
  /** Free GPU indices (into `nodes[i].gpus`) per node, ascending. */
  readonly freeGpus: readonly (readonly number[])[];
  /** Nodes the packer stopped placing steps on (their launcher is gone for good): nothing there is free. */
  readonly down: ReadonlySet<number>;
}

/** Where a step was placed, by index: per node, its tasks, core indices and GPU indices. */
export interface Slot {
  nodes: { node: number; tasks: number; cores: number[]; gpus: number[] }[];
}

export function createPool(nodes: readonly NodeInfo[]): PoolState {
  return {
    nodes,
    freeCores: nodes.map((n) => range(n.cores)),
    freeGpus: nodes.map((n) => range(n.gpus.length)),
    down: new Set(),
  };
}

/** The nodes steps may still be placed on. */
export function liveNodes(pool: PoolState): readonly NodeInfo[] {
  return pool.down.size === 0 ? pool.nodes : pool.nodes.filter((_, i) => !pool.down.has(i));
}

/** Stop placing steps on node i: its free cores and GPUs go, and what its steps give back is dropped. */
export function markDown(pool: PoolState, i: number): PoolState {
  if (pool.down.has(i)) return pool;
  const freeCores = pool.freeCores.slice();
  const freeGpus = pool.freeGpus.slice();
  freeCores[i] = [];
  freeGpus[i] = [];
  return { nodes: pool.nodes, freeCores, freeGpus, down: new Set([...pool.down, i]) };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** How many tasks of this need fit on node i as it is now. */
function tasksFitting(pool: PoolState, i: number, need: StepResources): number {
  const byCores = Math.floor(pool.freeCores[i]!.length / coresPerTask(need));
  const byGpus = need.gpusPerTask > 0 ? Math.floor(pool.freeGpus[i]!.length / need.gpusPerTask) : Infinity;
  return Math.min(byCores, byGpus);
}

/**
 * Place a step: on one node when it fits there (first node that fits), otherwise its tasks spread
 * over nodes (only when it has more than one task; a task never spans nodes). Null when it does
 * not fit now. `avoid` lists nodes the caller keeps free (a reservation for a waiting run).
 */
export function findSlot(pool: PoolState, need: StepResources, avoid: ReadonlySet<number> = new Set()): Slot | null {
  const cpt = coresPerTask(need);
  for (let i = 0; i < pool.nodes.length; i++) {
    if (avoid.has(i)) continue;
    if (tasksFitting(pool, i, need) >= need.tasks) {
      return { nodes: [take(pool, i, need.tasks, cpt, need.gpusPerTask)] };
    }
  }
  if (need.tasks <= 1) return null;
  let left = need.tasks;
  const parts: Slot['nodes'] = [];
  for (let i = 0; i < pool.nodes.length && left > 0; i++) {
    if (avoid.has(i)) continue;
    const n = Math.min(left, tasksFitting(pool, i, need));
    if (n > 0) {
      parts.push(take(pool, i, n, cpt, need.gpusPerTask));
      left -= n;
    }
  }
  return left === 0 ? { nodes: parts } : null;
}

function take(pool: PoolState, i: number, tasks: number, cpt: number, gpt: number): Slot['nodes'][number] {
  return { node: i, tasks, cores: pool.freeCores[i]!.slice(0, tasks * cpt), gpus: pool.freeGpus[i]!.slice(0, tasks * gpt) };
}

/** Mark a slot's cores and GPUs as held. Throws if any of them is not free (a bug in the caller). */
export function allocate(pool: PoolState, slot: Slot): PoolState {
  const freeCores = pool.freeCores.slice();
  const freeGpus = pool.freeGpus.slice();
  for (const part of slot.nodes) {
    freeCores[part.node] = without(freeCores[part.node]!, part.cores, 'core', pool.nodes[part.node]!.name);
    freeGpus[part.node] = without(freeGpus[part.node]!, part.gpus, 'GPU', pool.nodes[part.node]!.name);
  }
  return { nodes: pool.nodes, freeCores, freeGpus, down: pool.down };
}

/** Give a slot's cores and GPUs back. Throws if any of them was already free (released twice). */
export function release(pool: PoolState, slot: Slot): PoolState {
  const freeCores = pool.freeCores.slice();
  const freeGpus = pool.freeGpus.slice();
  for (const part of slot.nodes) {
    if (pool.down.has(part.node)) continue;
    freeCores[part.node] = withAdded(freeCores[part.node]!, part.cores, 'core', pool.nodes[part.node]!.name);
    freeGpus[part.node] = withAdded(freeGpus[part.node]!, part.gpus, 'GPU', pool.nodes[part.node]!.name);
  }
  return { nodes: pool.nodes, freeCores, freeGpus, down: pool.down };
}

function without(free: readonly number[], taken: readonly number[], what: string, node: string): number[] {
  if (taken.length === 0) return free as number[];
  const set = new Set(taken);
  const out = free.filter((x) => !set.has(x));
  if (out.length !== free.length - set.size || set.size !== taken.length) {
    throw new Error(`pool: ${what} ${taken.join(',')} on ${node} is not free (held twice)`);
  }
  return out;
}

function withAdded(free: readonly number[], given: readonly number[], what: string, node: string): number[] {
  if (given.length === 0) return free as number[];
  const set = new Set(free);
  for (const g of given) {
    if (set.has(g)) throw new Error(`pool: ${what} ${g} on ${node} released twice`);
    set.add(g);
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * The invariant: every core and GPU is either free or held by exactly one slot, and nothing is
 * both. Returns the problems (empty = the pool is sound). `held` are the slots currently running.
 */
export function checkPoolInvariant(pool: PoolState, held: readonly Slot[]): string[] {
  const problems: string[] = [];
  pool.nodes.forEach((node, i) => {
    if (pool.down.has(i)) return;
    const cores = new Map<number, number>();
    const gpus = new Map<number, number>();
    for (const c of pool.freeCores[i]!) cores.set(c, (cores.get(c) ?? 0) + 1);
    for (const g of pool.freeGpus[i]!) gpus.set(g, (gpus.get(g) ?? 0) + 1);
    for (const slot of held) {
      for (const part of slot.nodes) {
        if (part.node !== i) continue;
        for (const c of part.cores) cores.set(c, (cores.get(c) ?? 0) + 1);
        for (const g of part.gpus) gpus.set(g, (gpus.get(g) ?? 0) + 1);
      }
    }
    for (let c = 0; c < node.cores; c++) {
      const n = cores.get(c) ?? 0;
      if (n === 0) problems.push(`${node.name}: core ${c} leaked (neither free nor held)`);
      if (n > 1) problems.push(`${node.name}: core ${c} counted ${n} times (held twice)`);
    }
    for (let g = 0; g < node.gpus.length; g++) {
      const n = gpus.get(g) ?? 0;
      if (n === 0) problems.push(`${node.name}: GPU ${g} leaked (neither free nor held)`);
      if (n > 1) problems.push(`${node.name}: GPU ${g} counted ${n} times (held twice)`);
    }
    for (const c of cores.keys()) if (c < 0 || c >= node.cores) problems.push(`${node.name}: core ${c} does not exist`);
    for (const g of gpus.keys()) if (g < 0 || g >= node.gpus.length) problems.push(`${node.name}: GPU ${g} does not exist`);
  });
  return problems;
}

/** The scheduler-facing placement (node names, GPU ids as the scheduler names them). */
export function toPlacement(pool: PoolState, slot: Slot): Placement {
  return {
    nodes: slot.nodes.map((p) => ({
      name: pool.nodes[p.node]!.name,
      tasks: p.tasks,
      cores: p.cores,
      gpus: p.gpus.map((g) => pool.nodes[p.node]!.gpus[g]!),
    })),
  };
}

/** Why a step can never fit this allocation even when it is empty, or null when it can. */
export function neverFits(nodes: readonly NodeInfo[], need: StepResources): string | null {
  const cpt = coresPerTask(need);
  const maxCores = Math.max(0, ...nodes.map((n) => n.cores));
  const maxGpus = Math.max(0, ...nodes.map((n) => n.gpus.length));
  const perNode = (n: NodeInfo) => Math.min(Math.floor(n.cores / cpt), need.gpusPerTask > 0 ? Math.floor(n.gpus.length / need.gpusPerTask) : Infinity);
  const each = need.tasks > 1 ? ' for each task' : '';
  if (cpt > maxCores) return `needs ${cpt} cores on one node${each}, nodes have ${maxCores}`;
  if (need.gpusPerTask > maxGpus) return `needs ${need.gpusPerTask} GPUs on one node${each}, nodes have ${maxGpus}`;
  const capacity = nodes.reduce((s, n) => s + perNode(n), 0);
  if (capacity < need.tasks) {
    const totalCores = nodes.reduce((s, n) => s + n.cores, 0);
    const totalGpus = nodes.reduce((s, n) => s + n.gpus.length, 0);
    const gpuPart = need.gpusPerTask > 0 ? ` and ${need.tasks * need.gpusPerTask} GPUs` : '';
    return (
      `needs ${need.tasks} tasks x ${cpt} cores${gpuPart}; the allocation (${nodes.length} node${nodes.length === 1 ? '' : 's'}, ` +
      `${totalCores} cores, ${totalGpus} GPUs) holds at most ${capacity} such tasks`
    );
  }
  return null;
}
