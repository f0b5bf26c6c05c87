import { coresPerTask } from '../model/resources.js';
import type { RunStatus } from '../model/status.js';
import type { Sample, StepSpec } from '../model/step.js';
import type { NodeInfo } from '../schedulers/adapter.js';
import { attemptsOf, type AttemptOutcome } from '../store/history.js';
import type { StatusRecord } from '../store/records.js';
import type { StatusReport } from './report.js';
import { buildTimeline, buildUtilisation, type Launch, type Timeline, type UtilisationSeries } from './report-timeline.js';

/**
 * The data behind `themis report` (also what `--json` writes): one value built from what is on
 * disk, rendered by `report-html.ts`. Pure: the reading is `report-gather.ts`'s.
 */
export interface EnsembleReportData {
  format: 1;
  title: string;
  setupDir: string;
  scheduler: string;
  generatedAt: string;
  progress: Pick<StatusReport, 'total' | 'counts' | 'completed' | 'percent' | 'unreadableCount'> & { running: number; queued: number };
  allocations: AllocationView[];
  timeline: Timeline;
  utilisation: UtilisationSeries[];
  runtimes: RuntimeStep[];
  failures: { count: number; rows: FailureRow[] };
  results: ResultsView | null;
  notes: string[];
}

export interface AllocationView {
  index: number;
  label: string;
  allocation: number | null;
  packerId: string | null;
  jobId: string | null;
  host: string | null;
  nodes: NodeInfo[];
  start: number;
  end: number;
  live: boolean;
  reason: string | null;
  plannedRuns: number | null;
  launches: number;
  cores: number;
  gpus: number;
  coreHours: number;
  stepCoreHours: number;
  /** Fraction of the allocation's core-hours spent in steps (0..1). */
  coreFraction: number;
  gpuHours: number;
  stepGpuHours: number;
  gpuFraction: number | null;
}

export interface RuntimeStep {
  step: number;
  count: number;
  median: number;
  p90: number;
  max: number;
  /** Seconds: bins of equal width from 0; ok and bad (non-zero exit) counts. */
  bins: { x0: number; x1: number; ok: number; bad: number }[];
  slowest: { run: number; dir: string; seconds: number; outcome: AttemptOutcome }[];
}

export interface FailureRow {
  run: number;
  dir: string;
  status: RunStatus;
  step: number;
  reason: string | null;
  exitCode: number | null;
  signal: string | null;
  restarts: number;
  host: string | null;
  jobId: string | null;
  log: string[];
}

export interface ResultsView {
  count: number;
  sampleKeys: string[];
  resultKeys: string[];
  /** Keys whose values are all numbers (or numeric text), for the scatter. */
  numericSample: string[];
  numericResult: string[];
  /** The first RESULT_ROWS runs with results: id, status, sample values, result values (in the key orders above). */
  rows: { run: number; status: RunStatus | null; s: unknown[]; r: unknown[] }[];
  /** Up to SCATTER_POINTS runs (evenly picked): numeric sample and result values. */
  points: { run: number; s: (number | null)[]; r: (number | null)[] }[];
}

/** One run as the report reads it. */
export interface ReportRun {
  id: number;
  dir: string;
  status: StatusRecord | null;
  sample: Sample;
  sampleKeys: readonly string[];
  steps: readonly StepSpec[];
  result: unknown;
}

/** A packer that ran (its summary) or runs (its heartbeat file). */
export interface ReportPacker {
  packerId: string;
  allocation: number | null;
  jobId: string | null;
  host: string;
  start: number;
  end: number | null;
  nodes: NodeInfo[] | null;
  reason: string | null;
  live: boolean;
}

export interface ReportInputs {
  title: string;
  status: StatusReport;
  now: number;
  runs: readonly ReportRun[];
  packers: readonly ReportPacker[];
  /** Runs planned per allocation number (batch/plan-K.json). */
  plans: Map<number, number>;
  /** Exact packer of a launch from the journals that are still there: `${run}:${step}:${attempt}` -> packer id. */
  journaled: Map<string, string>;
  /** The last lines of a failed run's run.log. */
  logTail: (run: ReportRun) => string[];
  timelineLimit?: number;
}

