import { coresPerTask, type StepResources } from '../model/resources.js';
import type { NodeInfo, Placement } from '../schedulers/adapter.js';

/**
 * The allocation's cores and GPUs, indexed per node. Pure: `allocate` and `release` return a new
 * pool and never mutate their input (nodes that did not change are shared), so the packing
 * decision can try placements freely and tests can check every intermediate state. A new version
 * copies only the chunk of nodes it changes (see `NodeVec`) and the changed nodes' bitmasks (see
 * `NodeFree`), so its cost grows neither with the allocation (1,024 nodes cost what 32 do) nor
 * with how many cores a node has free.
 */
export interface PoolState {
  readonly nodes: readonly NodeInfo[];
  /** Free core indices per node, ascending (a view made on demand: hot paths use `freeCoreCountOf`). */
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

const BRANCH_BITS = 4;
const BRANCH = 1 << BRANCH_BITS;
const BRANCH_MASK = BRANCH - 1;

/** A tree level: 16 subtrees, or 16 items at the leaves. */
type Branch = readonly unknown[];

/**
 * A per-node list as a tree of 16-way arrays, whose versions share every array but those on the
 * path to the node that changed: one short array per level (three of at most 16 entries for
 * 1,024 nodes), so a version costs about the same allocation at any size.
 */
class NodeVec<T> {
  private constructor(
    private readonly root: Branch,
    /** Bits of the index below the root level (0: the root holds the items). */
    private readonly shift: number,
  ) {}

  static of<T>(items: readonly T[]): NodeVec<T> {
    let level: Branch[] = groups(items);
    let shift = 0;
    while (level.length > 1) {
      level = groups(level);
      shift += BRANCH_BITS;
    }
    return new NodeVec(level[0] ?? [], shift);
  }

  at(i: number): T {
    let branch = this.root;
    for (let s = this.shift; s > 0; s -= BRANCH_BITS) branch = branch[(i >> s) & BRANCH_MASK] as Branch;
    return branch[i & BRANCH_MASK] as T;
  }

  with(i: number, value: T): NodeVec<T> {
    return new NodeVec(withIn(this.root, this.shift, i, value), this.shift);
  }
}

function groups(items: readonly unknown[]): Branch[] {
  const out: Branch[] = [];
  for (let i = 0; i < items.length; i += BRANCH) out.push(items.slice(i, i + BRANCH));
  return out;
}

/** `branch` with item i (below it, `shift` bits of index) replaced, copying one array per level. */
function withIn(branch: Branch, shift: number, i: number, value: unknown): Branch {
  const copy = branch.slice();
  const k = (i >> shift) & BRANCH_MASK;
  copy[k] = shift === 0 ? value : withIn(branch[k] as Branch, shift - BRANCH_BITS, i, value);
  return copy;
}

/**
 * What is free on one node, in one small array (one allocation per changed node, and a release
 * sets bits instead of merging into a sorted list as long as the node's free cores): the free
 * core count, the free GPU count, then a bit per core (set = free), then a bit per GPU. Never
 * mutated once a pool holds it. Words of 30 bits keep every element a small integer, so this is a
 * plain array V8 copies inline; a typed array costs several times more to allocate and copy.
 */
type NodeFree = readonly number[];
const CORE_COUNT = 0;
const GPU_COUNT = 1;
const HEADER = 2;
const WORD_BITS = 30;

const wordsFor = (n: number): number => Math.ceil(n / WORD_BITS);
const wordOf = (x: number): number => (x / WORD_BITS) | 0;
const bitOf = (x: number): number => 1 << (x % WORD_BITS);
/** Where node's GPU bits start in its `NodeFree`. */
const gpuBase = (node: NodeInfo): number => HEADER + wordsFor(node.cores);

function allFree(node: NodeInfo): NodeFree {
  const f = Array.from({ length: gpuBase(node) + wordsFor(node.gpus.length) }, () => 0);
  f[CORE_COUNT] = node.cores;
  f[GPU_COUNT] = node.gpus.length;
  setLowBits(f, HEADER, node.cores);
  setLowBits(f, gpuBase(node), node.gpus.length);
  return f;
}

function setLowBits(f: number[], base: number, n: number): void {
  for (let b = 0; b < n; b++) f[base + wordOf(b)]! |= bitOf(b);
}

/** The indices of the set bits from `base` on, ascending: the first `limit` of them. */
function setBits(f: NodeFree, base: number, words: number, limit: number): number[] {
  const out: number[] = [];
  for (let w = 0; w < words && out.length < limit; w++) {
    let word = f[base + w]!;
    while (word !== 0 && out.length < limit) {
      const low = word & -word;
      out.push(w * WORD_BITS + (31 - Math.clz32(low)));
      word ^= low;
    }
  }
  return out;
}

function freeCoreList(node: NodeInfo, f: NodeFree): number[] {
  return setBits(f, HEADER, wordsFor(node.cores), Infinity);
}

function freeGpuList(node: NodeInfo, f: NodeFree): number[] {
  return setBits(f, gpuBase(node), wordsFor(node.gpus.length), Infinity);
}

/** The pool's representation: per-node bitmasks in a `NodeVec`, and a bit per node that has a free core. */
class Pool implements PoolState {
  private coresView: (readonly number[])[] | null = null;
  private gpusView: (readonly number[])[] | null = null;

