import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThemisError, describeFsError } from '../model/errors.js';
import { gpusHeld, peakCores } from '../model/resources.js';
import type { StepSpec } from '../model/step.js';
import type { CommandSpec, ScriptContext } from '../schedulers/adapter.js';
import { adapterFor } from '../schedulers/index.js';
import { readJsonSync, writeFileAtomicSync, writeJsonAtomicSync } from '../store/atomic.js';
import { FORMAT_VERSION, setupPaths } from '../store/layout.js';
import { readRunRecord, type EnsembleRecord } from '../store/records.js';
import { readIndex } from '../store/run-index.js';
import { compileTemplate, loadTemplate, type CompiledTemplate } from './handlebars.js';
import { pathCheckLines } from './path-check.js';

export interface BatchScriptInfo {
  allocation: number;
  /** Absolute path of the rendered script. */
  path: string;
  /** How to submit it (`sbatch PATH`, `bsub` < PATH, `flux batch PATH`, PATH). */
  submit: CommandSpec;
  runIds: number[];
}

/** `batch/plan-K.json`: the runs allocation K was sized for. */
export interface PlanRecord {
  format: number;
  allocation: number;
  runIds: number[];
}

/** The project root, from this module's location (src/render or dist/render). */
const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TEMPLATES_DIR = path.join(PROJECT_ROOT, 'templates');
/** The packer, by absolute path: a compute node's PATH may not have themis on it. */
export const PACK_BIN = path.join(PROJECT_ROOT, 'dist', 'bin', 'themis-pack.js');

/**
 * Split runs into k allocations balanced by cores (tasks x cores per task): largest first, each
 * onto the least-loaded allocation (ties: the lowest number). Ids are sorted within each plan.
 * Example: planAllocations([{id:1,cores:4},{id:2,cores:2},{id:3,cores:2}], 2) -> [[1],[2,3]].
 */
export function planAllocations(runs: readonly { id: number; cores: number }[], k: number): number[][] {
  if (!Number.isInteger(k) || k < 1) throw new ThemisError('INPUT', `--allocations must be a whole number >= 1, got ${k}`);
  const plans: number[][] = Array.from({ length: k }, () => []);
  const load = new Array<number>(k).fill(0);
  const order = [...runs].sort((a, b) => b.cores - a.cores || a.id - b.id);
  for (const run of order) {
    let best = 0;
    for (let i = 1; i < k; i++) {
      if (load[i]! < load[best]! || (load[i] === load[best] && plans[i]!.length < plans[best]!.length)) best = i;
    }
    plans[best]!.push(run.id);
    // A run needing no cores still takes a turn, so plans stay balanced by count too.
    load[best]! += Math.max(run.cores, 0);
  }
  for (const p of plans) p.sort((a, b) => a - b);
  return plans;
}

/**
 * GPUs per node a job must ask for so the biggest step fits: its GPUs spread over every node
 * (but never fewer than one task's worth). 0 when no step uses GPUs.
 */
export function gpusPerNodeNeeded(steps: Iterable<Pick<StepSpec, 'tasks' | 'gpusPerTask'>>, nodes: number): number {
  let need = 0;
  for (const s of steps) {
    if (s.gpusPerTask <= 0) continue;
    need = Math.max(need, s.gpusPerTask, Math.ceil(gpusHeld(s) / Math.max(nodes, 1)));
  }
  return need;
}

/** A name safe as part of a file name: the job name may hold anything a user typed. */
export function fileSafeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.]+/, '_');
  return s === '' ? 'themis' : s.slice(0, 100);
}

/** The template for an ensemble: the user's own (--template) or the scheduler's built-in one. */
export function templateFor(ens: EnsembleRecord): { file: string; render: CompiledTemplate } {
  const file = ens.allocation.template ?? path.join(TEMPLATES_DIR, `${ens.scheduler}.sh.hbs`);
  return { file, render: ens.allocation.template ? loadTemplate(file) : compileTemplate(fs.readFileSync(file, 'utf8'), file) };
}

/** Read the steps of the planned runs (only when gen did not say how many GPUs the runs need). */
function plannedSteps(setupDir: string, ens: EnsembleRecord, plans: number[][]): StepSpec[] {
  const wanted = new Set(plans.flat());
  const steps: StepSpec[] = [];
  for (const entry of readIndex(setupDir, ens.root)) {
    if (wanted.has(entry.id)) steps.push(...readRunRecord(entry.dir).steps);
  }
  return steps;
}

/** Everything a template may use (documented in the README, section "Batch-script templates"). */
export function scriptVariables(setupDir: string, ens: EnsembleRecord, allocation: number, runIds: number[], gpusPerNode: number) {
  const p = setupPaths(setupDir);
  const adapter = adapterFor(ens.scheduler, ens.allocation);
  const s = ens.allocation;
  const base = fileSafeName(s.name);
  const pattern = adapter.outputJobIdPattern ? `.${adapter.outputJobIdPattern}` : '';
  // Slurm reads % in --output as a pattern (%j, %u, …): a literal % in the path must be %%.
  const logsDir = ens.scheduler === 'slurm' ? p.logsDir.replace(/%/g, '%%') : p.logsDir;
  const outputFile = path.join(logsDir, `${base}-${allocation}${pattern}.out`);
  const ctx: ScriptContext = { settings: s, allocation, gpusPerNode, outputFile };
  return {
    scheduler: ens.scheduler,
    name: s.name,
    allocation,
    allocations: s.allocations,
    nodes: s.nodes,
    walltime: s.walltime,
    partition: s.partition,
    bank: s.bank,
    earlyStop: s.earlyStop,
    repeats: s.repeats,
    maxConcurrency: s.maxConcurrency ?? null,
    gpusPerNode,
    lsfFlavor: ens.scheduler === 'lsf' ? (s.lsfFlavor ?? 'csm') : null,
    lsfClassic: ens.scheduler === 'lsf' && s.lsfFlavor === 'classic',
    coresPerNode: s.coresPerNode ?? null,
    directives: adapter.scriptDirectives(ctx),
    outputFile,
    root: ens.root,
    setupDir: p.root,
    script: p.batchScript(base, allocation),
    node: process.execPath,
    packBin: PACK_BIN,
    checkPaths: pathCheckLines({ node: process.execPath, packBin: PACK_BIN, script: p.batchScript(base, allocation), setupDir: p.root, allocation }),
    runIds,
    runCount: runIds.length,
  };
}

