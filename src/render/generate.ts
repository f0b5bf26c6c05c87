import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, throwIfProblems } from '../model/errors.js';
import type { AnyRun } from '../model/run.js';
import { GEN_ALLOCATION_FLAGS, allocationProblems, type LsfFlavor } from '../model/allocation.js';
import { peakCores } from '../model/resources.js';
import { SCHEDULER_NAMES, detectLsfFlavor, detectScheduler, isSchedulerName } from '../schedulers/index.js';
import { bumpGeneration } from '../store/ensemble-state.js';
import { DEFAULT_RUN_DIR_NAMES, DEFAULT_SETUP_DIR, FORMAT_VERSION, runPaths, setupPaths } from '../store/layout.js';
import { ensembleExists, readEnsemble, writeEnsemble, type AllocationSettings, type EnsembleRecord, type SchedulerName } from '../store/records.js';
import { nextIndexPosition, readIndex, writeIndexBatch, writeIndexBatchAt, type IndexEntry } from '../store/run-index.js';
import { ensureBatchScripts, gpusPerNodeNeeded, planAllocations, renderBatchScripts, type BatchScriptInfo, type PlanRecord } from './batch.js';
import { resolveProgram } from './program.js';
import { compileRunDirTemplate } from './run-dirs.js';
import { prepareRuns, writeRuns, type PreparedBatch, type RenderContext } from './render-runs.js';
import { expandSources } from './sources.js';
import { Stage, removeEnsembleTree, removeStaleStages } from './stage.js';
import { acquireWriteLock } from '../store/write-lock.js';
import { DEFAULT_LEASE_MS } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { listPackers } from '../store/ensemble-state.js';

export interface GenerateOptions {
  setupDir?: string;
  /** The ensemble root: relative run directories and --parse/--copy/--symlink paths hang off it (default: cwd). */
  root?: string;
  /** The program of `Run`s, found on PATH or by path; null/absent for CompositeRun-only ensembles. */
  application?: string | null;
  appIsBatchScript?: boolean;
  runs?: readonly AnyRun[];
  parse?: readonly string[];
  copy?: readonly string[];
  symlink?: readonly string[];
  runDirNames?: string;
  /** -1 = unlimited. */
  maxRestarts?: number;
  maxFailedRuns?: number | null;
  abortOn?: readonly number[];
  interface?: string | null;
  scheduler?: SchedulerName;
  allocation?: Partial<AllocationSettings>;
  keepUnknownTokens?: boolean;
  overwrite?: boolean;
  resume?: boolean;
  onProgress?: (done: number, total: number) => void;
  env?: NodeJS.ProcessEnv;
}

export interface AddOptions {
  onProgress?: (done: number, total: number) => void;
  /** New allocation settings for the batch scripts (`add --nodes auto`); allocations only grow. */
  allocation?: Partial<Pick<AllocationSettings, 'nodes' | 'allocations' | 'walltime'>>;
  env?: NodeJS.ProcessEnv;
}

export interface GenerateReport {
  setupDir: string;
  root: string;
  action: 'created' | 'overwritten' | 'resumed' | 'added';
  scheduler: SchedulerName;
  /** Ids of the runs rendered by this call, in order. */
  runIds: number[];
  /** Runs already on disk that `--resume` left alone. */
  skipped: number;
  totalRuns: number;
  batchScripts: BatchScriptInfo[];
  /** LSF only: which LSF the scripts are for, and how that was chosen. */
  lsf?: LsfChoice;
}

/** The LSF flavour of an ensemble and where it came from: the option, PATH (with why), or its record. */
export interface LsfChoice {
  flavor: LsfFlavor;
  source: 'option' | 'detected' | 'recorded';
  /** For `detected`: what PATH showed (`jsrun` is on PATH, no `jsrun` or `lrun` on PATH). */
  why?: string;
}

function lsfChoice(ens: EnsembleRecord, source: LsfChoice['source'], env: NodeJS.ProcessEnv): { lsf?: LsfChoice } {
  if (ens.scheduler !== 'lsf') return {};
  const flavor = ens.allocation.lsfFlavor ?? 'csm';
  return { lsf: source === 'detected' ? { flavor, source, why: detectLsfFlavor(env).why } : { flavor, source } };
}