  constructor(
    readonly nodes: readonly NodeInfo[],
    readonly free: NodeVec<NodeFree>,
    /** Bit i set: node i has a free core (first fit skips full nodes 32 at a time). */
    readonly withFreeCores: Uint32Array,
    readonly down: ReadonlySet<number>,
    readonly freeCoreCount: number,
  ) {}

  get freeCores(): readonly (readonly number[])[] {
    this.coresView ??= this.nodes.map((n, i) => freeCoreList(n, this.free.at(i)));
    return this.coresView;
  }

  get freeGpus(): readonly (readonly number[])[] {
    this.gpusView ??= this.nodes.map((n, i) => freeGpuList(n, this.free.at(i)));
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
    NodeVec.of(nodes.map(allFree)),
    bits,
    new Set(),
    nodes.reduce((s, n) => s + n.cores, 0),
  );
}

/** How many cores of node i are free. */
export function freeCoreCountOf(pool: PoolState, i: number): number {
  return asPool(pool).free.at(i)[CORE_COUNT]!;
}

/** How many GPUs of node i are free. */
export function freeGpuCountOf(pool: PoolState, i: number): number {
  return asPool(pool).free.at(i)[GPU_COUNT]!;
}

/** The nodes steps may still be placed on. */
export function liveNodes(pool: PoolState): readonly NodeInfo[] {
  return pool.down.size === 0 ? pool.nodes : pool.nodes.filter((_, i) => !pool.down.has(i));
}

/** The pool with node i's free set replaced (the one way a pool changes). */
function withNode(pool: Pool, i: number, free: NodeFree, down: ReadonlySet<number> = pool.down): Pool {
  const before = pool.free.at(i)[CORE_COUNT]!;
  const after = free[CORE_COUNT]!;
  let bits = pool.withFreeCores;
  if (before > 0 !== after > 0) {
    bits = bits.slice();
    bits[i >> 5]! ^= 1 << (i & 31);
  }
  return new Pool(pool.nodes, pool.free.with(i, free), bits, down, pool.freeCoreCount + after - before);
}

/** Stop placing steps on node i: its free cores and GPUs go, and what its steps give back is dropped. */
export function markDown(pool: PoolState, i: number): PoolState {
  const p = asPool(pool);
  if (p.down.has(i)) return p;
  const none = p.free.at(i).map(() => 0);
  return withNode(p, i, none, new Set([...p.down, i]));
}

/** How many tasks of this need fit on node i as it is now. */
function tasksFitting(pool: Pool, i: number, need: StepResources): number {
  const f = pool.free.at(i);
  const byCores = Math.floor(f[CORE_COUNT]! / coresPerTask(need));
  const byGpus = need.gpusPerTask > 0 ? Math.floor(f[GPU_COUNT]! / need.gpusPerTask) : Infinity;
  return Math.min(byCores, byGpus);
}

/**
 * The first node from `from` on with a free core, or -1 (a node without one fits no task: every
 * task holds a core). A plain loop, not a generator: a decision per launch should not allocate one.
 */
function nextWithFreeCores(pool: Pool, from: number): number {
  const bits = pool.withFreeCores;
  let w = from >> 5;
  if (w >= bits.length) return -1;
  let word = bits[w]! & (~0 << (from & 31));
  while (word === 0) {
    if (++w >= bits.length) return -1;
    word = bits[w]!;
  }
  return (w << 5) + (31 - Math.clz32(word & -word));
}

const NO_NODES: ReadonlySet<number> = new Set();

/**
 * Place a step: on one node when it fits there (first node that fits), otherwise its tasks spread
 * over nodes (only when it has more than one task; a task never spans nodes). Null when it does
 * not fit now. `avoid` lists nodes the caller keeps free (a reservation for a waiting run).
 */
export function findSlot(pool: PoolState, need: StepResources, avoid: ReadonlySet<number> = NO_NODES): Slot | null {
  const p = asPool(pool);
  const cpt = coresPerTask(need);
  for (let i = nextWithFreeCores(p, 0); i >= 0; i = nextWithFreeCores(p, i + 1)) {
    if (avoid.has(i)) continue;
    if (tasksFitting(p, i, need) >= need.tasks) {
      return { nodes: [take(p, i, need.tasks, cpt, need.gpusPerTask)] };
    }
  }
  if (need.tasks <= 1) return null;
  let left = need.tasks;
  const parts: Slot['nodes'] = [];
  for (let i = nextWithFreeCores(p, 0); i >= 0 && left > 0; i = nextWithFreeCores(p, i + 1)) {
    if (avoid.has(i)) continue;
    const n = Math.min(left, tasksFitting(p, i, need));
    if (n > 0) {
      parts.push(take(p, i, n, cpt, need.gpusPerTask));
      left -= n;
    }
  }
  return left === 0 ? { nodes: parts } : null;
}

/** The lowest free cores and GPUs of node i for `tasks` tasks. */
function take(pool: Pool, i: number, tasks: number, cpt: number, gpt: number): Slot['nodes'][number] {
  const node = pool.nodes[i]!;
  const f = pool.free.at(i);
  return { node: i, tasks, cores: setBits(f, HEADER, wordsFor(node.cores), tasks * cpt), gpus: gpt === 0 ? [] : setBits(f, gpuBase(node), wordsFor(node.gpus.length), tasks * gpt) };
}

/** Mark a slot's cores and GPUs as held. Throws if any of them is not free (a bug in the caller). */
export function allocate(pool: PoolState, slot: Slot): PoolState {
  let p = asPool(pool);
  for (const part of slot.nodes) p = withNode(p, part.node, flipped(p, part, true));
  return p;
}

/** Give a slot's cores and GPUs back. Throws if any of them was already free (released twice). */
export function release(pool: PoolState, slot: Slot): PoolState {
  let p = asPool(pool);
  for (const part of slot.nodes) if (!p.down.has(part.node)) p = withNode(p, part.node, flipped(p, part, false));
  return p;
}

/** Node `part.node`'s free set with the part's cores and GPUs taken (`taking`) or given back. */
function flipped(pool: Pool, part: Slot['nodes'][number], taking: boolean): NodeFree {
  const node = pool.nodes[part.node]!;
  const f = pool.free.at(part.node).slice();
  flip(f, HEADER, CORE_COUNT, node.cores, part.cores, taking, 'core', node.name);
  flip(f, gpuBase(node), GPU_COUNT, node.gpus.length, part.gpus, taking, 'GPU', node.name);
  return f;
}

function flip(f: number[], base: number, countAt: number, size: number, which: readonly number[], taking: boolean, what: string, node: string): void {
  for (const x of which) {
    const exists = x >= 0 && x < size;
    const w = base + wordOf(x);
    const bit = bitOf(x);
    const free = exists && (f[w]! & bit) !== 0;
    if (taking && !free) throw new Error(`pool: ${what} ${which.join(',')} on ${node} is not free (held twice)`);
    if (!taking && !exists) throw new Error(`pool: ${what} ${x} on ${node} does not exist`);
    if (!taking && free) throw new Error(`pool: ${what} ${x} on ${node} released twice`);
    f[w]! ^= bit;
  }
  f[countAt]! += taking ? -which.length : which.length;
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
    const f = p.free.at(i);
    const free = freeCoreList(node, f);
    const freeGpus = freeGpuList(node, f);
    count += free.length;
    if (free.length > 0 !== ((p.withFreeCores[i >> 5]! >>> (i & 31)) & 1) > 0) problems.push(`${node.name}: its has-free-cores bit is wrong`);
    if (f[CORE_COUNT] !== free.length || f[GPU_COUNT] !== freeGpus.length) problems.push(`${node.name}: its free counts are wrong`);
    for (const c of free) cores.set(c, (cores.get(c) ?? 0) + 1);
    for (const g of freeGpus) gpus.set(g, (gpus.get(g) ?? 0) + 1);
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
