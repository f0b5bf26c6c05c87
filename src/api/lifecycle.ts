import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { EXECUTE_ALLOC_OPTIONS, allocationProblems, type LsfFlavor } from '../model/allocation.js';
import type { CompositeRun, Run } from '../model/run.js';
import { Hooks, type HookName } from '../pack/hooks.js';
import { resolveProgram } from '../render/program.js';
import { fileSafeName } from '../render/batch.js';
import { acquireWriteLock } from '../store/write-lock.js';
import { DEFAULT_SETUP_DIR, setupPaths } from '../store/layout.js';
import { readEnsemble, readRunRecord, writeEnsemble, type OnCompletion, type SchedulerName } from '../store/records.js';
import { addRuns, generateEnsemble } from '../render/generate.js';
import { spawnPacker, type PackerOptions } from '../pack/index.js';
import { scanRuns } from '../store/scan.js';
import { submitAllocations } from './submit.js';
import type { Themis } from './themis.js';

/**
 * The parts of the `Themis` class that create, render, run and call hooks. Kept apart from
 * `themis.ts` so each file stays readable; `Themis` is the public face of all of it.
 */

/** `Themis.create`'s options: the seed's arguments in camelCase, plus `scheduler`. */
export interface CreateOptions {
  /** The program every `Run` executes (found on PATH or by path). Not needed for `CompositeRun`s. */
  application?: string | null;
  runs?: Iterable<Run | CompositeRun>;
  runParse?: string | readonly string[] | null;
  runCopy?: string | readonly string[] | null;
  runSymlink?: string | readonly string[] | null;
  /** `runs/{run_id}` by default; `{run_id:05}` and `{sample_key}` fields. */
  runDirNames?: string | null;
  /** An ES module exporting any of prepEnsemble, prepRun, postRun, postEnsemble. */
  appInterface?: string | null;
  setupDir?: string;
  /** -1 or null = unlimited. */
  maxRestarts?: number | null;
  maxFailedRuns?: number | null;
  appIsBatchScript?: boolean;
  /** The seed's `use_flux`: true means `scheduler: 'flux'`. */
  useFlux?: boolean;
  abortOn?: readonly number[] | null;
  /** Default: detected (`sbatch`, `bsub`, `flux` on PATH), else local. */
  scheduler?: SchedulerName;
  /** LSF only: `classic` (bsub -n, blaunch) or `csm` (IBM CSM: -nnodes, jsrun); default csm where `jsrun`/`lrun` is on PATH, else classic. */
  lsfFlavor?: LsfFlavor;
  /** Classic LSF: the cores (job slots) of one node (needed there: classic LSF counts slots). */
  coresPerNode?: number;
  keepUnknownTokens?: boolean;
  /** The ensemble root (relative run directories hang off it); default the current directory. */
  root?: string;
}

export interface DryRunOptions {
  /** > 0: report each run on `log`. */
  verbosity?: number;
  log?: (line: string) => void;
}

export interface ExecuteLocalOptions {
  /** Wait for the packer to finish (default false: it runs detached). */
  blocking?: boolean;
  /** Minutes the packer may run; it stops starting runs then and requeues running ones. */
  timeout?: number | null;
  /** Accepted for the seed's sake: one packer per allocation here (see README). */
  parallelism?: number | null;
  /** Always allowed here: packers coordinate through claims on disk. */
  allowMultiple?: boolean;
  maxConcurrency?: number | null;
  /** Cores/GPUs to use instead of what this machine has. */
  cores?: number;
  gpus?: number;
}

export interface LocalExecution {
  pid: number;
  logFile: string;
  /** Settles when the packer exits (with its exit code). */
  done: Promise<number>;
}

export interface ExecuteAllocOptions {
  nodes?: number;
  partition?: string | null;
  bank?: string | null;
  name?: string;
  /** Walltime in minutes. */
  timeout?: number | null;
  repeats?: number;
  /** Accepted for the seed's sake; one packer per allocation here. */
  parallelism?: number | null;
  earlyStop?: number | null;
  allowMultiple?: boolean;
  /** Not supported for batch allocations yet: an error when set (use a `--template`). */
  maxConcurrency?: number | null;
  /** LSF only: `classic` or `csm` (as `create`'s); changing it renders the scripts again. */
  lsfFlavor?: LsfFlavor;
  /** Classic LSF: the cores (job slots) of one node. */
  coresPerNode?: number;
  /** Environment for the scheduler's submit command (tests put fake executables on PATH). */
  env?: NodeJS.ProcessEnv;
}

