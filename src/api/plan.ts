import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { coresHeld } from '../model/resources.js';
import { simulate, type SimRun } from '../pack/simulate.js';
import { planAllocations } from '../render/batch.js';
import type { NodeInfo } from '../schedulers/adapter.js';
import { setupPaths } from '../store/layout.js';
import type { EnsembleRecord } from '../store/records.js';
import { estimateDurations, fmtSeconds, parseDuration, type DurationEstimates, type EstimateHow, type EstimateInput } from './estimate.js';
import { readExportsParallel, scanRunsParallel } from './scan-parallel.js';

/**
 * `themis plan`: how big an allocation to ask for. Estimates each queued run's durations
 * (`estimate.ts`), then runs the packer's own core (`pack/simulate.ts`) on candidate allocations
 * (node counts x walltimes x allocation counts) and recommends the cheapest in node-hours that
 * finishes every run, or, when none does, the one that finishes the most.
 */
export interface PlanOptions {
  /** Node counts to try; default 1, 2, 4, … until the runs could all start at once. */
  nodes?: number[];
  /** Minutes each allocation lasts; default the ensemble's walltime (0 = no limit). */
  walltimes?: number[];
  /** Allocations sharing the queue; default the ensemble's. */
  allocations?: number[];
  /** A duration for every step ("90s", "5m", "1h"; a bare number is seconds). */
  runtime?: string;
  /** A sample column holding each run's duration. */
  runtimeColumn?: string;
  coresPerNode?: number;
  gpusPerNode?: number;
}

export interface PlanCandidate {
  nodes: number;
  allocations: number;
  /** null = no limit. */
  walltimeMinutes: number | null;
  makespanSeconds: number;
  utilisation: number;
  finished: number;
  unfinished: number;
  nodeHours: number;
  finishes: boolean;
  /** Real milliseconds the simulation took. */
  simulatedMs: number;
}

export interface PlanReport {
  setupDir: string | null;
  /** Runs planned (queued ones, at the step they are at). */
  runs: number;
  estimate: { said: string; medians: DurationEstimates['medians']; totalCoreSeconds: number };
  node: { cores: number; gpus: number; from: string };
  candidates: PlanCandidate[];
  /** Index into `candidates`, or null when nothing was simulated. */
  recommended: number | null;
  why: string;
  blocked: { id: number; reason: string }[];
}

/** What planning needs of the ensemble, already read (or made by `gen` before anything is on disk). */
export interface PlanInputs {
  setupDir: string | null;
  /** Every run (for measured durations) with its status. */
  all: EstimateInput[];
  /** Runs to plan. */
  todo: EstimateInput[];
  /** From the ensemble: what the packer's policy needs. */
  policy: { maxRestarts: number; abortOn: readonly number[]; earlyStop: number; walltime: number; allocations: number };
  /** Node shape: from the options, the newest packer summary, or this machine. */
  node: { cores: number; gpus: number; from: string };
}

const MAX_DEFAULT_NODES = 1024;

/** The node counts tried when none are given: powers of two up to what all the runs could use at once. */
export function defaultNodeCounts(totalPeakCores: number, coresPerNode: number): number[] {
  const enough = Math.max(1, Math.ceil(totalPeakCores / Math.max(1, coresPerNode)));
  const out: number[] = [];
  for (let n = 1; n <= MAX_DEFAULT_NODES; n *= 2) {
    out.push(n);
    if (n >= enough) break;
  }
  return out;
}

