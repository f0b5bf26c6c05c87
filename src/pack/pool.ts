import { coresPerTask, type StepResources } from '../model/resources.js';
import type { NodeInfo, Placement } from '../schedulers/adapter.js';

/**
 * The allocation's cores and GPUs, indexed per node. Pure: `allocate` and `release` return a new
 * pool and never mutate their input (nodes that did not change are shared), so the packing
 * decision can try placements freely and tests can check every intermediate state. A new version
 * copies only the chunk of nodes it changes (see `NodeVec`), so its cost does not grow with the
 * allocation: 1,024 nodes cost what 32 do.
 */
export interface PoolState {
  readonly nodes: readonly NodeInfo[];
  /** Free core indices per node, ascending (a view made on demand: hot paths use `freeCoresOf`). */
  readonly freeCores: readonly (readonly number[])[];
  /** Free GPU indices (into `nodes[i].gpus`) per node, ascending (on demand, as `freeCores`). */
  readonly freeGpus: readonly (readonly number[])[];
  /** Nodes the packer stopped placing steps on (their launcher is gone for good): nothing there is free. */
  readonly down: ReadonlySet<number>;
  /** Free cores in all. */
  readonly freeCoreCount: number;
}

/** Where a step was placed, by index: per node, its tasks, core indices and GPU indices. */
export interface Slot {
  nodes: { node: number; tasks: number; cores: number[]; gpus: number[] }[];
}

const CHUNK_BITS = 5;
const CHUNK = 1 << CHUNK_BITS;

/** A per-node list whose versions share every chunk of 32 nodes but the one that changed. */
class NodeVec<T> {
  private constructor(private readonly chunks: readonly (readonly T[])[]) {}

  static of<T>(items: readonly T[]): NodeVec<T> {
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += CHUNK) chunks.push(items.slice(i, i + CHUNK));
    return new NodeVec(chunks);
  }

  at(i: number): T {
    return this.chunks[i >> CHUNK_BITS]![i & (CHUNK - 1)]!;
  }

  with(i: number, value: T): NodeVec<T> {
    const chunks = this.chunks.slice();
    const chunk = chunks[i >> CHUNK_BITS]!.slice();
    chunk[i & (CHUNK - 1)] = value;
    chunks[i >> CHUNK_BITS] = chunk;
    return new NodeVec(chunks);
  }

  toArray(): T[] {
    return this.chunks.flat() as T[];
  }
}

/** The pool's representation: per-node free lists in `NodeVec`s, and a bit per node that has a free core. */
class Pool implements PoolState {
  private coresView: (readonly number[])[] | null = null;
  private gpusView: (readonly number[])[] | null = null;

  constructor(
    readonly nodes: readonly NodeInfo[],
    readonly cores: NodeVec<readonly number[]>,
    readonly gpus: NodeVec<readonly number[]>,
    /** Bit i set: node i has a free core (first fit skips full nodes 32 at a time). */
    readonly withFreeCores: Uint32Array,
    readonly down: ReadonlySet<number>,
    readonly freeCoreCount: number,
  ) {}

  get freeCores(): readonly (readonly number[])[] {
    this.coresView ??= this.cores.toArray();
    return this.coresView;
  }

  get freeGpus(): readonly (readonly number[])[] {
    this.gpusView ??= this.gpus.toArray();
    return this.gpusView;
  }
}

function asPool(pool: PoolState): Pool {
  if (!(pool instanceof Pool)) throw new Error('pool: not made by createPool');
  return pool;
}

export function createPool(nodes: readonly NodeInfo[]): PoolState {
  const bits = new Uint32Array(Math.ceil(nodes.length / 32));
  nodes.forEach((n, i) => {
    if (n.cores > 0) bits[i >> 5]! |= 1 << (i & 31);
  });
  return new Pool(
    nodes,
    NodeVec.of(nodes.map((n) => range(n.cores))),
    NodeVec.of(nodes.map((n) => range(n.gpus.length))),
    bits,
    new Set(),
    nodes.reduce((s, n) => s + n.cores, 0),
  );
}

/** Free cores of node i, ascending. */
export function freeCoresOf(pool: PoolState, i: number): readonly number[] {
  return asPool(pool).cores.at(i);
}

/** Free GPU indices of node i, ascending. */
export function freeGpusOf(pool: PoolState, i: number): readonly number[] {
  return asPool(pool).gpus.at(i);
}

/** The nodes steps may still be placed on. */
export function liveNodes(pool: PoolState): readonly NodeInfo[] {
  return pool.down.size === 0 ? pool.nodes : pool.nodes.filter((_, i) => !pool.down.has(i));
}

/** Pool versions with some nodes' free lists replaced (the one way a pool changes). */
function withNodes(pool: Pool, changes: { node: number; cores: readonly number[]; gpus: readonly number[] }[], down: ReadonlySet<number> = pool.down): Pool {
  let cores = pool.cores;
  let gpus = pool.gpus;
  let bits: Uint32Array | null = null;
  let count = pool.freeCoreCount;
  for (const c of changes) {
    const before = cores.at(c.node).length;
    count += c.cores.length - before;
    cores = cores.with(c.node, c.cores);
    gpus = gpus.with(c.node, c.gpus);
    if (before > 0 !== c.cores.length > 0) {
      bits ??= pool.withFreeCores.slice();
      bits[c.node >> 5]! ^= 1 << (c.node & 31);
    }
  }
  return new Pool(pool.nodes, cores, gpus, bits ?? pool.withFreeCores, down, count);
}