/** Validate and absolutise an `onCompletion` command. */
export function resolveCompletion(args: readonly string[], options: { cwd?: string; stdout?: string | null; stderr?: string | null }, root: string): OnCompletion {
  if (!Array.isArray(args) || args.length === 0 || args[0] === '') {
    throw new ThemisError('USAGE', 'onCompletion: give the command to run and its arguments, e.g. ["mail", "-s", "done", "me@lab.org"]');
  }
  const cwd = path.resolve(root, options.cwd ?? '.');
  if (!fs.existsSync(cwd) || !fs.statSync(cwd).isDirectory()) {
    throw new ThemisError('INPUT', `onCompletion cwd ${cwd} is not a directory; create it or pass another --cwd`);
  }
  const program = resolveProgram(String(args[0]), 'onCompletion command', { cwd });
  const abs = (f: string | null | undefined) => (f ? path.resolve(cwd, f) : null);
  return { args: [program, ...args.slice(1).map(String)], cwd, stdout: abs(options.stdout), stderr: abs(options.stderr) };
}

/** Load the ensemble's interface module (or none); its hooks get `themis` as their handle. */
async function loadHooks(setupDir: string, themis: Themis | null = null): Promise<Hooks> {
  const ens = readEnsemble(setupDir);
  return Hooks.load(ens.interface, setupDir, `api pid ${process.pid}`, themis ? () => themis : null);
}

/** Which hooks the ensemble's interface module defines (none without an interface). */
export async function hookNames(setupDir: string): Promise<HookName[]> {
  const hooks = await loadHooks(setupDir);
  return (['prepEnsemble', 'prepRun', 'postRun', 'postEnsemble'] as const).filter((n) => hooks.has(n));
}

/** Call one hook in this process; postRun's value is returned (null when absent), never stored. */
export async function callHook(themis: Themis, name: HookName, id: number | null): Promise<unknown> {
  const hooks = await loadHooks(themis.setupDir, themis);
  if (!hooks.has(name)) return null;
  const run = id === null ? null : runFor(themis, id);
  const value = await hooks.call(name, run);
  return value === undefined ? null : value;
}

function runFor(themis: Themis, id: number): { id: number; record: ReturnType<typeof readRunRecord>; dir: string } {
  const dir = themis.runDir(id);
  return { id, dir, record: readRunRecord(dir) };
}

/** Call prepRun for each run in order (run directories were rendered by `gen`). */
export async function dryRun(themis: Themis, ids: number[], options: DryRunOptions): Promise<number[]> {
  const hooks = await loadHooks(themis.setupDir, themis);
  const log = options.log ?? (() => {});
  const done: number[] = [];
  for (const id of ids) {
    const run = runFor(themis, id);
    if (hooks.has('prepRun')) {
      try {
        await hooks.call('prepRun', run);
      } catch (e) {
        throw new ThemisError('STATE', `run ${id}: prepRun threw: ${(e as Error)?.message ?? e}; fix the interface module and dry-run again`, { cause: e });
      }
    }
    if ((options.verbosity ?? 0) > 0) log(`run ${id}: ${run.dir}${hooks.has('prepRun') ? ' (prepRun called)' : ''}`);
    done.push(id);
  }
  return done;
}

/**
 * Apply the seed's allocation options to the ensemble's settings, re-render the batch scripts when
 * they changed, and submit every allocation. Returns the first allocation's job id.
 */
export async function executeAlloc(themis: Themis, o: ExecuteAllocOptions): Promise<string> {
  const release = acquireWriteLock(themis.setupDir, 'executeAlloc');
  try {
    applyAllocation(themis.setupDir, o);
  } finally {
    release();
  }
  // The seed's execute_alloc adds an allocation on every call, so a queued earlier job does not block.
  const report = await submitAllocations(themis.setupDir, o.env ? { env: o.env, force: true } : { force: true });
  const first = report.jobs[0];
  if (!first) throw new ThemisError('STATE', `executeAlloc: nothing was submitted from ${themis.setupDir}`);
  return first.jobId;
}

/** Write the seed-style allocation options into ensemble.json; drop scripts that hold old settings. */
function applyAllocation(setupDir: string, o: ExecuteAllocOptions): void {
  const ens = readEnsemble(setupDir);
  const a = ens.allocation;
  const next = {
    ...a,
    nodes: o.nodes ?? a.nodes,
    partition: o.partition === undefined ? a.partition : o.partition,
    bank: o.bank === undefined ? a.bank : o.bank,
    name: o.name ?? a.name,
    walltime: o.timeout === undefined || o.timeout === null ? a.walltime : o.timeout,
    repeats: o.repeats ?? a.repeats,
    earlyStop: o.earlyStop === undefined || o.earlyStop === null ? a.earlyStop : o.earlyStop,
    maxConcurrency: o.maxConcurrency === undefined ? (a.maxConcurrency ?? null) : o.maxConcurrency,
    // LSF's settings, only where given now or before (an older record without them stays as it was).
    ...(ens.scheduler === 'lsf' && (o.lsfFlavor ?? a.lsfFlavor) != null && { lsfFlavor: o.lsfFlavor ?? a.lsfFlavor }),
    ...(ens.scheduler === 'lsf' && (o.coresPerNode ?? a.coresPerNode) != null && { coresPerNode: o.coresPerNode ?? a.coresPerNode }),
  };
  const problems = allocationProblems(next, EXECUTE_ALLOC_OPTIONS, ens.scheduler);
  if (problems.length > 0) throw new ThemisError('USAGE', `executeAlloc: ${problems.join('; ')}`, { problems });
  if (JSON.stringify(next) !== JSON.stringify(a)) {
    // Scripts hold the old settings: remove them so submit renders them again (plans are kept).
    const sp = setupPaths(setupDir);
    for (let k = 1; k <= Math.max(1, a.allocations); k++) fs.rmSync(sp.batchScript(fileSafeName(a.name), k), { force: true });
    writeEnsemble(setupDir, { ...ens, allocation: next });
  }
}