const FAILURE_ROWS = 200;
const RESULT_ROWS = 200;
const SCATTER_POINTS = 5000;
const SLOWEST = 5;
const RUNTIME_BINS = 30;

/** Build the report's data. */
export function buildEnsembleReport(inp: ReportInputs): EnsembleReportData {
  const notes: string[] = [];
  const packers = [...inp.packers].sort((a, b) => a.start - b.start || a.packerId.localeCompare(b.packerId));
  const byId = new Map(packers.map((p, i) => [p.packerId, i]));
  // Launches, each given to the packer that ran it: the journal's word where it is still there,
  // else the packer whose job and host the status names (its last attempt), else the packer that
  // ran the run's next attempt, else any packer that was up at the time.
  const launches: (Launch & { dir: string })[] = [];
  const orphanGroups = new Map<string, number>();
  const extra: ReportPacker[] = [];
  let trimmed = 0;
  for (const r of inp.runs) {
    if (!r.status) continue;
    const { attempts, trimmed: t } = attemptsOf(r.status);
    if (t) trimmed++;
    let later: number | null = null;
    for (let i = attempts.length - 1; i >= 0; i--) {
      const at = attempts[i]!;
      const step = r.steps[at.step];
      if (!step) continue;
      const end = at.end ?? (at.outcome === 'running' ? inp.now : at.start);
      const up = (p: ReportPacker) => at.start >= p.start - 2000 && at.start <= (p.end ?? inp.now) + 2000;
      let alloc: number | undefined = byId.get(inp.journaled.get(`${r.id}:${at.step}:${at.attempt}`) ?? '');
      if (alloc === undefined && at.last) alloc = packers.findIndex((p) => up(p) && p.jobId === r.status!.jobId && p.host === r.status!.host);
      if ((alloc === undefined || alloc < 0) && later !== null && up(packers[later]!)) alloc = later;
      if (alloc === undefined || alloc < 0) alloc = packers.findIndex(up);
      if (alloc < 0) {
        // No packer record covers it (summaries removed, or an older themis): group by job and host.
        const key = `${r.status.jobId ?? '-'}@${r.status.host ?? '?'}`;
        let g = orphanGroups.get(key);
        if (g === undefined) {
          g = packers.length + extra.length;
          orphanGroups.set(key, g);
          extra.push({
            packerId: `job ${r.status.jobId ?? '-'} on ${r.status.host ?? '?'}`,
            allocation: null,
            jobId: r.status.jobId,
            host: r.status.host ?? '?',
            start: at.start,
            end,
            nodes: null,
            reason: null,
            live: false,
          });
        }
        const x = extra[g - packers.length]!;
        x.start = Math.min(x.start, at.start);
        x.end = Math.max(x.end ?? end, end);
        alloc = g;
      }
      later = alloc;
      launches.push({ alloc, run: r.id, step: at.step, attempt: at.attempt, start: at.start, end: Math.max(end, at.start), need: step, outcome: at.outcome, dir: r.dir });
    }
  }
  const all = [...packers, ...extra];
  if (extra.length > 0) notes.push(`${extra.length} group${extra.length === 1 ? '' : 's'} of runs had no packer summary covering them; their nodes are inferred from what ran at once`);
  if (trimmed > 0) notes.push(`${trimmed} run${trimmed === 1 ? '' : 's'} had more history than the status keeps (the last 20 entries): their first attempts are not shown`);
  const allocs = all.map((p, i) => {
    const mine = launches.filter((l) => l.alloc === i);
    const nodes = p.nodes && p.nodes.length > 0 ? p.nodes : inferNodes(p.host, mine);
    let start = p.start;
    let end = p.end ?? inp.now;
    for (const l of mine) {
      start = Math.min(start, l.start);
      end = Math.max(end, l.end);
    }
    return { p, nodes, start, end, launches: mine.length };
  });
  const timeline = buildTimeline(allocs, launches, inp.timelineLimit);
  if (timeline.mode === 'binned') notes.push(`${timeline.launches} step attempts: the timeline shows how busy each group of lanes was per time bin instead of one mark per step`);
  if (timeline.unplaced > 0) notes.push(`${timeline.unplaced} step attempts did not fit the nodes their packer reported (clock skew between hosts?): drawn on an extra lane`);
  const utilisation = buildUtilisation(allocs, launches);
  const allocations: AllocationView[] = allocs.map((x, i) => {
    const cores = x.nodes.reduce((n, nd) => n + nd.cores, 0);
    const gpus = x.nodes.reduce((n, nd) => n + nd.gpus.length, 0);
    const hours = (x.end - x.start) / 3_600_000;
    const u = utilisation[i]!;
    const label = [x.p.allocation !== null ? `allocation ${x.p.allocation}` : null, x.p.jobId ? `job ${x.p.jobId}` : null, x.p.live ? 'running' : null, x.p.packerId].filter(Boolean).join(' · ');
    return {
      index: i,
      label,
      allocation: x.p.allocation,
      packerId: x.p.packerId,
      jobId: x.p.jobId,
      host: x.p.host,
      nodes: x.nodes,
      start: x.start,
      end: x.end,
      live: x.p.live,
      reason: x.p.reason,
      plannedRuns: x.p.allocation !== null ? (inp.plans.get(x.p.allocation) ?? null) : null,
      launches: x.launches,
      cores,
      gpus,
      coreHours: r3(cores * hours),
      stepCoreHours: r3(u.coreMs / 3_600_000),
      coreFraction: cores * hours > 0 ? r3(u.coreMs / 3_600_000 / (cores * hours)) : 0,
      gpuHours: r3(gpus * hours),
      stepGpuHours: r3(u.gpuMs / 3_600_000),
      gpuFraction: gpus > 0 && hours > 0 ? r3(u.gpuMs / 3_600_000 / (gpus * hours)) : null,
    };
  });
  const s = inp.status;
  return {
    format: 1,
    title: inp.title,
    setupDir: s.setupDir,
    scheduler: s.scheduler,
    generatedAt: new Date(inp.now).toISOString(),
    progress: { total: s.total, counts: s.counts, completed: s.completed, percent: s.percent, unreadableCount: s.unreadableCount, running: s.counts.running, queued: s.counts.queued },
    allocations,
    timeline,
    utilisation,
    runtimes: buildRuntimes(launches),
    failures: buildFailures(inp),
    results: buildResults(inp.runs),
    notes,
  };
}

