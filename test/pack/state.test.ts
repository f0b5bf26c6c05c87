import { describe, expect, it } from 'vitest';
import { HeldRuns, LaunchIndex, type HeldRun } from '../../src/pack/state.js';

/** Just what the tables look at: the id, and the launch key LaunchIndex keeps on the run. */
const run = (id: number): HeldRun => ({ id, launchKey: null }) as unknown as HeldRun;

/** A reference model of both tables: a Map, driven by the same random operations. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

describe('HeldRuns (held runs by id, in chunks of 4,096 ids)', () => {
  it('agrees with a Map over random sets and deletes across chunk boundaries, and iterates in id order', () => {
    const rand = rng(5);
    const t = new HeldRuns();
    const ref = new Map<number, HeldRun>();
    for (let k = 0; k < 20_000; k++) {
      const id = Math.floor(rand() * 13_000);
      if (rand() < 0.55) {
        const a = run(id);
        t.set(id, a);
        ref.set(id, a);
      } else expect(t.delete(id)).toBe(ref.delete(id));
      if (k % 997 === 0) {
        expect(t.size).toBe(ref.size);
        expect([...t.keys()]).toEqual([...ref.keys()].sort((x, y) => x - y));
      }
    }
    for (let id = 0; id < 13_000; id++) expect(t.get(id)).toBe(ref.get(id));
    // Emptied chunks are dropped and made again when needed.
    for (const id of [...ref.keys()]) t.delete(id);
    expect(t.size).toBe(0);
    expect([...t.values()]).toEqual([]);
    t.set(4097, run(4097));
    expect([...t.keys()]).toEqual([4097]);
  });
});

describe('LaunchIndex (launched runs by key, kept by its sequence number)', () => {
  it('finds a run by its key only while that is its launch; iterates in launch order', () => {
    const ix = new LaunchIndex();
    const runs = Array.from({ length: 9000 }, (_, i) => run(i + 1));
    for (const [i, a] of runs.entries()) ix.set(`${a.id}:0:0:1.${i + 1}`, a);
    expect(ix.size).toBe(9000);
    expect(ix.get('5000:0:0:1.5000')).toBe(runs[4999]);
    // A key of the same sequence number but another launch is not this one.
    expect(ix.get('5000:0:1:1.5000')).toBeUndefined();
    expect(ix.delete('5000:0:0:1.5000')).toBe(true);
    expect(ix.delete('5000:0:0:1.5000')).toBe(false);
    expect(ix.has('5000:0:0:1.5000')).toBe(false);
    expect(runs[4999]!.launchKey).toBeNull();
    // Settle the whole first chunk (sequence numbers 0-4095): it goes, the others stay in order.
    for (let seq = 1; seq < 4096; seq++) ix.delete(`${seq}:0:0:1.${seq}`);
    expect(ix.size).toBe(9000 - 4096);
    const keys = [...ix.keys()];
    expect(keys[0]).toBe('4096:0:0:1.4096');
    expect(keys.map((k) => Number(k.split('.')[1]))).toEqual([...keys.map((k) => Number(k.split('.')[1]))].sort((a, b) => a - b));
    expect([...ix].every(([k, a]) => a.launchKey === k)).toBe(true);
  });
});
