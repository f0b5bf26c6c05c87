import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { CompositeRun, Run, Step } from '../model/run.js';
import { COMPLETED_STATUSES, RUN_STATUSES, isRunStatus, type RunStatus } from '../model/status.js';
import { DEFAULT_SETUP_DIR } from '../store/layout.js';
import { ensembleExists, readEnsemble, writeEnsemble, writeResult, type EnsembleRecord } from '../store/records.js';
import { readIndex } from '../store/run-index.js';
import { acquireWriteLock } from '../store/write-lock.js';
import { scanRuns, type RunState } from '../store/scan.js';
import { scanStatuses, scanStatusesCompact, type StatusScan } from '../store/status-scan.js';
import { dequeueRuns, requeueRuns, type OpReport } from '../store/run-ops.js';
import { buildTable, formatCsv, formatJson, formatYaml, tableRecords, type RunExport } from './export.js';
import { checkJsonResult } from './runtime.js';
import { readExportsParallel, scanRunsParallel } from './scan-parallel.js';
import { clearEnsemble, type ClearOptions, type ClearReport } from './clear.js';
import type * as lifecycle from './lifecycle.js';
import type { HookContext as PackHookContext, HookName } from '../pack/hooks.js';

/**
 * Creating, adding, running and the interface's hooks (render, batch scripts, the packer, the
 * schedulers) load on first use: opening an ensemble to read its state does not need them.
 */
const loadLifecycle = (): Promise<typeof lifecycle> => import('./lifecycle.js');

export type { OpReport } from '../store/run-ops.js';
export type { ClearOptions, ClearReport } from './clear.js';
export type { CreateOptions, ExecuteLocalOptions, ExecuteAllocOptions, DryRunOptions, LocalExecution } from './lifecycle.js';

/**
 * What every interface hook (`prepEnsemble`, `prepRun`, `postRun`, `postEnsemble`) receives;
 * `themis` is a handle on the ensemble (null only if it could not be opened).
 * @example
 * export async function postRun(ctx: HookContext) { return { energy: await readEnergy(ctx.runDir!) }; }
 */
export type HookContext = Omit<PackHookContext, 'themis'> & { themis: Themis | null };

/** Anything with a `write(string)`: `process.stdout`, a `fs.WriteStream`, a test collector. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** `onCompletion`'s options: where to run the command and where its output goes. */
export interface OnCompletionOptions {
  cwd?: string;
  stdout?: string | null;
  stderr?: string | null;
}

/**
 * A handle to one ensemble on disk (the seed's `themis.Themis`). Every method reads the run
 * directories afresh, so a handle never goes stale while packers run.
 * @example
 * const ens = Themis.open('./.themis_setup');
 * const [done, total] = await ens.progress();
 */
/** How `Themis.open` reads the ensemble. */
export interface OpenOptions {
  /** Counts and filters read every run's status file instead of trusting the summary of finished runs (`themis status --full`). */
  fullScan?: boolean;
}

export class Themis {
  static readonly RUN_QUEUED = 'queued' as const;
  static readonly RUN_RUNNING = 'running' as const;
  static readonly RUN_SUCCESS = 'successful' as const;
  static readonly RUN_FAILURE = 'failed' as const;
  static readonly RUN_KILLED = 'killed' as const;
  static readonly RUN_ABORTED = 'aborted' as const;

  /** Absolute path of the setup directory. */
  readonly setupDir: string;

  /** Read every run's status file for counts and filters, never the summary of finished runs. */
  readonly fullScan: boolean;

  private constructor(setupDir: string, options: OpenOptions = {}) {
    this.setupDir = path.resolve(setupDir);
    this.fullScan = options.fullScan ?? false;
  }

  /** The ensemble's settings (re-read each time: `onCompletion` and `add` change it). */
  get ensemble(): EnsembleRecord {
    return readEnsemble(this.setupDir);
  }

  /**
   * Open an existing ensemble (the seed's constructor). Synchronous, so hooks can use it.
   * @example const ens = Themis.open(); // ./.themis_setup
   */
  static open(setupDir: string = DEFAULT_SETUP_DIR, options: OpenOptions = {}): Themis {
    readEnsemble(setupDir); // throws NOT_FOUND / FORMAT with the fix
    return new Themis(setupDir, options);
  }