/**
 * Write one executable batch script and one plan file per allocation (plans[k-1] is allocation k).
 * `gpusPerNode` is what the runs need when the caller knows it; otherwise it is read from the runs.
 */
export function renderBatchScripts(setupDir: string, ens: EnsembleRecord, plans: number[][], options: { gpusPerNode?: number } = {}): BatchScriptInfo[] {
  const p = setupPaths(setupDir);
  const { render } = templateFor(ens);
  const gpus = ens.allocation.gpusPerNode ?? options.gpusPerNode ?? ens.gpusPerNodeNeeded ?? gpusPerNodeNeeded(plannedSteps(setupDir, ens, plans), ens.allocation.nodes);
  try {
    fs.mkdirSync(p.batchDir, { recursive: true });
    // The scheduler writes the job's output here; a missing directory makes Slurm drop it silently.
    fs.mkdirSync(p.logsDir, { recursive: true });
  } catch (e) {
    throw new ThemisError('IO', `cannot create ${p.batchDir}: ${describeFsError(e)}`, { cause: e });
  }
  return plans.map((runIds, i) => writeBatchScript(setupDir, ens, i + 1, runIds, gpus, render));
}

/** Render and write allocation K's script and plan file. */
function writeBatchScript(setupDir: string, ens: EnsembleRecord, allocation: number, runIds: readonly number[], gpusPerNode: number, render: CompiledTemplate): BatchScriptInfo {
  const vars = scriptVariables(setupDir, ens, allocation, [...runIds], gpusPerNode);
  let text = render(vars);
  if (!text.endsWith('\n')) text += '\n';
  writeFileAtomicSync(vars.script, text, { mode: 0o755 });
  // The umask may have masked the execute bits at open(); the script must be executable by
  // whoever may read it, but keep the umask's say on who that is (umask 077: 0700, not 0755).
  const m = fs.statSync(vars.script).mode & 0o777;
  fs.chmodSync(vars.script, m | 0o100 | ((m & 0o044) >> 2));
  const plan: PlanRecord = { format: FORMAT_VERSION, allocation, runIds: vars.runIds };
  writeJsonAtomicSync(setupPaths(setupDir).planFile(allocation), plan);
  return { allocation, path: vars.script, submit: adapterFor(ens.scheduler, ens.allocation).submitCommand(vars.script), runIds: vars.runIds };
}

function readPlan(setupDir: string, allocation: number): number[] | null {
  const rec = readJsonSync<PlanRecord>(setupPaths(setupDir).planFile(allocation));
  return rec && Array.isArray(rec.runIds) ? rec.runIds : null;
}

/**
 * Every allocation's batch script, rendering the ones that are missing (an interrupted `gen`, or a
 * script deleted by hand). Plans come from the plan files, or are made again from the runs.
 */
export function ensureBatchScripts(setupDir: string, ens: EnsembleRecord): BatchScriptInfo[] {
  const p = setupPaths(setupDir);
  const k = Math.max(1, ens.allocation.allocations);
  const base = fileSafeName(ens.allocation.name);
  const adapter = adapterFor(ens.scheduler, ens.allocation);
  let plans: (number[] | null)[] = Array.from({ length: k }, (_, i) => readPlan(setupDir, i + 1));
  const missing = plans.map((_, i) => i + 1).filter((a) => !fs.existsSync(p.batchScript(base, a)));
  if (missing.length === 0) {
    return plans.map((runIds, i) => {
      const script = p.batchScript(base, i + 1);
      return { allocation: i + 1, path: script, submit: adapter.submitCommand(script), runIds: runIds ?? [] };
    });
  }
  if (plans.some((x) => x === null)) {
    const runs = readIndex(setupDir, ens.root).map((e) => {
      return { id: e.id, cores: peakCores(readRunRecord(e.dir).steps) };
    });
    plans = planAllocations(runs, k);
  }
  const full = plans as number[][];
  const { render } = templateFor(ens);
  const gpus = ens.allocation.gpusPerNode ?? ens.gpusPerNodeNeeded ?? gpusPerNodeNeeded(plannedSteps(setupDir, ens, full), ens.allocation.nodes);
  fs.mkdirSync(p.batchDir, { recursive: true });
  fs.mkdirSync(p.logsDir, { recursive: true });
  return full.map((runIds, i) =>
    missing.includes(i + 1)
      ? writeBatchScript(setupDir, ens, i + 1, runIds, gpus, render)
      : { allocation: i + 1, path: p.batchScript(base, i + 1), submit: adapter.submitCommand(p.batchScript(base, i + 1)), runIds },
  );
}
