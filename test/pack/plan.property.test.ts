import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../../src/schedulers/adapter.js';
import { nextLaunches, type PlanOptions, type QueueItem } from '../../src/pack/plan.js';
import type { StepResources } from '../../src/model/resources.js';
import { allocate, checkPoolInvariant, createPool, findSlot, neverFits, release, type PoolState, type Slot } from '../../src/pack/pool.js';

const nodesArb = fc
  .array(fc.record({ cores: fc.integer({ min: 1, max: 16 }), gpus: fc.integer({ min: 0, max: 4 }) }), { minLength: 1, maxLength: 4 })
  .map((ns) => ns.map((n, i): NodeInfo => ({ name: `n${i}`, cores: n.cores, gpus: Array.from({ length: n.gpus }, (_, g) => String(g)) })));

const needArb = fc.record({
  tasks: fc.integer({ min: 1, max: 4 }),
  coresPerTask: fc.integer({ min: 0, max: 12 }),
  gpusPerTask: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 3 })),
});

interface Running {
  id: number;
  slot: Slot;
  endsAt: number;
}

/**
 * Simulate a packer: decide, start what it says, let time pass and runs end, until every run has
 * started or is blocked. Checks the pool invariant after every change, and that each launch fits
 * its need. Returns how many decisions each run waited.
 */
function simulate(nodes: NodeInfo[], needs: StepResources[], durations: number[], opts: PlanOptions) {
  let pool: PoolState = createPool(nodes);
  let queue: QueueItem[] = needs.map((need, i) => ({ runId: i, need, since: 0, passedOver: 0 }));
  const running: Running[] = [];
  const started = new Map<number, number>();
  const blocked = new Map<number, string>();
  let now = 0;
  for (let round = 0; round < 100_000 && (queue.length > 0 || running.length > 0); round++) {
    const d = nextLaunches(queue, pool, running.length, now, opts);
    pool = d.pool;
    for (const b of d.blocked) blocked.set(b.runId, b.reason);
    for (const l of d.launches) {
      const need = needs[l.runId]!;
      const tasks = l.slot.nodes.reduce((s, p) => s + p.tasks, 0);
      expect(tasks).toBe(need.tasks);
      for (const p of l.slot.nodes) {
        expect(p.cores.length).toBe(p.tasks * Math.max(1, need.coresPerTask));
        expect(p.gpus.length).toBe(p.tasks * need.gpusPerTask);
      }
      running.push({ id: l.runId, slot: l.slot, endsAt: now + durations[l.runId]! });
      started.set(l.runId, round);
    }
    expect(running.length).toBeLessThanOrEqual(opts.maxConcurrency);
    expect(
      checkPoolInvariant(
        pool,
        running.map((r) => r.slot),
      ),
    ).toEqual([]);
    const gone = new Set([...d.launches.map((l) => l.runId), ...d.blocked.map((b) => b.runId)]);
    const passed = new Set(d.passedOver);
    queue = queue.filter((q) => !gone.has(q.runId)).map((q) => (passed.has(q.runId) ? { ...q, passedOver: q.passedOver + 1 } : q));
    // The next event: the earliest end.
    if (running.length === 0) {
      if (queue.length > 0 && d.launches.length === 0 && d.blocked.length === 0) throw new Error('stuck: nothing running, nothing started');
      continue;
    }
    running.sort((a, b) => a.endsAt - b.endsAt);
    now = running[0]!.endsAt;
    while (running.length > 0 && running[0]!.endsAt <= now) pool = release(pool, running.shift()!.slot);
    expect(
      checkPoolInvariant(
        pool,
        running.map((r) => r.slot),
      ),
    ).toEqual([]);
  }
  return { started, blocked, pool };
}