  /**
   * True when `setupDir` holds an ensemble.
   * @example if (!Themis.exists('sweep/.themis_setup')) await Themis.create({ … });
   */
  static exists(setupDir: string = DEFAULT_SETUP_DIR): boolean {
    return ensembleExists(setupDir);
  }

  /**
   * Remove what themis made for its own use (ensemble.json, index, batch scripts, logs, state and
   * each run's `.themis/`), never user files. Refuses while packers are live unless `force`.
   * @example await Themis.clear('./.themis_setup');
   */
  static async clear(setupDir: string = DEFAULT_SETUP_DIR, options: ClearOptions = {}): Promise<ClearReport> {
    return clearEnsemble(setupDir, options);
  }

  /**
   * Create a new ensemble: render every run directory and the batch scripts. An existing
   * ensemble in `setupDir` is an error (use `createOverwrite` or `createResume`).
   * @example
   * const ens = await Themis.create({ application: './sim', runs: [new Run({ x: 1 }, '-x 1')] });
   */
  static async create(options: lifecycle.CreateOptions): Promise<Themis> {
    const setupDir = await (await loadLifecycle()).create(options, 'create');
    return new Themis(setupDir);
  }

  /**
   * As `create`, removing an existing ensemble first.
   * @example await Themis.createOverwrite({ application: './sim', runs });
   */
  static async createOverwrite(options: lifecycle.CreateOptions): Promise<Themis> {
    const setupDir = await (await loadLifecycle()).create(options, 'overwrite');
    return new Themis(setupDir);
  }

  /**
   * Open the ensemble in `setupDir` if there is one (the new options are ignored), else create it.
   * @example const ens = await Themis.createResume({ application: './sim', runs });
   */
  static async createResume(options: lifecycle.CreateOptions): Promise<Themis> {
    const setupDir = options.setupDir ?? DEFAULT_SETUP_DIR;
    if (ensembleExists(setupDir)) return Themis.open(setupDir);
    return Themis.create(options);
  }

  /** Every run's status, in id order. */
  scan(ids?: Iterable<number>): RunState[] {
    return scanRuns(this.setupDir, ids === undefined ? {} : { ids }).runs;
  }

  /**
   * Ids of the runs with any of `statuses` (all runs when none is given), in id order.
   * @example const failed = await ens.filterByStatus(Themis.RUN_FAILURE);
   */
  async filterByStatus(...statuses: RunStatus[]): Promise<number[]> {
    const want = statusSet(statuses);
    const { read, covered } = await scanStatusesCompact(this.setupDir, { full: this.fullScan });
    const ids = read.filter((r) => want === null || (r.status !== null && want.has(r.status.status))).map((r) => r.id);
    const fromSummary = covered.idsWith(want);
    return fromSummary.length > 0 ? ids.concat(fromSummary).sort((a, b) => a - b) : ids;
  }

  /**
   * Every run's status as the counting methods read it: finished runs from the summary of finished
   * runs, the others from their status files (every file with `full`, or with `fullScan` on open).
   * `summary` says how it was answered.
   * @example const { runs, summary } = await ens.scanStatuses({ full: true });
   */
  async scanStatuses(options: { full?: boolean } = {}): Promise<StatusScan> {
    return scanStatuses(this.setupDir, { full: options.full ?? this.fullScan });
  }

  /**
   * How many runs have any of `statuses` (all runs when none is given).
   * @example const left = await ens.countByStatus('queued', 'running');
   */
  async countByStatus(...statuses: RunStatus[]): Promise<number> {
    return (await this.filterByStatus(...statuses)).length;
  }

  /**
   * `[completed, total]`, where completed counts successful, failed, killed and aborted runs.
   * @example const [done, total] = await ens.progress();
   */
  async progress(): Promise<[number, number]> {
    const { read, covered, total } = await scanStatusesCompact(this.setupDir, { full: this.fullScan });
    const done = read.filter((r) => r.status !== null && COMPLETED_STATUSES.includes(r.status.status)).length + covered.size;
    return [done, total];
  }

