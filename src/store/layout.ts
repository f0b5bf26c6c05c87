import path from 'node:path';

/**
 * Every on-disk and environment name themis uses, in one place. Users script against these
 * (the README's "On-disk layout" section mirrors this file): change them only with a format bump.
 */

export const FORMAT_VERSION = 1;
export const DEFAULT_SETUP_DIR = '.themis_setup';
export const DEFAULT_RUN_DIR_NAMES = 'runs/{run_id}';

/** Environment variables set for every step and read by the runtime commands. */
export const ENV = {
  runId: 'THEMIS_RUN_ID',
  runDir: 'THEMIS_RUN_DIR',
  setupDir: 'THEMIS_SETUP_DIR',
  step: 'THEMIS_STEP',
  /**
   * Batch-script steps only: the launcher (one line of words) that starts the step's tasks on the
   * nodes and cores the packer placed it on; `%%themis_launch%%` reads it (render/launch-token.ts).
   */
  launch: 'THEMIS_LAUNCH',
  /** The packer's clock override for tests: ISO time or epoch ms that "now" starts at. */
  clock: 'THEMIS_CLOCK_OFFSET_MS',
  /** `classic` or `csm`: the LSF flavour a packer reads its allocation as (the classic LSF script sets it). */
  lsfFlavor: 'THEMIS_LSF_FLAVOR',
  /** Threads that read run files in a scan (`themis status`, the packer's rescans); default 8 for 2,000+ runs on a network file system, else 1. */
  scanWorkers: 'THEMIS_SCAN_WORKERS',
} as const;

/** Paths inside the setup directory. */
export function setupPaths(setupDir: string) {
  const s = path.resolve(setupDir);
  return {
    root: s,
    ensemble: path.join(s, 'ensemble.json'),
    /** One file per `gen`/`add` batch: `index/000001.jsonl`, lines {"id":1,"dir":"runs/1"}. */
    indexDir: path.join(s, 'index'),
    indexFile: (batch: number) => path.join(s, 'index', `${String(batch).padStart(6, '0')}.jsonl`),
    /** Serialises `gen --resume`, `add`, `clear` against each other (a mkdir lock). */
    writeLock: path.join(s, 'write.lock'),
    batchDir: path.join(s, 'batch'),
    batchScript: (name: string, allocation: number) => path.join(s, 'batch', `${name}-${allocation}.sh`),
    /** Each allocation's planned run ids. */
    planFile: (allocation: number) => path.join(s, 'batch', `plan-${allocation}.json`),
    logsDir: path.join(s, 'logs'),
    packerLog: (id: string) => path.join(s, 'logs', `packer-${id}.log`),
    /** Live packers: one heartbeat file each, rewritten every heartbeat. */
    packersDir: path.join(s, 'packers'),
    packerFile: (id: string) => path.join(s, 'packers', `${id}.json`),
    /**
     * The packer's launch journal, appended by its launcher: `S <key> <start json>` when a step
     * starts, `E <key> <exit json>` when it ends (see src/store/journal.ts). Removed by a packer
     * that ends cleanly; kept for a successor otherwise.
     */
    packerJournal: (id: string) => path.join(s, 'packers', `${id}.journal`),
    /** Ensemble-wide flags shared by every packer. */
    stateDir: path.join(s, 'state'),
    stopFile: path.join(s, 'state', 'stop.json'),
    failedDir: path.join(s, 'state', 'failed'),
    failedMarker: (runId: number) => path.join(s, 'state', 'failed', String(runId)),
    /**
     * `themis dequeue` of a running run: one empty file per run (`state/dequeue/<id>`), so a packer
     * lists one directory per heartbeat instead of looking into every run it holds.
     */
    dequeueDir: path.join(s, 'state', 'dequeue'),
    dequeueMarker: (runId: number) => path.join(s, 'state', 'dequeue', String(runId)),
    /**
     * Range stamps of index batches (`state/index-stamps/NNNNNN.range`, src/store/run-index.ts):
     * beside, not in, `index/`, which holds the batches alone for any script that reads them.
     */
    indexStampsDir: path.join(s, 'state', 'index-stamps'),
    /** The summary of finished runs (src/store/summary.ts). */
    summaryDir: path.join(s, 'state', 'summary'),
    prepEnsembleLock: path.join(s, 'state', 'prep-ensemble.lock'),
    prepEnsembleDone: path.join(s, 'state', 'prep-ensemble.done'),
    postEnsembleMark: (generation: string) => path.join(s, 'state', `post-ensemble-${generation}.done`),
    generationFile: path.join(s, 'state', 'generation.json'),
    /** Probe whose mtime tells the file server's clock (heartbeats are compared with it). */
    clockProbe: path.join(s, 'state', 'clock-probe'),
    jobsFile: path.join(s, 'jobs.json'),
    /** Where `gen` stages a new ensemble before renaming it into place. */
    stagingPrefix: path.join(path.dirname(s), `.${path.basename(s)}.staging-`),
  };
}
export type SetupPaths = ReturnType<typeof setupPaths>;

/** Name of the directory inside each run directory that themis owns. */
export const RUN_META_DIR = '.themis';

/**
 * Paths inside one run directory. The packer asks for the same run's paths several times per
 * launch, so the last few thousand are kept (frozen: callers share them). Loops over every run
 * (scans) must not come through here: entries that age out of this cache have lived long enough
 * to be promoted, and 100,000 of them doubled a packer's peak RSS. They use `statusFileOf`.
 */
export function runPaths(runDir: string): RunPaths {
  let p = recentRunPaths.get(runDir);
  if (p === undefined) {
    if (recentRunPaths.size >= RECENT_RUN_PATHS) recentRunPaths.clear();
    p = Object.freeze(buildRunPaths(runDir));
    recentRunPaths.set(runDir, p);
  }
  return p;
}

const RECENT_RUN_PATHS = 4096;
const recentRunPaths = new Map<string, RunPaths>();

function buildRunPaths(runDir: string) {
  // One join normalizes; the rest are plain concatenations (path.join costs ~1 µs each here).
  const meta = path.join(runDir, RUN_META_DIR);
  return {
    dir: runDir,
    meta,
    run: `${meta}/run.json`,
    status: `${meta}/status.json`,
    result: `${meta}/result.json`,
    /** The claim: a hard link to its owner's file (see claim-files.ts). */
    claim: `${meta}/claim`,
    /** Where a claim made by an earlier themis (a `claim/` directory) kept its owner. */
    claimOwner: `${meta}/claim/owner.json`,
    /** A mutex taken while breaking a stale claim, so two breakers cannot both succeed. */
    claimBreak: `${meta}/claim-break`,
    /** Asks the packer holding the claim to stop the run (`themis dequeue`). */
    dequeueRequest: `${meta}/dequeue.request`,
  };
}
export type RunPaths = Readonly<ReturnType<typeof buildRunPaths>>;

/** A run's status file, without building (or caching) all of its paths: for scans. */
export function statusFileOf(runDir: string): string {
  return `${runDir}/${RUN_META_DIR}/status.json`;
}

export const RUN_LOG = 'run.log';
/** An empty file older versions of `gen` left in `.themis/` to become the first `run.log` (gen now leaves an empty run.log itself). */
export const LOG_SPARE = 'log.spare';
/** The inode the next status.json version is written into (`sparePathFor` in atomic.ts). */
export const STATUS_SPARE = '.status.json.spare';