export const DEFAULT_ALLOCATION: AllocationSettings = {
  nodes: 1,
  walltime: 0,
  partition: null,
  bank: null,
  name: 'themis',
  allocations: 1,
  repeats: 0,
  earlyStop: 0,
  gpusPerNode: null,
  template: null,
};

/**
 * `themis gen`: validate everything, render every run directory and the setup directory into a
 * staging area, and move it all into place only when it is complete. A failed gen leaves no
 * ensemble and no run directory. An existing ensemble needs `overwrite` or `resume`.
 * @example await generateEnsemble({ application: './sim', runs: [new Run({ x: '1' })], parse: ['deck.in'] })
 */
export async function generateEnsemble(opts: GenerateOptions): Promise<GenerateReport> {
  const setupDir = path.resolve(opts.setupDir ?? DEFAULT_SETUP_DIR);
  const root = path.resolve(opts.root ?? process.cwd());
  if (opts.overwrite && opts.resume) throw new ThemisError('USAGE', '--overwrite and --resume contradict each other; pass one');
  removeStaleStages(setupDir);
  const exists = ensembleExists(setupDir);
  if (exists && opts.resume) return resumeEnsemble(setupDir, opts);
  if (exists && !opts.overwrite) {
    const ens = readEnsemble(setupDir);
    const n = readIndex(setupDir, ens.root).length;
    throw new ThemisError(
      'EXISTS',
      `an ensemble already exists in ${setupDir} (${n} run${n === 1 ? '' : 's'}, created ${ens.createdAt}); pass --overwrite to replace it ` +
        '(removes its run directories), --resume to keep it and render only what is missing, or --setup-dir for another one',
    );
  }
  if (!exists) checkSetupDirFree(setupDir, Boolean(opts.overwrite));
  if (exists) refuseWhilePackersRun(setupDir);
  const ens = buildEnsemble(opts, setupDir, root);
  const runs = opts.runs ?? [];
  let oldDirs: string[] = [];
  let oldRoot = root;
  if (exists) {
    const old = readEnsemble(setupDir);
    oldRoot = old.root;
    oldDirs = readIndex(setupDir, old.root).map((e) => e.dir);
  }
  const ids = runs.map((_, i) => i + 1);
  const stage = new Stage(setupDir, root);
  let prepared: PreparedBatch;
  let plans: number[][];
  try {
    prepared = prepareRuns(contextOf(ens, opts.env), runs, ids, new Map(), new Set(oldDirs));
    ens.gpusPerNodeNeeded = gpusNeeded(prepared, ens);
    writeRuns(stage, prepared, opts.onProgress && ((n) => opts.onProgress!(n, runs.length)));
    const sp = setupPaths(stage.setup);
    for (const d of [sp.indexDir, sp.stateDir, sp.logsDir, sp.batchDir]) fs.mkdirSync(d, { recursive: true });
    writeIndexBatchAt(sp.indexFile(1), root, entriesOf(prepared));
    plans = planAllocations(coresOf(prepared), ens.allocation.allocations);
    // Rendered once into the stage only to catch template errors before anything moves.
    renderBatchScripts(stage.setup, ens, plans, { gpusPerNode: ens.gpusPerNodeNeeded });
  } catch (e) {
    stage.rollback();
    throw e;
  }
  let batchScripts: BatchScriptInfo[];
  try {
    if (exists) removeEnsembleTree(setupDir, oldRoot, oldDirs);
    else if (fs.existsSync(setupDir)) fs.rmSync(setupDir, { recursive: true, force: true });
    stage.commitRuns();
    stage.commitSetup(setupDir);
    batchScripts = renderBatchScripts(setupDir, ens, plans, { gpusPerNode: ens.gpusPerNodeNeeded });
    // Last: the ensemble "exists" only once everything else is in place.
    writeEnsemble(setupDir, ens);
  } catch (e) {
    stage.rollback();
    throw e;
  }
  stage.cleanup();
  const lsf = lsfChoice(ens, opts.allocation?.lsfFlavor ? 'option' : 'detected', opts.env ?? process.env);
  return { setupDir, root, action: exists ? 'overwritten' : 'created', scheduler: ens.scheduler, runIds: ids, skipped: 0, totalRuns: ids.length, batchScripts, ...lsf };
}

/**
 * `themis add`: append runs (ids continue after the last) under the write lock. Safe while
 * packers run: run directories move into place first, then the new index batch makes them visible.
 */