  /** What the exporters need about each run (or only `ids`), read from the run directories. */
  async exportRuns(ids?: Iterable<number>): Promise<RunExport[]> {
    const { ensemble, runs } = await scanRunsParallel(this.setupDir, ids === undefined ? {} : { ids });
    return readExportsParallel(ensemble.root, runs);
  }

  /**
   * Write a CSV of every run: `run_id,status,tasks,cores_per_task,gpus_per_task`, sample
   * columns in input order, then result columns.
   * @example await ens.writeCsv(fs.createWriteStream('runs.csv'));
   */
  async writeCsv(stream: TextSink): Promise<void> {
    stream.write(formatCsv(buildTable(await this.exportRuns())));
  }

  /**
   * Write every run (id, status, sample, steps, result) as a JSON array.
   * @example await ens.writeJson(process.stdout);
   */
  async writeJson(stream: TextSink): Promise<void> {
    stream.write(formatJson(await this.exportRuns()));
  }

  /**
   * Write every run (id, status, sample, steps, result) as a plain YAML list.
   * @example await ens.writeYaml(process.stdout);
   */
  async writeYaml(stream: TextSink): Promise<void> {
    stream.write(formatYaml(await this.exportRuns()));
  }

  /**
   * One plain object per run (the seed's `as_dataframe`): the CSV's columns with native values.
   * `includeNone: false` leaves out runs without a result.
   * @example const rows = await ens.asRecords({ includeNone: false });
   */
  async asRecords(options: { includeNone?: boolean } = {}): Promise<Record<string, unknown>[]> {
    let runs = await this.exportRuns();
    if (options.includeNone === false) runs = runs.filter((r) => r.result !== null && r.result !== undefined);
    return tableRecords(buildTable(runs));
  }

  /**
   * Stop runs: queued ones never start, running ones are stopped by their packer within a
   * heartbeat; both end `killed`. Finished runs are left alone (reported in `skipped`).
   * @example const report = await ens.dequeueRuns([3, 4]);
   */
  async dequeueRuns(ids: Iterable<number>): Promise<OpReport> {
    return dequeueRuns(this.setupDir, [...ids]);
  }

  /**
   * Queue finished runs again with a fresh restart budget. Soft (default) resumes at the step
   * where the run stopped; `hard`, or a successful run, starts at step 0. Clears the
   * `max_failed_runs` stop.
   * @example await ens.requeueRuns(await ens.filterByStatus('failed'), { hard: true });
   */
  async requeueRuns(ids: Iterable<number>, options: { hard?: boolean } = {}): Promise<OpReport> {
    return requeueRuns(this.setupDir, [...ids], { hard: options.hard ?? false });
  }

  /**
   * Append runs (ids continue after the last one) and render their directories; safe while
   * packers run, which pick them up at their next scan. Returns the new ids.
   * @example await ens.addRuns([new Run({ x: 9 }, '-x 9')]);
   */
  async addRuns(runs: Iterable<Run | CompositeRun>): Promise<number[]> {
    return (await loadLifecycle()).add(this.setupDir, [...runs]);
  }

  /**
   * `[runId, directory]` pairs in id order; only directories that exist unless `nonexistent`.
   * @example for (const [id, dir] of await ens.runDirs()) console.log(id, dir);
   */
  async runDirs(options: { nonexistent?: boolean } = {}): Promise<[number, string][]> {
    const entries = readIndex(this.setupDir, this.ensemble.root);
    return entries.filter((e) => options.nonexistent || fs.existsSync(e.dir)).map((e) => [e.id, e.dir]);
  }

  /** The directory of run `id`, or a NOT_FOUND error naming the known range. */
  runDir(id: number): string {
    const entries = readIndex(this.setupDir, this.ensemble.root);
    const e = entries.find((x) => x.id === id);
    if (!e) {
      const range = entries.length ? `1-${entries[entries.length - 1]!.id}` : 'none: the ensemble is empty';
      throw new ThemisError('NOT_FOUND', `no run ${id} in ${this.setupDir} (run ids: ${range}); \`themis status\` lists them`);
    }
    return e.dir;
  }

