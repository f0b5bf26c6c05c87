import { describe, expect, it } from 'vitest';
import { simulate, type SimLaunch, type SimRun, type SimStep } from '../../src/pack/simulate.js';

const node = (name: string, cores: number, gpus = 0) => ({ name, cores, gpus: Array.from({ length: gpus }, (_, i) => String(i)) });
const step = (seconds: number, more: Partial<SimStep> = {}): SimStep => ({ tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, seconds, ...more });
const runs = (n: number, steps: (i: number) => SimStep[]): SimRun[] => Array.from({ length: n }, (_, i) => ({ id: i + 1, steps: steps(i) }));

/** No core or GPU of a node is held by two launches at once. */
function overlaps(launches: SimLaunch[]): string[] {
  const uses = new Map<string, [number, number][]>();
  for (const l of launches) {
    for (const part of l.slot.nodes) {
      for (const c of part.cores)
        (uses.get(`${l.allocation}/${part.node}/c${c}`) ?? uses.set(`${l.allocation}/${part.node}/c${c}`, []).get(`${l.allocation}/${part.node}/c${c}`)!).push([l.start, l.end]);
      for (const g of part.gpus)
        (uses.get(`${l.allocation}/${part.node}/g${g}`) ?? uses.set(`${l.allocation}/${part.node}/g${g}`, []).get(`${l.allocation}/${part.node}/g${g}`)!).push([l.start, l.end]);
    }
  }
  const problems: string[] = [];
  for (const [k, list] of uses) {
    list.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < list.length; i++) if (list[i]![0] < list[i - 1]![1]) problems.push(`${k} at ${list[i]![0]}`);
  }
  return problems;
}

describe('simulate: the packer core in virtual time', () => {
  it('packs one-core runs onto the cores: 8 runs of 10 s on 4 cores take 20 s', () => {
    const r = simulate(
      runs(8, () => [step(10)]),
      [{ nodes: [node('n0', 4)] }],
      { recordLaunches: true },
    );
    expect(r.makespanSeconds).toBe(20);
    expect(r.finished).toBe(8);
    expect(r.successful).toBe(8);
    expect(r.unfinished).toBe(0);
    expect(r.utilisation).toBe(1);
    expect(r.nodeHours).toBeCloseTo(20 / 3600);
    expect(r.launches).toHaveLength(8);
    expect(overlaps(r.launches!)).toEqual([]);
    expect(r.packers[0]!.reason).toBe('nothing left to run');
    expect(r.packers[0]!.decisions).toBeGreaterThan(0);
    expect(r.packers[0]!.decideMsPerLaunch).toBeGreaterThanOrEqual(0);
  });

  it('backfills like themis-pack: a wide run waits while narrow ones fill the holes, and nothing is held twice', () => {
    const r = simulate(
      runs(40, (i) => [step(5 + (i % 7), { coresPerTask: [1, 2, 4, 8][i % 4]! })]),
      [{ nodes: [node('n0', 16)] }],
      { recordLaunches: true },
    );
    expect(r.finished).toBe(40);
    expect(overlaps(r.launches!)).toEqual([]);
    const coreSeconds = Array.from({ length: 40 }, (_, i) => (5 + (i % 7)) * [1, 2, 4, 8][i % 4]!).reduce((a, b) => a + b, 0);
    expect(r.coreSeconds).toBeCloseTo(coreSeconds);
    expect(r.makespanSeconds).toBeGreaterThanOrEqual(coreSeconds / 16);
    expect(r.makespanSeconds).toBeLessThan((coreSeconds / 16) * 1.3);
  });

  it('stops at the walltime as the packer does: no new start after the early stop, running steps put back before the end', () => {
    const r = simulate(
      runs(10, () => [step(60)]),
      [{ nodes: [node('n0', 1)] }],
      { walltimeMinutes: 5, recordLaunches: true },
    );
    // Steps end at 60, 120, 180, 240; the fifth is interrupted at 300 - 10 s grace - 2 s.
    expect(r.finished).toBe(4);
    expect(r.unfinished).toBe(6);
    expect(r.makespanSeconds).toBe(288);
    expect(r.launches!.at(-1)).toMatchObject({ outcome: 'interrupt', end: 288 });
    expect(r.packers[0]!.counts.requeued).toBe(1);
  });

  it('stops a step at its own timeout and restarts it while the budget lasts', () => {
    const r = simulate([{ id: 1, steps: [step(120, { timeout: 1 })] }], [{ nodes: [node('n0', 2)] }], { maxRestarts: 1, recordLaunches: true });
    expect(r.launches!.map((l) => l.outcome)).toEqual(['timeout', 'timeout']);
    expect(r.makespanSeconds).toBe(120);
    expect(r.finished).toBe(1);
    expect(r.successful).toBe(0);
    expect(r.packers[0]!.counts.failed).toBe(1);
  });

  it('runs the steps of a composite run one after another, each with its own cores and GPUs', () => {
    const r = simulate([{ id: 1, steps: [step(10, { coresPerTask: 4 }), step(5, { tasks: 2, gpusPerTask: 1 })] }], [{ nodes: [node('n0', 4, 2)] }], { recordLaunches: true });
    expect(r.launches!.map((l) => [l.step, l.start, l.end])).toEqual([
      [0, 0, 10],
      [1, 10, 15],
    ]);
    expect(r.launches![1]!.slot.nodes[0]!.gpus).toEqual([0, 1]);
    expect(r.successful).toBe(1);
  });

  it('reports runs that fit no allocation as blocked, and they stay unfinished', () => {
    const r = simulate(
      [
        { id: 1, steps: [step(10, { coresPerTask: 32 })] },
        { id: 2, steps: [step(10)] },
      ],
      [{ nodes: [node('n0', 16)] }],
    );
    expect(r.blocked).toEqual([{ id: 1, reason: 'needs 32 cores on one node, nodes have 16' }]);
    expect(r.finished).toBe(1);
    expect(r.unfinished).toBe(1);
  });

  it('shares one queue between allocations: planned runs first, the rest stolen, each run launched once', () => {
    const all = runs(20, () => [step(10)]);
    const r = simulate(
      all,
      [
        { nodes: [node('a0', 2)], plan: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
        { nodes: [node('b0', 2)], plan: [11, 12, 13, 14, 15, 16, 17, 18, 19, 20] },
      ],
      { recordLaunches: true },
    );
    expect(r.finished).toBe(20);
    expect(r.makespanSeconds).toBe(50);
    const ids = r.launches!.map((l) => l.runId).sort((a, b) => a - b);
    expect(ids).toEqual(all.map((x) => x.id));
    expect(r.launches!.filter((l) => l.start === 0 && l.allocation === 1).map((l) => l.runId)).toEqual([1, 2]);
    expect(r.launches!.filter((l) => l.start === 0 && l.allocation === 2).map((l) => l.runId)).toEqual([11, 12]);
    expect(r.nodeHours).toBeCloseTo((2 * 50) / 3600);
  });

  it('stays fast at scale: 20,000 runs on 16 nodes x 128 cores, the cost per launch flat', () => {
    const r = simulate(
      runs(20_000, (i) => [step(30 + (i % 17), { coresPerTask: 1 + (i % 4) })]),
      [{ nodes: Array.from({ length: 16 }, (_, i) => node(`n${i}`, 128)) }],
    );
    expect(r.finished).toBe(20_000);
    const p = r.packers[0]!;
    expect(p.launches).toBe(20_000);
    expect(p.decisionsPerLaunch).toBeLessThan(5);
    // Generous for a loaded 2-core machine; about 1 s here.
    expect(r.wallMs).toBeLessThan(20_000);
  });
});