export async function addRuns(setupDir: string, runs: readonly AnyRun[], opts: AddOptions = {}): Promise<GenerateReport> {
  const release = acquireWriteLock(setupDir, 'add');
  try {
    const ens = readEnsemble(setupDir);
    const { batch, nextId } = nextIndexPosition(setupDir, ens.root);
    const index = readIndex(setupDir, ens.root);
    const ids = runs.map((_, i) => nextId + i);
    const scripts = appendBatch(setupDir, ens, runs, ids, index, batch, opts);
    const lsf = lsfChoice(ens, 'recorded', opts.env ?? process.env);
    return {
      setupDir: path.resolve(setupDir),
      root: ens.root,
      action: 'added',
      scheduler: ens.scheduler,
      runIds: ids,
      skipped: 0,
      totalRuns: index.length + ids.length,
      batchScripts: scripts,
      ...lsf,
    };
  } finally {
    release();
  }
}

/** `gen --resume` on an existing ensemble: its settings stay; runs beyond its index are added, missing directories re-rendered. */
async function resumeEnsemble(setupDir: string, opts: GenerateOptions): Promise<GenerateReport> {
  const release = acquireWriteLock(setupDir, 'gen --resume');
  try {
    const ens = readEnsemble(setupDir);
    const index = readIndex(setupDir, ens.root);
    const byId = new Map(index.map((e) => [e.id, e.dir]));
    const runs = opts.runs ?? [];
    const pick: AnyRun[] = [];
    const ids: number[] = [];
    const problems: string[] = [];
    let skipped = 0;
    runs.forEach((run, i) => {
      const dir = byId.get(i + 1);
      if (dir === undefined) {
        pick.push(run);
        ids.push(i + 1);
      } else if (fs.existsSync(runPaths(dir).run)) {
        skipped++;
      } else if (fs.existsSync(dir)) {
        problems.push(`run ${i + 1}: ${dir} exists but has no ${runPaths(dir).run}; move it away so --resume can render it again`);
      } else {
        pick.push(run);
        ids.push(i + 1);
      }
    });
    throwIfProblems('EXISTS', 'cannot resume', problems);
    const { batch } = nextIndexPosition(setupDir, ens.root);
    const scripts = pick.length > 0 ? appendBatch(setupDir, ens, pick, ids, index, batch, opts) : ensureBatchScripts(setupDir, ens);
    const lsf = lsfChoice(ens, 'recorded', opts.env ?? process.env);
    return { setupDir, root: ens.root, action: 'resumed', scheduler: ens.scheduler, runIds: ids, skipped, totalRuns: Math.max(index.length, runs.length), batchScripts: scripts, ...lsf };
  } finally {
    release();
  }
}

/** Stage, check and commit runs into an existing ensemble; ids already in the index are re-rendered in place. */
function appendBatch(setupDir: string, ens: EnsembleRecord, runs: readonly AnyRun[], ids: readonly number[], index: readonly IndexEntry[], batch: number, opts: AddOptions): BatchScriptInfo[] {
  const known = new Map(index.map((e) => [e.id, e.dir]));
  const existing = new Map<string, number>();
  const again = new Set(ids.filter((id) => known.has(id)));
  for (const e of index) if (!again.has(e.id)) existing.set(e.dir, e.id);
  const stage = new Stage(setupDir, ens.root);
  let prepared: PreparedBatch;
  let plans: number[][];
  const next: EnsembleRecord = opts.allocation
    ? { ...ens, allocation: { ...ens.allocation, ...opts.allocation, allocations: Math.max(ens.allocation.allocations, opts.allocation.allocations ?? 0) } }
    : { ...ens };
  try {
    prepared = prepareRuns(contextOf(ens, opts.env), runs, ids, existing, new Set());
    const problems = prepared.runs
      .filter((r) => again.has(r.id) && r.dir !== known.get(r.id))
      .map((r) => `run ${r.id}: the samples put it in ${r.dir} but the ensemble has it in ${known.get(r.id)}; --resume needs the same samples`);
    throwIfProblems('INPUT', 'cannot resume', problems);
    next.gpusPerNodeNeeded = Math.max(ens.gpusPerNodeNeeded ?? 0, gpusNeeded(prepared, ens));
    writeRuns(stage, prepared, opts.onProgress && ((n) => opts.onProgress!(n, runs.length)));
    const fresh = prepared.runs.filter((r) => !again.has(r.id));
    plans = mergePlans(oldPlans(setupDir, ens.allocation.allocations), planAllocations(coresOf({ ...prepared, runs: fresh }), next.allocation.allocations));
    renderBatchScripts(stage.setup, next, plans, { gpusPerNode: next.gpusPerNodeNeeded });
  } catch (e) {
    stage.rollback();
    throw e;
  }
  const fresh = entriesOf({ ...prepared, runs: prepared.runs.filter((r) => !again.has(r.id)) });
  try {
    stage.commitRuns();
    if (fresh.length > 0) writeIndexBatch(setupDir, ens.root, batch, fresh);
  } catch (e) {
    stage.rollback();
    throw e;
  }
  stage.cleanup();
  // The runs are part of the ensemble now; what follows only refreshes the scripts and flags.
  const scripts = renderBatchScripts(setupDir, next, plans, { gpusPerNode: next.gpusPerNodeNeeded });
  if (next.gpusPerNodeNeeded !== ens.gpusPerNodeNeeded || next.allocation !== ens.allocation) writeEnsemble(setupDir, next);
  if (fresh.length > 0) bumpGeneration(setupDir);
  return scripts;
}

