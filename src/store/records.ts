import fs from 'node:fs';
import path from 'node:path';
import type { AllocationSettings, SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import type { RunStatus } from '../model/status.js';
import type { Sample, StepSpec } from '../model/step.js';
import { checkFormat, readJsonSync, writeFileReplacingSync, writeJsonAtomicSync } from './atomic.js';
import { FORMAT_VERSION, runPaths, setupPaths } from './layout.js';
import { nextRev } from './summary.js';

export type { AllocationSettings, SchedulerName } from '../model/allocation.js';

export interface OnCompletion {
  args: string[];
  cwd: string;
  stdout: string | null;
  stderr: string | null;
}

/** `ensemble.json` in the setup directory. */
export interface EnsembleRecord {
  format: number;
  kind: 'themis-ensemble';
  createdAt: string;
  /** The ensemble root: the directory `gen` ran in; relative run directories hang off it. */
  root: string;
  setupDir: string;
  /** Absolute application for `Run`s, or null for composite-only ensembles. */
  application: string | null;
  appIsBatchScript: boolean;
  runDirNames: string;
  parse: string[];
  copy: string[];
  symlink: string[];
  /** -1 = unlimited. */
  maxRestarts: number;
  /** null = unlimited. */
  maxFailedRuns: number | null;
  abortOn: number[];
  interface: string | null;
  scheduler: SchedulerName;
  allocation: AllocationSettings;
  onCompletion: OnCompletion | null;
  /** Replace unknown %%tokens%% by nothing-at-all? No: keep them verbatim when true. */
  keepUnknownTokens: boolean;
  /** GPUs per node the biggest step of any run needs (kept by gen/add so scripts ask for enough). */
  gpusPerNodeNeeded?: number;
}

/** `.themis/run.json`: a run's definition, written once at `gen`/`add`. */
export interface RunRecord {
  format: number;
  id: number;
  sample: Sample;
  /** Sample keys in their input order (JSON objects keep order, but say it explicitly). */
  sampleKeys: string[];
  steps: StepSpec[];
}

export interface HistoryEntry {
  at: string;
  event: string;
  detail?: string;
}

/** `.themis/status.json`: written only by the holder of the run's claim. */
export interface StatusRecord {
  format: number;
  id: number;
  status: RunStatus;
  /** Index of the step to run next (or running, or that failed). */
  step: number;
  /** Attempts of the current step so far (names exit files and rotated logs). */
  attempt: number;
  /** Restarts used from the run's budget (reset by requeue). */
  restarts: number;
  exitCode: number | null;
  signal: string | null;
  /** Why the run is in this state, in words: "timeout after 30 s", "exit 137: killed, often out of memory". */
  reason: string | null;
  startedAt: string | null;
  endedAt: string | null;
  host: string | null;
  jobId: string | null;
  /**
   * Which launch a `running` status belongs to: the packer that started the step and the step's
   * key in that packer's journal (`<setup>/packers/<packer>.journal`), where its launcher records
   * the step's start and exit. Set in the `running` status written before the step is spawned,
   * null once the status leaves `running`. Absent in statuses of older themis versions.
   */
  launch?: LaunchRef | null;
  /** Newest last; trimmed to the last HISTORY_LIMIT entries. */
  history: HistoryEntry[];
  /**
   * The record's revision: one more at every write (`writeStatus`), so the summary of finished runs
   * can tell an entry about this version from one about an older one (src/store/summary.ts).
   * Absent (0) in statuses written by gen and by older themis versions.
   */
  rev?: number;
}

export interface LaunchRef {
  packer: string;
  /** Unique for the packer's whole life: `<runId>:<step>:<attempt>:<seq>`. */
  key: string;
  /**
   * The node whose launcher started the step and journals it (`packers/<packer>+<node>.journal`);
   * absent when the packer's own launcher did (`packers/<packer>.journal`).
   */
  node?: string;
}

/** Why the launcher stopped a step (null: it ended on its own). */
export type StopReason = 'timeout' | 'dequeue' | 'interrupt' | 'lost-claim';

/** A step's start, as its launcher journals it (`S <key> <json>`) right after forking it. */
export interface StepStartRecord {
  format: number;
  runId: number;
  step: number;
  attempt: number;
  host: string;
  /** The step's pid, which is also its process group. */
  pid: number;
  pgid: number;
  /** Start time of the pid in clock ticks since boot (`/proc/<pid>/stat` field 22), to detect reuse. */
  pidStart: string | null;
  startedAt: string;
  launcherPid: number;
  /** The launcher's pid namespace: `pid` means something only inside it (absent before themis recorded it). */
  pidNs?: string | null;
}

/** How a step attempt ended, as its launcher journals it (`E <key> <json>`), even after the packer died. */
export interface ExitRecord {
  format: number;
  runId: number;
  step: number;
  attempt: number;
  code: number | null;
  signal: string | null;
  stoppedBy: StopReason | null;
  startedAt: string;
  endedAt: string;
  host: string;
  pid: number;
}

export const HISTORY_LIMIT = 20;

export function newStatus(id: number): StatusRecord {
  return {
    format: FORMAT_VERSION,
    id,
    status: 'queued',
    step: 0,
    attempt: 0,
    restarts: 0,
    exitCode: null,
    signal: null,
    reason: null,
    startedAt: null,
    endedAt: null,
    host: null,
    jobId: null,
    history: [{ at: new Date().toISOString(), event: 'created' }],
  };
}

/** The status with one more history entry stamped `at` (default now), keeping only the newest entries. */
export function withHistory(status: StatusRecord, event: string, detail?: string, at: string = new Date().toISOString()): StatusRecord {
  return addHistory({ ...status }, event, detail, at);
}

/**
 * As withHistory, on a record the caller has just made (a spread of the old one): no second copy.
 * The packer makes one at every launch and exit of 100,000 runs held at once on a big allocation.
 */
export function addHistory(fresh: StatusRecord, event: string, detail?: string, at: string = new Date().toISOString()): StatusRecord {
  const entry: HistoryEntry = detail === undefined ? { at, event } : { at, event, detail };
  // One new array of the newest entries, not a copy and then a slice of the copy.
  const old = fresh.history;
  const keep = Math.min(old.length, HISTORY_LIMIT - 1);
  const history = new Array<HistoryEntry>(keep + 1);
  for (let i = 0; i < keep; i++) history[i] = old[old.length - keep + i]!;
  history[keep] = entry;
  fresh.history = history;
  return fresh;
}

export function readEnsemble(setupDir: string): EnsembleRecord {
  const file = setupPaths(setupDir).ensemble;
  const rec = readJsonSync<EnsembleRecord>(file);
  if (rec === null) {
    throw new ThemisError('NOT_FOUND', `no ensemble in ${path.resolve(setupDir)} (${file} is missing); create one with \`themis gen\`, or pass --setup-dir`);
  }
  checkFormat(file, rec, FORMAT_VERSION);
  return rec;
}

export function writeEnsemble(setupDir: string, rec: EnsembleRecord): void {
  writeJsonAtomicSync(setupPaths(setupDir).ensemble, rec, { fsync: true });
}

export function ensembleExists(setupDir: string): boolean {
  return fs.existsSync(setupPaths(setupDir).ensemble);
}

export function readRunRecord(runDir: string): RunRecord {
  const file = runPaths(runDir).run;
  const rec = readJsonSync<RunRecord>(file);
  if (rec === null) throw new ThemisError('NOT_FOUND', `run directory ${runDir} has no ${file}; run \`themis gen --resume\` to render it`);
  checkFormat(file, rec, FORMAT_VERSION);
  return rec;
}

/** The status record, or null when the file is missing. Corrupt files throw FORMAT. */
export function readStatus(runDir: string): StatusRecord | null {
  const file = runPaths(runDir).status;
  const rec = readJsonSync<StatusRecord>(file);
  if (rec !== null) checkFormat(file, rec, FORMAT_VERSION);
  return rec;
}

/**
 * Write a run's status (its holder only) at the next revision, which is set on `status` itself so
 * the caller's copy says what is on disk. The first write fills the spare gen left; later ones
 * create a temp file (see writeFileReplacingSync).
 */
export function writeStatus(runDir: string, status: StatusRecord): void {
  // Only a status gen wrote (no revision yet) has a spare beside it: later writes do not look for one.
  const fromGen = (status.rev ?? 0) === 0;
  status.rev = nextRev(status);
  writeFileReplacingSync(runPaths(runDir).status, JSON.stringify(status, null, 1) + '\n', fromGen);
}

/** `.themis/result.json`: {format, result}, written by postRun, `themis result`, or the API. */
export interface ResultRecord {
  format: number;
  result: unknown;
  at: string;
}

export function readResult(runDir: string): unknown {
  const rec = readJsonSync<ResultRecord>(runPaths(runDir).result);
  return rec === null ? null : rec.result;
}

export function writeResult(runDir: string, result: unknown): void {
  writeJsonAtomicSync(runPaths(runDir).result, { format: FORMAT_VERSION, result, at: new Date().toISOString() });
}