describe('the packing decision (property tests)', () => {
  it('allocate/release keep the invariant and give back exactly what was taken', () => {
    fc.assert(
      fc.property(nodesArb, fc.array(needArb, { maxLength: 30 }), (nodes, needs) => {
        let pool = createPool(nodes);
        const held: Slot[] = [];
        for (const need of needs) {
          const slot = findSlot(pool, need);
          if (slot) {
            pool = allocate(pool, slot);
            held.push(slot);
          }
          expect(checkPoolInvariant(pool, held)).toEqual([]);
        }
        for (const slot of held.reverse()) pool = release(pool, slot);
        expect(pool.freeCores).toEqual(createPool(nodes).freeCores);
        expect(pool.freeGpus).toEqual(createPool(nodes).freeGpus);
      }),
      { numRuns: 300 },
    );
  });

  it('allocating a held core twice, or releasing twice, throws', () => {
    const pool = createPool([{ name: 'a', cores: 2, gpus: ['0'] }]);
    const slot = findSlot(pool, { tasks: 1, coresPerTask: 1, gpusPerTask: 1 })!;
    const p2 = allocate(pool, slot);
    expect(() => allocate(p2, slot)).toThrow(/held twice/);
    expect(() => release(pool, slot)).toThrow(/released twice/);
  });

  it('thousands of synthetic runs: invariant holds, concurrency capped, every run starts or is blocked for a true reason', () => {
    fc.assert(
      fc.property(
        nodesArb,
        fc.array(fc.tuple(needArb, fc.integer({ min: 1, max: 50 })), { minLength: 1, maxLength: 400 }),
        fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 8 })),
        (nodes, runs, maxConcurrency) => {
          const needs = runs.map((r) => r[0]);
          const { started, blocked } = simulate(
            nodes,
            needs,
            runs.map((r) => r[1]),
            { maxConcurrency, starveAfterMs: 200, starveAfterDecisions: 20 },
          );
          needs.forEach((need, i) => {
            const why = neverFits(nodes, need);
            if (why === null) expect(started.has(i), `run ${i} never started`).toBe(true);
            else expect(blocked.get(i)).toBe(why);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a large run is not starved by a stream of small ones (it gets a reservation)', () => {
    const nodes: NodeInfo[] = [{ name: 'a', cores: 8, gpus: [] }];
    // Run 0 holds 2 cores for long; run 1 needs all 8; 2000 one-core runs arrive behind it.
    const needs: StepResources[] = [
      { tasks: 1, coresPerTask: 2, gpusPerTask: 0 },
      { tasks: 1, coresPerTask: 8, gpusPerTask: 0 },
    ];
    const durations = [5, 5];
    for (let i = 0; i < 2000; i++) {
      needs.push({ tasks: 1, coresPerTask: 1, gpusPerTask: 0 });
      durations.push(1 + (i % 3));
    }
    const { started } = simulate(nodes, needs, durations, { maxConcurrency: Infinity, starveAfterMs: 1e9, starveAfterDecisions: 10 });
    // Without a reservation the big run would start only after all 2000 small ones.
    expect(started.get(1)!).toBeLessThan(40);
  });

  it('places on one node when it fits, across nodes only when it must, never a task across nodes', () => {
    const nodes: NodeInfo[] = [
      { name: 'a', cores: 4, gpus: [] },
      { name: 'b', cores: 4, gpus: [] },
    ];
    const pool = createPool(nodes);
    expect(findSlot(pool, { tasks: 2, coresPerTask: 2, gpusPerTask: 0 })!.nodes).toHaveLength(1);
    const wide = findSlot(pool, { tasks: 4, coresPerTask: 2, gpusPerTask: 0 })!;
    expect(wide.nodes.map((n) => n.tasks)).toEqual([2, 2]);
    expect(findSlot(pool, { tasks: 1, coresPerTask: 6, gpusPerTask: 0 })).toBeNull();
    expect(neverFits(nodes, { tasks: 1, coresPerTask: 64, gpusPerTask: 0 })).toBe('needs 64 cores on one node, nodes have 4');
    expect(neverFits(nodes, { tasks: 1, coresPerTask: 1, gpusPerTask: 1 })).toBe('needs 1 GPUs on one node, nodes have 0');
    expect(neverFits(nodes, { tasks: 3, coresPerTask: 3, gpusPerTask: 0 })).toMatch(/needs 3 tasks x 3 cores; the allocation \(2 nodes, 8 cores, 0 GPUs\) holds at most 2 such tasks/);
  });

  it('is one pass over a long uniform queue (100,000 runs: 8 launched, every other run looked at once, for the never-fits check)', () => {
    const pool = createPool([{ name: 'a', cores: 8, gpus: [] }]);
    let read = 0;
    const need = { tasks: 1, coresPerTask: 1, gpusPerTask: 0 };
    const queue: QueueItem[] = Array.from({ length: 100_000 }, (_, i) => ({
      runId: i,
      get need() {
        read++;
        return need;
      },
      since: 0,
      passedOver: 0,
    }));
    const d = nextLaunches(queue, pool, 0, 0);
    expect(d.launches.map((l) => l.runId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Linear: a few reads per launched run, one per run behind them (nothing per pair of runs).
    expect(read).toBeLessThanOrEqual(100_000 + 8 * 3);
    expect(d.blocked).toEqual([]);
  });
});