/** Each allocation's planned run ids from its plan file ([] when missing or unreadable). */
function oldPlans(setupDir: string, k: number): number[][] {
  const sp = setupPaths(setupDir);
  return Array.from({ length: k }, (_, i) => {
    try {
      const rec = JSON.parse(fs.readFileSync(sp.planFile(i + 1), 'utf8')) as PlanRecord;
      return Array.isArray(rec.runIds) ? rec.runIds : [];
    } catch {
      return [];
    }
  });
}

/** New runs go to the allocations with the fewest runs so far, biggest new share first. */
function mergePlans(old: number[][], add: number[][]): number[][] {
  const merged = old.map((p) => [...p]);
  while (merged.length < add.length) merged.push([]);
  const targets = merged.map((p, i) => ({ i, n: p.length })).sort((a, b) => a.n - b.n || a.i - b.i);
  const shares = [...add].sort((a, b) => b.length - a.length);
  for (const [k, share] of shares.entries()) merged[targets[k]!.i]!.push(...share);
  for (const p of merged) p.sort((a, b) => a - b);
  return merged;
}

function entriesOf(batch: PreparedBatch): IndexEntry[] {
  return batch.runs.map((r) => ({ id: r.id, dir: r.dir }));
}

function coresOf(batch: PreparedBatch): { id: number; cores: number }[] {
  return batch.runs.map((r) => ({ id: r.id, cores: peakCores(r.steps) }));
}

function gpusNeeded(batch: PreparedBatch, ens: EnsembleRecord): number {
  function* steps() {
    for (const r of batch.runs) yield* r.steps;
  }
  return gpusPerNodeNeeded(steps(), ens.allocation.nodes);
}

function contextOf(ens: EnsembleRecord, env: NodeJS.ProcessEnv = process.env): RenderContext {
  return {
    root: ens.root,
    setupDir: ens.setupDir,
    application: ens.application,
    appIsBatchScript: ens.appIsBatchScript,
    scheduler: ens.scheduler,
    lsfFlavor: ens.allocation.lsfFlavor ?? null,
    runDirNames: ens.runDirNames,
    parse: ens.parse,
    copy: ens.copy,
    symlink: ens.symlink,
    keepUnknownTokens: ens.keepUnknownTokens,
    env,
  };
}

/** --overwrite removes run directories: never under a packer that is still running their steps. */
function refuseWhilePackersRun(setupDir: string): void {
  const live = listPackers(setupDir, { leaseMs: DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) }).filter((p) => p.alive);
  if (live.length === 0) return;
  const who = live.map((p) => `${p.packerId} (host ${p.host}, pid ${p.pid}${p.jobId ? `, job ${p.jobId}` : ''})`).join(', ');
  throw new ThemisError('STATE', `cannot --overwrite ${setupDir}: packers are still working on it: ${who}; stop them (scancel the job, or signal the packer) first`);
}