  /**
   * Run a command once the ensemble completes (after `postEnsemble`); only the last call counts.
   * `args[0]` is found on PATH or by path; output goes to the packer's log unless redirected.
   * @example await ens.onCompletion(['mail', '-s', 'done', 'me@lab.org'], { stdout: 'mail.log' });
   */
  async onCompletion(args: readonly string[], options: OnCompletionOptions = {}): Promise<void> {
    const completion = (await loadLifecycle()).resolveCompletion(args, options, this.ensemble.root);
    // `add` and `gen --resume` rewrite ensemble.json too: read-modify-write under their lock.
    const release = acquireWriteLock(this.setupDir, 'completion');
    try {
      writeEnsemble(this.setupDir, { ...this.ensemble, onCompletion: completion });
    } finally {
      release();
    }
  }

  /**
   * Render the given runs (all queued runs when none given) and call `prepRun` for each, without
   * running anything. Serial, so safe on a login node. Returns the ids prepared.
   * @example await ens.dryRun([1, 2], { verbosity: 1 });
   */
  async dryRun(ids: Iterable<number> = [], options: lifecycle.DryRunOptions = {}): Promise<number[]> {
    let list = [...ids];
    if (list.length === 0) list = await this.filterByStatus('queued');
    return (await loadLifecycle()).dryRun(this, list, options);
  }

  /**
   * Run the ensemble on this machine with `themis-pack`; resolves when it ends if `blocking`,
   * else as soon as the packer started (its pid and log are in the answer).
   * @example const { pid, logFile } = await ens.executeLocal();
   */
  async executeLocal(options: lifecycle.ExecuteLocalOptions = {}): Promise<lifecycle.LocalExecution> {
    return (await loadLifecycle()).executeLocal(this, options);
  }

  /**
   * Render the batch script for an allocation and submit it; returns the scheduler's job id.
   * @example const jobId = await ens.executeAlloc({ nodes: 2, partition: 'pbatch', timeout: 60 });
   */
  async executeAlloc(options: lifecycle.ExecuteAllocOptions = {}): Promise<string> {
    return (await loadLifecycle()).executeAlloc(this, options);
  }

  /**
   * Call the interface's `postRun` for one run, in this process; returns its value (null when
   * there is no `postRun`) without storing it (see `setResult`).
   * @example const value = await ens.callPostRun(3);
   */
  async callPostRun(id: number): Promise<unknown> {
    return (await loadLifecycle()).callHook(this, 'postRun', id);
  }

  /**
   * The hooks the ensemble's interface module defines (empty without an interface).
   * @example if ((await ens.interfaceHooks()).includes('postRun')) …
   */
  async interfaceHooks(): Promise<HookName[]> {
    return (await loadLifecycle()).hookNames(this.setupDir);
  }

  /**
   * Call the interface's `prepEnsemble`, if it has one.
   * @example await ens.callPrepEnsemble();
   */
  async callPrepEnsemble(): Promise<void> {
    await (await loadLifecycle()).callHook(this, 'prepEnsemble', null);
  }

  /**
   * Call the interface's `postEnsemble`, if it has one.
   * @example await ens.callPostEnsemble();
   */
  async callPostEnsemble(): Promise<void> {
    await (await loadLifecycle()).callHook(this, 'postEnsemble', null);
  }

  /**
   * Store a run's result (JSON-serialisable); it shows in `writeCsv`.
   * @example await ens.setResult(3, { energy: -1.2 });
   */
  async setResult(id: number, result: unknown): Promise<void> {
    checkJsonResult(result, `run ${id}`);
    writeResult(this.runDir(id), result);
  }
}

/** The set of statuses asked for, or null for "all"; unknown names are a usage error. */
export function statusSet(statuses: readonly string[]): Set<RunStatus> | null {
  if (statuses.length === 0) return null;
  const bad = statuses.filter((s) => !isRunStatus(s));
  if (bad.length) {
    throw new ThemisError('USAGE', `unknown status ${bad.map((b) => JSON.stringify(b)).join(', ')}; use one of ${RUN_STATUSES.join(', ')}`);
  }
  return new Set(statuses as RunStatus[]);
}

export { Step, Run, CompositeRun };