/** Pure (but for the simulations' own timing): estimate, simulate every candidate, recommend one. */
export function buildPlan(inp: PlanInputs, opts: PlanOptions): PlanReport {
  const how = estimateHow(opts);
  const est = estimateDurations(inp.all, inp.todo, how);
  const simRuns: SimRun[] = inp.todo.map((r) => ({
    id: r.id,
    step: Math.max(0, Math.min(r.status?.step ?? 0, r.steps.length - 1)),
    steps: r.steps.map((s, i) => ({
      tasks: s.tasks,
      coresPerTask: s.coresPerTask,
      gpusPerTask: s.gpusPerTask,
      timeout: (s as { timeout?: number }).timeout ?? 0,
      seconds: est.seconds.get(r.id)?.[i] ?? 0,
    })),
  }));
  const peak = simRuns.reduce((n, r) => n + Math.max(0, ...r.steps.slice(r.step).map((s) => coresHeld(s))), 0);
  const coreSeconds = simRuns.reduce((n, r) => n + r.steps.slice(r.step).reduce((m, s) => m + coresHeld(s) * s.seconds, 0), 0);
  const nodeCounts = opts.nodes?.length ? opts.nodes : defaultNodeCounts(peak, inp.node.cores);
  const walltimes = opts.walltimes?.length ? opts.walltimes : [inp.policy.walltime];
  const allocs = opts.allocations?.length ? opts.allocations : [inp.policy.allocations];
  const candidates: PlanCandidate[] = [];
  let blocked: PlanReport['blocked'] = [];
  for (const k of allocs) {
    const plans =
      k > 1
        ? planAllocations(
            simRuns.map((r) => ({ id: r.id, cores: Math.max(0, ...r.steps.map((s) => coresHeld(s))) })),
            k,
          )
        : [simRuns.map((r) => r.id)];
    for (const w of walltimes) {
      let finishedAt = -1;
      for (const n of nodeCounts) {
        // Past the first node count that finishes, bigger ones only cost more: show one, then stop.
        if (!opts.nodes?.length && finishedAt >= 0 && candidates.length - finishedAt >= 2) break;
        const nodes = (a: number): NodeInfo[] => Array.from({ length: n }, (_, i) => ({ name: `a${a}n${i}`, cores: inp.node.cores, gpus: Array.from({ length: inp.node.gpus }, (_, g) => String(g)) }));
        const r = simulate(
          simRuns,
          plans.map((plan, a) => ({ nodes: nodes(a), plan })),
          { walltimeMinutes: w > 0 ? w : null, earlyStopMinutes: inp.policy.earlyStop, maxRestarts: inp.policy.maxRestarts, abortOn: inp.policy.abortOn },
        );
        blocked = r.blocked;
        candidates.push({
          nodes: n,
          allocations: k,
          walltimeMinutes: w > 0 ? w : null,
          makespanSeconds: round(r.makespanSeconds, 1),
          utilisation: r.utilisation,
          finished: r.finished,
          unfinished: r.unfinished,
          nodeHours: round(r.nodeHours, 3),
          finishes: r.unfinished === 0,
          simulatedMs: Math.round(r.wallMs),
        });
        if (r.unfinished === 0 && finishedAt < 0) finishedAt = candidates.length - 1;
      }
    }
  }
  const { recommended, why } = recommend(candidates, simRuns.length);
  return {
    setupDir: inp.setupDir,
    runs: simRuns.length,
    estimate: { said: est.said, medians: est.medians, totalCoreSeconds: round(coreSeconds, 1) },
    node: inp.node,
    candidates,
    recommended,
    why,
    blocked,
  };
}

/** The cheapest in node-hours that finishes every run (ties: fewer nodes); else the one that finishes most. */
export function recommend(cs: readonly PlanCandidate[], runs: number): { recommended: number | null; why: string } {
  if (cs.length === 0) return { recommended: null, why: 'nothing to simulate' };
  if (runs === 0) return { recommended: null, why: 'no queued runs: nothing to plan' };
  const idx = cs.map((_, i) => i);
  const done = idx.filter((i) => cs[i]!.finishes);
  if (done.length > 0) {
    // Ties (within rounding): the smaller request, which waits less in the scheduler's queue.
    done.sort((a, b) => cs[a]!.nodeHours - cs[b]!.nodeHours || cs[a]!.nodes * cs[a]!.allocations - cs[b]!.nodes * cs[b]!.allocations || cs[a]!.makespanSeconds - cs[b]!.makespanSeconds);
    const c = cs[done[0]!]!;
    const others = done.length - 1;
    return {
      recommended: done[0]!,
      why: `the cheapest that finishes all ${runs} runs: ${round(c.nodeHours, 2)} node-hours, done in ${fmtSeconds(c.makespanSeconds)}${others > 0 ? ` (${others} other candidate${others === 1 ? '' : 's'} finish${others === 1 ? 'es' : ''} too, at more node-hours)` : ''}`,
    };
  }
  idx.sort((a, b) => cs[b]!.finished - cs[a]!.finished || cs[a]!.nodeHours - cs[b]!.nodeHours);
  const c = cs[idx[0]!]!;
  return {
    recommended: idx[0]!,
    why: `none finishes within the walltime; this one finishes the most (${c.finished} of ${runs}) for the fewest node-hours: ask for more nodes or a longer --walltime, or resubmit (--repeats)`,
  };
}