/** Stop placing steps on node i: its free cores and GPUs go, and what its steps give back is dropped. */
export function markDown(pool: PoolState, i: number): PoolState {
  const p = asPool(pool);
  if (p.down.has(i)) return p;
  return withNodes(p, [{ node: i, cores: [], gpus: [] }], new Set([...p.down, i]));
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** How many tasks of this need fit on node i as it is now. */
function tasksFitting(pool: Pool, i: number, need: StepResources): number {
  const byCores = Math.floor(pool.cores.at(i).length / coresPerTask(need));
  const byGpus = need.gpusPerTask > 0 ? Math.floor(pool.gpus.at(i).length / need.gpusPerTask) : Infinity;
  return Math.min(byCores, byGpus);
}

/** The nodes with a free core, in order (a node without one fits no task: every task holds a core). */
function* nodesWithFreeCores(pool: Pool): Generator<number> {
  const bits = pool.withFreeCores;
  for (let w = 0; w < bits.length; w++) {
    let word = bits[w]!;
    while (word !== 0) {
      const low = word & -word;
      yield (w << 5) + (31 - Math.clz32(low));
      word ^= low;
    }
  }
}

/**
 * Place a step: on one node when it fits there (first node that fits), otherwise its tasks spread
 * over nodes (only when it has more than one task; a task never spans nodes). Null when it does
 * not fit now. `avoid` lists nodes the caller keeps free (a reservation for a waiting run).
 */
export function findSlot(pool: PoolState, need: StepResources, avoid: ReadonlySet<number> = new Set()): Slot | null {
  const p = asPool(pool);
  const cpt = coresPerTask(need);
  for (const i of nodesWithFreeCores(p)) {
    if (avoid.has(i)) continue;
    if (tasksFitting(p, i, need) >= need.tasks) {
      return { nodes: [take(p, i, need.tasks, cpt, need.gpusPerTask)] };
    }
  }
  if (need.tasks <= 1) return null;
  let left = need.tasks;
  const parts: Slot['nodes'] = [];
  for (const i of nodesWithFreeCores(p)) {
    if (left === 0) break;
    if (avoid.has(i)) continue;
    const n = Math.min(left, tasksFitting(p, i, need));
    if (n > 0) {
      parts.push(take(p, i, n, cpt, need.gpusPerTask));
      left -= n;
    }
  }
  return left === 0 ? { nodes: parts } : null;
}

function take(pool: Pool, i: number, tasks: number, cpt: number, gpt: number): Slot['nodes'][number] {
  return { node: i, tasks, cores: pool.cores.at(i).slice(0, tasks * cpt), gpus: pool.gpus.at(i).slice(0, tasks * gpt) };
}

/** Mark a slot's cores and GPUs as held. Throws if any of them is not free (a bug in the caller). */
export function allocate(pool: PoolState, slot: Slot): PoolState {
  const p = asPool(pool);
  return withNodes(
    p,
    slot.nodes.map((part) => ({
      node: part.node,
      cores: without(p.cores.at(part.node), part.cores, 'core', p.nodes[part.node]!.name),
      gpus: without(p.gpus.at(part.node), part.gpus, 'GPU', p.nodes[part.node]!.name),
    })),
  );
}

/** Give a slot's cores and GPUs back. Throws if any of them was already free (released twice). */
export function release(pool: PoolState, slot: Slot): PoolState {
  const p = asPool(pool);
  const changes = slot.nodes
    .filter((part) => !p.down.has(part.node))
    .map((part) => ({
      node: part.node,
      cores: withAdded(p.cores.at(part.node), part.cores, 'core', p.nodes[part.node]!.name),
      gpus: withAdded(p.gpus.at(part.node), part.gpus, 'GPU', p.nodes[part.node]!.name),
    }));
  return changes.length === 0 ? p : withNodes(p, changes);
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

/** `free` (ascending) with `given` added, by merging: no set, no sort. */
function withAdded(free: readonly number[], given: readonly number[], what: string, node: string): number[] {
  if (given.length === 0) return free as number[];
  const add = given.length === 1 ? given : [...given].sort((x, y) => x - y);
  const out: number[] = [];
  let i = 0;
  for (const g of add) {
    while (i < free.length && free[i]! < g) out.push(free[i++]!);
    if ((i < free.length && free[i] === g) || out[out.length - 1] === g) throw new Error(`pool: ${what} ${g} on ${node} released twice`);
    out.push(g);
  }
  while (i < free.length) out.push(free[i++]!);
  return out;
}

/**
 * The invariant: every core and GPU is either free or held by exactly one slot, and nothing is
 * both. Returns the problems (empty = the pool is sound). `held` are the slots currently running.
 */
export function checkPoolInvariant(pool: PoolState, held: readonly Slot[]): string[] {
  const problems: string[] = [];
  const p = asPool(pool);
  let count = 0;
  pool.nodes.forEach((node, i) => {
    if (pool.down.has(i)) return;
    const cores = new Map<number, number>();
    const gpus = new Map<number, number>();
    const free = p.cores.at(i);
    count += free.length;
    if (free.length > 0 !== ((p.withFreeCores[i >> 5]! >>> (i & 31)) & 1) > 0) problems.push(`${node.name}: its has-free-cores bit is wrong`);
    for (const c of free) cores.set(c, (cores.get(c) ?? 0) + 1);
    for (const g of p.gpus.at(i)) gpus.set(g, (gpus.get(g) ?? 0) + 1);
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
  if (count !== pool.freeCoreCount) problems.push(`free core count ${pool.freeCoreCount}, but ${count} cores are free`);
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