/** Without the packer's word: one node named for the host, as big as what ran on it at once. */
function inferNodes(host: string, launches: readonly Launch[]): NodeInfo[] {
  const ev: [number, number, number][] = [];
  for (const l of launches) {
    const c = l.need.tasks * coresPerTask(l.need);
    const g = l.need.tasks * l.need.gpusPerTask;
    ev.push([l.start, c, g], [l.end, -c, -g]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let c = 0;
  let g = 0;
  let mc = 1;
  let mg = 0;
  for (const [, dc, dg] of ev) {
    c += dc;
    g += dg;
    mc = Math.max(mc, c);
    mg = Math.max(mg, g);
  }
  return [{ name: host, cores: mc, gpus: Array.from({ length: mg }, (_, i) => String(i)) }];
}

function buildRuntimes(launches: readonly (Launch & { dir: string })[]): RuntimeStep[] {
  const per = new Map<number, (Launch & { dir: string })[]>();
  for (const l of launches) {
    if (l.outcome !== 'ok' && l.outcome !== 'restart' && l.outcome !== 'failed' && l.outcome !== 'aborted') continue;
    const list = per.get(l.step) ?? [];
    if (list.length === 0) per.set(l.step, list);
    list.push(l);
  }
  return [...per.keys()]
    .sort((a, b) => a - b)
    .map((step) => {
      const list = per.get(step)!;
      const secs = list.map((l) => (l.end - l.start) / 1000);
      const sorted = [...secs].sort((a, b) => a - b);
      const max = sorted.at(-1) ?? 0;
      const width = niceWidth(max / RUNTIME_BINS);
      const n = Math.max(1, Math.ceil(max / width + 1e-9));
      const bins = Array.from({ length: n }, (_, i) => ({ x0: r3(i * width), x1: r3((i + 1) * width), ok: 0, bad: 0 }));
      list.forEach((l, i) => {
        const b = bins[Math.min(n - 1, Math.floor(secs[i]! / width))]!;
        if (l.outcome === 'ok') b.ok++;
        else b.bad++;
      });
      const order = list.map((_, i) => i).sort((a, b) => secs[b]! - secs[a]!);
      return {
        step,
        count: list.length,
        median: r3(quantile(sorted, 0.5)),
        p90: r3(quantile(sorted, 0.9)),
        max: r3(max),
        bins,
        slowest: order.slice(0, SLOWEST).map((i) => ({ run: list[i]!.run, dir: list[i]!.dir, seconds: r3(secs[i]!), outcome: list[i]!.outcome })),
      };
    });
}

function buildFailures(inp: ReportInputs): EnsembleReportData['failures'] {
  const bad = inp.runs.filter((r) => r.status && (r.status.status === 'failed' || r.status.status === 'aborted' || r.status.status === 'killed'));
  const rows = bad.slice(0, FAILURE_ROWS).map((r) => {
    const s = r.status!;
    return { run: r.id, dir: r.dir, status: s.status, step: s.step, reason: s.reason, exitCode: s.exitCode, signal: s.signal, restarts: s.restarts, host: s.host, jobId: s.jobId, log: inp.logTail(r) };
  });
  return { count: bad.length, rows };
}

/** A result's columns: a number is `result`; an object's top-level numbers, strings and booleans. */
function flatResult(v: unknown): Record<string, unknown> | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object') return { result: v };
  if (Array.isArray(v)) return null;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x === null || ['number', 'string', 'boolean'].includes(typeof x)) out[k] = x;
  return out;
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

function buildResults(runs: readonly ReportRun[]): ResultsView | null {
  const withResult = runs.map((r) => ({ r, flat: flatResult(r.result) })).filter((x) => x.flat !== null);
  if (withResult.length === 0) return null;
  const resultKeys = [...new Set(withResult.flatMap((x) => Object.keys(x.flat!)))];
  const sampleKeys = [...new Set(withResult.flatMap((x) => x.r.sampleKeys))];
  const numericKeys = (keys: string[], get: (x: (typeof withResult)[number], k: string) => unknown) =>
    keys.filter((k) => {
      let seen = 0;
      for (const x of withResult) {
        const v = get(x, k);
        if (v === undefined || v === null || v === '') continue;
        if (num(v) === null) return false;
        seen++;
      }
      return seen > 0;
    });
  const numericSample = numericKeys(sampleKeys, (x, k) => x.r.sample[k]);
  const numericResult = numericKeys(resultKeys, (x, k) => x.flat![k]);
  const rows = withResult
    .slice(0, RESULT_ROWS)
    .map((x) => ({ run: x.r.id, status: x.r.status?.status ?? null, s: sampleKeys.map((k) => x.r.sample[k] ?? null), r: resultKeys.map((k) => x.flat![k] ?? null) }));
  const stride = Math.max(1, withResult.length / SCATTER_POINTS);
  const points: ResultsView['points'] = [];
  for (let i = 0; i < withResult.length && points.length < SCATTER_POINTS; i = Math.floor(points.length * stride)) {
    const x = withResult[i]!;
    points.push({ run: x.r.id, s: numericSample.map((k) => num(x.r.sample[k])), r: numericResult.map((k) => num(x.flat![k])) });
  }
  return { count: withResult.length, sampleKeys, resultKeys, numericSample, numericResult, rows, points };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  return sorted[lo]! + (sorted[Math.min(sorted.length - 1, lo + 1)]! - sorted[lo]!) * (i - lo);
}

/** A bin width of 1, 2 or 5 times a power of ten, at least `w`. */
function niceWidth(w: number): number {
  if (!(w > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(w));
  for (const m of [1, 2, 5, 10]) if (m * p >= w) return m * p;
  return 10 * p;
}

function r3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