function list(v: string | readonly string[] | null | undefined): string[] {
  if (v === null || v === undefined) return [];
  return typeof v === 'string' ? [v] : [...v];
}

/** Create (or, for `overwrite`, replace) an ensemble from the seed-style options; returns its setup dir. */
export async function create(o: CreateOptions, mode: 'create' | 'overwrite'): Promise<string> {
  if (o.useFlux && o.scheduler && o.scheduler !== 'flux') {
    throw new ThemisError('USAGE', `create: useFlux is true but scheduler is ${JSON.stringify(o.scheduler)}; pass one of them`);
  }
  const scheduler = o.useFlux ? 'flux' : o.scheduler;
  const report = await generateEnsemble({
    setupDir: o.setupDir ?? DEFAULT_SETUP_DIR,
    ...(o.root !== undefined ? { root: o.root } : {}),
    application: o.application ?? null,
    ...(o.appIsBatchScript !== undefined ? { appIsBatchScript: o.appIsBatchScript } : {}),
    runs: o.runs === undefined ? [] : [...o.runs],
    parse: list(o.runParse),
    copy: list(o.runCopy),
    symlink: list(o.runSymlink),
    ...(o.runDirNames ? { runDirNames: o.runDirNames } : {}),
    // The seed's None (unlimited) is -1 here.
    ...(o.maxRestarts !== undefined ? { maxRestarts: o.maxRestarts === null ? -1 : o.maxRestarts } : {}),
    ...(o.maxFailedRuns !== undefined ? { maxFailedRuns: o.maxFailedRuns } : {}),
    abortOn: o.abortOn ? [...o.abortOn] : [],
    interface: o.appInterface ?? null,
    ...(scheduler ? { scheduler } : {}),
    ...(o.lsfFlavor !== undefined || o.coresPerNode !== undefined
      ? { allocation: { ...(o.lsfFlavor !== undefined && { lsfFlavor: o.lsfFlavor }), ...(o.coresPerNode !== undefined && { coresPerNode: o.coresPerNode }) } }
      : {}),
    ...(o.keepUnknownTokens !== undefined ? { keepUnknownTokens: o.keepUnknownTokens } : {}),
    overwrite: mode === 'overwrite',
  });
  return report.setupDir;
}

/** Append runs to an existing ensemble; returns their ids. */
export async function add(setupDir: string, runs: (Run | CompositeRun)[]): Promise<number[]> {
  const report = await addRuns(setupDir, runs);
  return report.runIds;
}

/** Start `themis-pack` on this machine for the ensemble. */
export async function executeLocal(themis: Themis, o: ExecuteLocalOptions): Promise<LocalExecution> {
  const { runs } = scanRuns(themis.setupDir);
  const open = runs.filter((r) => r.status?.status === 'queued' || r.status?.status === 'running').length;
  if (open === 0) {
    throw new ThemisError('STATE', `there are no runs to execute in ${themis.setupDir} (${runs.length} runs, none queued); \`themis requeue\` or \`themis add\` some first`);
  }
  const problems: string[] = [];
  const positive = (name: string, v: number | null | undefined, integer: boolean) => {
    if (v === undefined || v === null) return;
    if (!(v > 0) || (integer && !Number.isInteger(v))) problems.push(`${name}: must be ${integer ? 'an integer' : 'a number'} > 0, got ${JSON.stringify(v)}`);
  };
  positive('timeout', o.timeout, false);
  positive('maxConcurrency', o.maxConcurrency, true);
  positive('cores', o.cores, true);
  if (o.gpus !== undefined && !(Number.isInteger(o.gpus) && o.gpus >= 0)) problems.push(`gpus: must be an integer >= 0, got ${JSON.stringify(o.gpus)}`);
  if (problems.length > 0) throw new ThemisError('USAGE', `executeLocal: ${problems.join('; ')}`, { problems });
  const opts: PackerOptions = { setupDir: themis.setupDir };
  if (o.timeout) opts.walltime = o.timeout;
  if (o.maxConcurrency) opts.maxConcurrency = o.maxConcurrency;
  if (o.cores) opts.cores = o.cores;
  if (o.gpus !== undefined) opts.gpus = o.gpus;
  const started = spawnPacker(opts, { detach: !o.blocking });
  if (o.blocking) await started.done;
  return started;
}