/** A setup directory without ensemble.json: fine when empty; leftovers of a crashed gen only with --overwrite. */
function checkSetupDirFree(setupDir: string, overwrite: boolean): void {
  let names: string[];
  try {
    names = fs.readdirSync(setupDir);
  } catch {
    return;
  }
  if (names.length === 0) return;
  const ours = ['index', 'batch', 'state', 'logs', 'packers', 'write.lock', 'jobs.json'];
  const looksOurs = names.every((n) => ours.includes(n) || n.startsWith('.'));
  if (overwrite && looksOurs) return;
  throw new ThemisError(
    'EXISTS',
    `${setupDir} exists and is not empty but holds no ensemble (no ensemble.json)` +
      (looksOurs ? '; it looks like the leftovers of an interrupted gen: pass --overwrite to replace it' : '; choose another --setup-dir or empty it'),
  );
}

function intProblem(v: unknown, name: string, min: number): string | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= min ? null : `${name}: must be an integer >= ${min}, got ${JSON.stringify(v)}`;
}

/** The ensemble record from options: every setting checked, every problem reported at once. */
function buildEnsemble(opts: GenerateOptions, setupDir: string, root: string): EnsembleRecord {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const alloc: AllocationSettings = { ...DEFAULT_ALLOCATION, ...opts.allocation };
  const check = (p: string | null) => p && problems.push(p);
  const scheduler = opts.scheduler ?? detectScheduler(env);
  if (!isSchedulerName(scheduler)) problems.push(`--scheduler: unknown scheduler ${JSON.stringify(scheduler)}; use one of ${SCHEDULER_NAMES.join(', ')}`);
  // LSF's flavour is always recorded (given, else detected); other schedulers keep neither setting.
  if (scheduler === 'lsf') alloc.lsfFlavor ??= detectLsfFlavor(env).flavor;
  else {
    delete alloc.lsfFlavor;
    delete alloc.coresPerNode;
  }
  problems.push(...allocationProblems(alloc, GEN_ALLOCATION_FLAGS, scheduler));
  if (alloc.template !== null) {
    alloc.template = path.resolve(root, alloc.template);
    if (!fs.existsSync(alloc.template)) problems.push(`--template ${alloc.template}: no such file`);
  }
  const maxRestarts = opts.maxRestarts ?? 0;
  check(intProblem(maxRestarts, '--max-restarts', -1));
  const maxFailedRuns = opts.maxFailedRuns ?? null;
  if (maxFailedRuns !== null) check(intProblem(maxFailedRuns, '--max-failed-runs', 0));
  const abortOn = [...(opts.abortOn ?? [])];
  for (const c of abortOn) if (!Number.isInteger(c) || c < 1 || c > 255) problems.push(`--abort-on: exit codes are integers 1-255, got ${JSON.stringify(c)}`);
  const attempt = <T>(f: () => T, fallback: T): T => {
    try {
      return f();
    } catch (e) {
      problems.push(...(e instanceof ThemisError ? e.problems : [(e as Error).message]));
      return fallback;
    }
  };
  let iface: string | null = null;
  if (opts.interface) {
    iface = path.resolve(root, opts.interface);
    if (!fs.existsSync(iface) || fs.statSync(iface).isDirectory()) problems.push(`--interface ${opts.interface}: no such file (${iface})`);
  }
  const application = opts.application ? attempt(() => resolveProgram(opts.application!, 'application', { cwd: root, env }), null) : null;
  const appIsBatchScript = opts.appIsBatchScript ?? true;
  const runDirNames = opts.runDirNames ?? DEFAULT_RUN_DIR_NAMES;
  attempt(() => compileRunDirTemplate(runDirNames), null);
  const expand = (list: readonly string[] | undefined, flag: string) => attempt(() => expandSources(list ?? [], flag, root), []);
  // A batch-script application is parsed into each run directory; a plain copy of it would clash.
  const notApp = (p: string) => !(application !== null && appIsBatchScript && p === application);
  const ens: EnsembleRecord = {
    format: FORMAT_VERSION,
    kind: 'themis-ensemble',
    createdAt: new Date().toISOString(),
    root,
    setupDir,
    application,
    appIsBatchScript,
    runDirNames,
    parse: expand(opts.parse, '--parse').filter(notApp),
    copy: expand(opts.copy, '--copy').filter(notApp),
    symlink: expand(opts.symlink, '--symlink').filter(notApp),
    maxRestarts,
    maxFailedRuns,
    abortOn,
    interface: iface,
    scheduler,
    allocation: alloc,
    onCompletion: null,
    keepUnknownTokens: Boolean(opts.keepUnknownTokens),
  };
  throwIfProblems('INPUT', `${problems.length} problem${problems.length === 1 ? '' : 's'} with the ensemble settings`, problems);
  return ens;
}
