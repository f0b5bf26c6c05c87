import { describe, expect, it } from 'vitest';
import { buildPlan, defaultNodeCounts, recommend, type PlanCandidate } from '../../src/api/plan.js';
import { renderReportHtml } from '../../src/api/report-html.js';
import { buildEnsembleReport, type ReportInputs, type ReportPacker, type ReportRun } from '../../src/api/report-model.js';
import { buildStatusReport } from '../../src/api/report.js';
import type { StepSpec } from '../../src/model/step.js';
import { newStatus, type EnsembleRecord, type StatusRecord } from '../../src/store/records.js';

const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(T0 + ms).toISOString();
const spec = (more: Partial<StepSpec> = {}): StepSpec => ({ args: ['/bin/app'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: false, cwd: '.', ...more });

/** A run that ran once from `start` for `ms` on job `job`, ending `status`. */
function ran(id: number, start: number, ms: number, job: string, status: StatusRecord['status'] = 'successful', steps = [spec()], result: unknown = null): ReportRun {
  const s = newStatus(id);
  const end = status === 'successful' ? 'successful' : status;
  const st: StatusRecord = {
    ...s,
    status,
    step: status === 'successful' ? 1 : 0,
    jobId: job,
    host: 'h',
    endedAt: iso(start + ms),
    exitCode: status === 'failed' ? 2 : 0,
    history: [...s.history, { at: iso(start), event: 'started', detail: 'step 0 attempt 0' }, { at: iso(start + ms), event: end }],
  };
  return { id, dir: `/e/runs/${id}`, status: st, sample: { x: String(id) }, sampleKeys: ['x'], steps, result };
}

const packer = (id: string, job: string, start: number, end: number, cores: number, gpus = 0, nodes = 1): ReportPacker => ({
  packerId: id,
  allocation: Number(job),
  jobId: job,
  host: 'h',
  start: T0 + start,
  end: T0 + end,
  nodes: Array.from({ length: nodes }, (_, i) => ({ name: `n${i}`, cores, gpus: Array.from({ length: gpus }, (_, g) => String(g)) })),
  reason: 'nothing left to run',
  live: false,
});

function inputs(runs: ReportRun[], packers: ReportPacker[], more: Partial<ReportInputs> = {}): ReportInputs {
  const ens = { scheduler: 'local', maxFailedRuns: null } as unknown as EnsembleRecord;
  const status = buildStatusReport({
    setupDir: '/e/.themis_setup',
    ensemble: ens,
    runs: runs.map((r) => ({ id: r.id, dir: r.dir, status: r.status, problem: null })),
    packers: [],
    stop: null,
    failedRuns: 0,
    allocations: [],
  });
  return { title: 'e', status, now: T0 + 1e9, runs, packers, plans: new Map(), journaled: new Map(), logTail: () => ['last line'], ...more };
}

describe('the report model', () => {
  it('gives each attempt to the packer whose job ran it, one mark per attempt, GPU steps on GPU lanes', () => {
    const runs = [ran(1, 0, 1000, '1'), ran(2, 0, 2000, '2', 'failed'), ran(3, 1000, 1000, '1', 'successful', [spec({ gpusPerTask: 1 })], { y: 2.5 })];
    const d = buildEnsembleReport(inputs(runs, [packer('p1', '1', 0, 2500, 2, 1), packer('p2', '2', 0, 2500, 2)]));
    expect(d.allocations.map((a) => a.launches)).toEqual([2, 1]);
    expect(d.timeline.mode).toBe('steps');
    expect(d.timeline.marks).toHaveLength(3);
    // Allocation 1: lane 0 is its GPU, lanes 1-2 its cores.
    const gpuMark = d.timeline.marks.find((m) => m.run === 3)!;
    expect(gpuMark).toMatchObject({ a: 0, y: 0, h: 1 });
    expect(d.timeline.marks.find((m) => m.run === 1)).toMatchObject({ a: 0, y: 1, h: 1 });
    expect(d.failures).toMatchObject({ count: 1, rows: [{ run: 2, exitCode: 2, log: ['last line'] }] });
    expect(d.allocations[1]!.coreFraction).toBeCloseTo(2000 / (2 * 2500));
    expect(d.results).toMatchObject({ count: 1, numericSample: ['x'], numericResult: ['y'], points: [{ run: 3, s: [3], r: [2.5] }] });
    expect(d.runtimes[0]!.slowest[0]).toMatchObject({ run: 2, seconds: 2 });
  });

  it('bins the timeline past the mark limit', () => {
    const runs = Array.from({ length: 50 }, (_, i) => ran(i + 1, (i >> 1) * 1000, 1000, '1'));
    const d = buildEnsembleReport(inputs(runs, [packer('p1', '1', 0, 25_000, 2)], { timelineLimit: 10 }));
    expect(d.timeline.mode).toBe('binned');
    expect(d.timeline.marks).toEqual([]);
    expect(Math.max(...d.timeline.cells.map((c) => c.busy))).toBeCloseTo(1);
  });

  it('stays small and quick at 100,000 runs on 64 nodes', () => {
    const n = 100_000;
    const runs = Array.from({ length: n }, (_, i) =>
      ran(i + 1, Math.floor(i / (64 * 32)) * 60_000, 50_000 + (i % 7) * 1000, '1', i % 97 === 0 ? 'failed' : 'successful', [spec({ coresPerTask: 4 })], { e: i % 13 }),
    );
    const t0 = Date.now();
    const d = buildEnsembleReport(inputs(runs, [packer('p1', '1', 0, 50 * 60_000, 128, 0, 64)]));
    const html = renderReportHtml(d);
    const ms = Date.now() - t0;
    expect(d.timeline.mode).toBe('binned');
    expect(Buffer.byteLength(html)).toBeLessThan(10 * 1024 * 1024);
    expect(d.failures.rows.length).toBe(200);
    expect(d.results!.points.length).toBe(5000);
    expect(ms).toBeLessThan(20_000);
  });
});

describe('the plan', () => {
  const todo = Array.from({ length: 64 }, (_, i) => ({ id: i + 1, sample: { secs: '60' }, steps: [spec({ coresPerTask: 2 })], status: newStatus(i + 1) }));
  const policy = { maxRestarts: 0, abortOn: [], earlyStop: 0, walltime: 0, allocations: 1 };

  it('simulates node counts and picks the cheapest that finishes within the walltime', () => {
    const p = buildPlan({ setupDir: null, all: todo, todo, policy, node: { cores: 16, gpus: 0, from: 'test' } }, { runtimeColumn: 'secs', walltimes: [3], nodes: [1, 2, 4, 8] });
    expect(p.estimate.said).toMatch(/sample column "secs"/);
    // 64 runs x 2 cores x 60 s = 128 core-minutes: 1 node (16 cores) needs 8 min, 4 nodes 2 min.
    expect(p.candidates.map((c) => [c.nodes, c.finishes])).toEqual([
      [1, false],
      [2, false],
      [4, true],
      [8, true],
    ]);
    expect(p.candidates[p.recommended!]!.nodes).toBe(4);
    expect(p.candidates[2]!.makespanSeconds).toBe(120);
    expect(p.why).toMatch(/cheapest that finishes all 64 runs/);
  });

  it('without a node list: powers of two, stopping one past the first that finishes', () => {
    expect(defaultNodeCounts(1000, 16)).toEqual([1, 2, 4, 8, 16, 32, 64]);
    const p = buildPlan({ setupDir: null, all: todo, todo, policy: { ...policy, walltime: 3 }, node: { cores: 16, gpus: 0, from: 'test' } }, { runtime: '60s' });
    expect(p.candidates.map((c) => c.nodes)).toEqual([1, 2, 4, 8]);
  });

  it('when nothing finishes, recommends the one that finishes most for the fewest node-hours', () => {
    const c = (nodes: number, finished: number, nodeHours: number): PlanCandidate => ({
      nodes,
      allocations: 1,
      walltimeMinutes: 10,
      makespanSeconds: 600,
      utilisation: 1,
      finished,
      unfinished: 10 - finished,
      nodeHours,
      finishes: false,
      simulatedMs: 0,
    });
    expect(recommend([c(1, 3, 1), c(2, 6, 2), c(4, 6, 4)], 10).recommended).toBe(1);
  });
});