function estimateHow(opts: PlanOptions): EstimateHow {
  if (opts.runtime !== undefined && opts.runtimeColumn !== undefined) throw new ThemisError('USAGE', 'give --runtime or --runtime-column, not both');
  if (opts.runtime !== undefined) {
    const s = parseDuration(opts.runtime);
    if (s === null) throw new ThemisError('USAGE', `--runtime ${opts.runtime}: give a duration: seconds (90, 90s), minutes (5m) or hours (1.5h)`);
    return { kind: 'given', seconds: s };
  }
  if (opts.runtimeColumn !== undefined) return { kind: 'column', column: opts.runtimeColumn };
  return { kind: 'measured' };
}

/** The node shape: given, else the newest packer summary's first node, else this machine. */
export function nodeShape(setupDir: string | null, opts: Pick<PlanOptions, 'coresPerNode' | 'gpusPerNode'>): PlanInputs['node'] {
  let seen: { cores: number; gpus: number; from: string } | null = null;
  if (setupDir !== null) {
    const dir = setupPaths(setupDir).logsDir;
    let newest = '';
    for (const name of safeList(dir)) {
      if (!name.endsWith('.summary.json')) continue;
      try {
        const s = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { endedAt?: string; nodes?: NodeInfo[] };
        const n = s.nodes?.[0];
        if (n && (s.endedAt ?? '') >= newest) {
          newest = s.endedAt ?? '';
          seen = { cores: n.cores, gpus: n.gpus.length, from: `the last packer's nodes (${name})` };
        }
      } catch {
        /* an unreadable summary is skipped */
      }
    }
  }
  const base = seen ?? { cores: os.availableParallelism(), gpus: 0, from: 'this machine (give --cores-per-node for the cluster)' };
  const given = opts.coresPerNode !== undefined || opts.gpusPerNode !== undefined;
  return { cores: opts.coresPerNode ?? base.cores, gpus: opts.gpusPerNode ?? base.gpus, from: given ? 'the options' : base.from };
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Read the ensemble and plan its queued runs. */
export async function planEnsemble(setupDir: string, opts: PlanOptions = {}): Promise<PlanReport> {
  const { ensemble, runs } = await scanRunsParallel(setupDir);
  const exports = await readExportsParallel(ensemble.root, runs);
  const statusById = new Map(runs.map((r) => [r.id, r.status]));
  const all: EstimateInput[] = exports.map((e) => ({ id: e.id, sample: e.sample, steps: e.steps, status: statusById.get(e.id) ?? null }));
  const todo = all.filter((r) => r.status?.status === 'queued');
  return buildPlan({ setupDir: ensemble.setupDir, all, todo, policy: policyOf(ensemble), node: nodeShape(setupDir, opts) }, opts);
}

export function policyOf(ens: EnsembleRecord): PlanInputs['policy'] {
  return { maxRestarts: ens.maxRestarts, abortOn: ens.abortOn, earlyStop: ens.allocation.earlyStop, walltime: ens.allocation.walltime, allocations: ens.allocation.allocations };
}

/** The plan as a terminal table. */
export function renderPlan(p: PlanReport): string {
  const lines: string[] = [];
  lines.push(`plan for ${p.runs} queued run${p.runs === 1 ? '' : 's'}${p.setupDir ? ` of ${p.setupDir}` : ''}`);
  lines.push(`  durations: ${p.estimate.said}`);
  for (const m of p.estimate.medians.slice(0, 10)) lines.push(`    step ${m.step} (${m.shape}): ${fmtSeconds(m.seconds)} (median of ${m.runs})`);
  lines.push(`  nodes: ${p.node.cores} cores${p.node.gpus ? `, ${p.node.gpus} GPUs` : ''} each, from ${p.node.from}`);
  lines.push(`  ${round(p.estimate.totalCoreSeconds / 3600, 2)} core-hours of work, simulated with the packer's own core (src/pack/simulate.ts)`);
  if (p.blocked.length > 0) lines.push(`  ${p.blocked.length} run${p.blocked.length === 1 ? '' : 's'} fit no node: ${p.blocked[0]!.reason}`);
  lines.push('');
  const head = ['', 'nodes', 'allocs', 'walltime', 'makespan', 'util', 'unfinished', 'node-hours'];
  const rows = p.candidates.map((c, i) => [
    i === p.recommended ? '->' : '',
    String(c.nodes),
    String(c.allocations),
    c.walltimeMinutes === null ? 'none' : `${c.walltimeMinutes} min`,
    fmtSeconds(c.makespanSeconds),
    `${Math.round(c.utilisation * 100)}%`,
    String(c.unfinished),
    String(round(c.nodeHours, 2)),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd();
  lines.push(`  ${fmt(head)}`);
  for (const r of rows) lines.push(`  ${fmt(r)}`);
  lines.push('');
  if (p.recommended !== null) {
    const c = p.candidates[p.recommended]!;
    lines.push(
      `recommended: ${c.allocations > 1 ? `${c.allocations} allocations of ` : ''}${c.nodes} node${c.nodes === 1 ? '' : 's'}${c.walltimeMinutes ? `, ${c.walltimeMinutes} min` : ''}: ${p.why}`,
    );
  } else lines.push(p.why);
  return lines.join('\n') + '\n';
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** What `gen`/`add --nodes auto` / `--allocations auto` settled on, and why (printed by the command). */
export interface AutoChoice {
  nodes: number;
  allocations: number;
  said: string;
  plan: PlanReport;
}

/**
 * `--nodes auto` / `--allocations auto`: the same plan as `themis plan`, on the runs about to be
 * written (plus what the ensemble measured, for `add`). `auto` fields are tried (node counts 1, 2,
 * 4, …; 1 to 8 allocations), fixed ones kept.
 */
export function chooseAllocation(inp: PlanInputs, ask: { nodes: number | 'auto'; allocations: number | 'auto'; walltime: number; runtime?: string; runtimeColumn?: string }): AutoChoice {
  if (!(ask.walltime > 0)) throw new ThemisError('USAGE', '--nodes auto / --allocations auto size the allocation for a time limit: give --walltime MINUTES too');
  const plan = buildPlan(inp, {
    ...(ask.nodes !== 'auto' && { nodes: [ask.nodes] }),
    walltimes: [ask.walltime],
    allocations: ask.allocations === 'auto' ? [1, 2, 4, 8] : [ask.allocations],
    ...(ask.runtime !== undefined && { runtime: ask.runtime }),
    ...(ask.runtimeColumn !== undefined && { runtimeColumn: ask.runtimeColumn }),
  });
  if (plan.recommended === null) throw new ThemisError('USAGE', `--nodes auto: ${plan.why}`);
  const c = plan.candidates[plan.recommended]!;
  const what = `${c.allocations} allocation${c.allocations === 1 ? '' : 's'} of ${c.nodes} node${c.nodes === 1 ? '' : 's'} (${inp.node.cores} cores each, from ${inp.node.from})`;
  const sim = `simulated makespan ${fmtSeconds(c.makespanSeconds)} of ${ask.walltime} min, ${Math.round(c.utilisation * 100)}% utilisation, ${round(c.nodeHours, 2)} node-hours${c.unfinished ? `, ${c.unfinished} runs left for a resubmission` : ''}`;
  return { nodes: c.nodes, allocations: c.allocations, said: `chose ${what}: ${plan.why}; ${sim}; durations: ${plan.estimate.said}`, plan };
}
