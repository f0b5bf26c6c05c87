import { describe, expect, it } from 'vitest';
import { allocate, checkPoolInvariant, createPool, findSlot, freeCoreCountOf, freeGpuCountOf, markDown, release, type PoolState, type Slot } from '../../src/pack/pool.js';
import type { NodeInfo } from '../../src/schedulers/adapter.js';

const node = (name: string, cores: number, gpus = 0): NodeInfo => ({ name, cores, gpus: Array.from({ length: gpus }, (_, g) => `gpu${g}`) });

/** Place and allocate one step, failing the test when it does not fit. */
function place(pool: PoolState, tasks: number, coresPerTask: number, gpusPerTask = 0): { pool: PoolState; slot: Slot } {
  const slot = findSlot(pool, { tasks, coresPerTask, gpusPerTask });
  if (!slot) throw new Error('did not fit');
  return { pool: allocate(pool, slot), slot };
}

describe('the pool (free cores and GPUs as bits per node)', () => {
  it('gives the lowest free cores first, across the words of a node with many cores', () => {
    let pool = createPool([node('a', 128)]);
    const taken: number[] = [];
    for (let i = 0; i < 128; i++) {
      const r = place(pool, 1, 1);
      pool = r.pool;
      taken.push(...r.slot.nodes[0]!.cores);
    }
    expect(taken).toEqual(Array.from({ length: 128 }, (_, i) => i));
    expect(findSlot(pool, { tasks: 1, coresPerTask: 1, gpusPerTask: 0 })).toBeNull();
    expect(pool.freeCoreCount).toBe(0);
  });

  it('a released core is the next one given, wherever it is on the node', () => {
    let pool = createPool([node('a', 100)]);
    const slots: Slot[] = [];
    for (let i = 0; i < 100; i++) {
      const r = place(pool, 1, 1);
      pool = r.pool;
      slots.push(r.slot);
    }
    for (const core of [95, 31, 60]) {
      pool = release(pool, slots[core]!);
      expect(place(pool, 1, 1).slot.nodes[0]!.cores).toEqual([core]);
      pool = allocate(pool, slots[core]!);
    }
    pool = release(pool, slots[29]!);
    pool = release(pool, slots[30]!);
    pool = release(pool, slots[31]!);
    expect(place(pool, 1, 3).slot.nodes[0]!.cores).toEqual([29, 30, 31]);
  });

  it('never gives a core or GPU twice, and the counts follow', () => {
    let pool = createPool([node('a', 70, 3), node('b', 33, 2)]);
    const held: Slot[] = [];
    for (let i = 0; i < 12; i++) {
      const slot = findSlot(pool, { tasks: 1 + (i % 2), coresPerTask: 5, gpusPerTask: i % 3 === 0 ? 1 : 0 });
      if (!slot) continue;
      pool = allocate(pool, slot);
      held.push(slot);
    }
    expect(checkPoolInvariant(pool, held)).toEqual([]);
    const seen = new Set<string>();
    for (const slot of held) {
      for (const part of slot.nodes) {
        for (const c of part.cores) {
          expect(seen.has(`${part.node}c${c}`)).toBe(false);
          seen.add(`${part.node}c${c}`);
        }
        for (const g of part.gpus) {
          expect(seen.has(`${part.node}g${g}`)).toBe(false);
          seen.add(`${part.node}g${g}`);
        }
      }
    }
    const cores = held.flatMap((s) => s.nodes).reduce((n, p) => n + p.cores.length, 0);
    expect(pool.freeCoreCount).toBe(103 - cores);
    expect(freeCoreCountOf(pool, 0) + freeCoreCountOf(pool, 1)).toBe(103 - cores);
    const gpus = held.flatMap((s) => s.nodes).reduce((n, p) => n + p.gpus.length, 0);
    expect(freeGpuCountOf(pool, 0) + freeGpuCountOf(pool, 1)).toBe(5 - gpus);
    for (const slot of held) pool = release(pool, slot);
    expect(pool.freeCores).toEqual(createPool([node('a', 70, 3), node('b', 33, 2)]).freeCores);
    expect(pool.freeGpus).toEqual([
      [0, 1, 2],
      [0, 1],
    ]);
  });

  it('versions are independent: allocating in one leaves the others as they were', () => {
    const empty = createPool([node('a', 40), node('b', 40)]);
    const one = place(empty, 1, 35);
    const two = place(one.pool, 1, 35);
    expect(empty.freeCores.map((c) => c.length)).toEqual([40, 40]);
    expect(one.pool.freeCores.map((c) => c.length)).toEqual([5, 40]);
    expect(two.slot.nodes[0]!.node).toBe(1);
    expect(two.pool.freeCores.map((c) => c.length)).toEqual([5, 5]);
    expect(release(two.pool, one.slot).freeCores[0]).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('refuses cores that are held, already free, or do not exist', () => {
    const pool = createPool([node('a', 40)]);
    const { pool: held, slot } = place(pool, 1, 33);
    expect(() => allocate(held, slot)).toThrow(/held twice/);
    expect(() => release(pool, slot)).toThrow(/released twice/);
    expect(() => allocate(pool, { nodes: [{ node: 0, tasks: 1, cores: [40], gpus: [] }] })).toThrow(/not free/);
    expect(() => release(held, { nodes: [{ node: 0, tasks: 1, cores: [45], gpus: [] }] })).toThrow(/does not exist/);
    expect(() => allocate(pool, { nodes: [{ node: 0, tasks: 2, cores: [3, 3], gpus: [] }] })).toThrow(/held twice/);
  });

  it('a node marked down offers nothing and drops what its steps give back', () => {
    let pool = createPool([node('a', 4), node('b', 4)]);
    const r = place(pool, 1, 2);
    pool = markDown(r.pool, 0);
    expect(pool.freeCoreCount).toBe(4);
    expect(place(pool, 1, 1).slot.nodes[0]!.node).toBe(1);
    pool = release(pool, r.slot);
    expect(pool.freeCores.map((c) => c.length)).toEqual([0, 4]);
  });
});

describe('the pool on many nodes (versions share all but the path to a changed node)', () => {
  it('fills 1,000 nodes in order, gives a freed core on a far node back, and keeps old versions intact', () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => node(`n${i}`, 2));
    let pool = createPool(nodes);
    const slots: Slot[] = [];
    for (let i = 0; i < 2000; i++) {
      const r = place(pool, 1, 1);
      expect(r.slot.nodes[0]!.node).toBe(i >> 1);
      pool = r.pool;
      slots.push(r.slot);
    }
    expect(pool.freeCoreCount).toBe(0);
    const full = pool;
    pool = release(pool, slots[1501]!);
    pool = release(pool, slots[301]!);
    expect(place(pool, 1, 1).slot.nodes[0]).toEqual({ node: 150, tasks: 1, cores: [1], gpus: [] });
    pool = allocate(pool, slots[301]!);
    expect(place(pool, 1, 1).slot.nodes[0]).toEqual({ node: 750, tasks: 1, cores: [1], gpus: [] });
    expect(findSlot(full, { tasks: 1, coresPerTask: 1, gpusPerTask: 0 })).toBeNull();
    expect(
      checkPoolInvariant(
        pool,
        slots.filter((_, i) => i !== 1501),
      ),
    ).toEqual([]);
    expect(checkPoolInvariant(full, slots)).toEqual([]);
  });

  it('spreads a many-task step over the nodes with room, lowest first', () => {
    let pool = createPool(Array.from({ length: 300 }, (_, i) => node(`n${i}`, 4)));
    for (let i = 0; i < 299; i++) pool = place(pool, 1, 4).pool;
    pool = release(pool, { nodes: [{ node: 17, tasks: 1, cores: [2, 3], gpus: [] }] });
    const slot = findSlot(pool, { tasks: 3, coresPerTask: 2, gpusPerTask: 0 })!;
    expect(slot.nodes).toEqual([
      { node: 17, tasks: 1, cores: [2, 3], gpus: [] },
      { node: 299, tasks: 2, cores: [0, 1, 2, 3], gpus: [] },
    ]);
  });
});
