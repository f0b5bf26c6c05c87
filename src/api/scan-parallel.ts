import { readEnsemble } from '../store/records.js';
import { onNetworkFs } from '../store/fs-kind.js';
import { DEFAULT_SCAN_WORKERS, inWorkers, threadsFailed, MIN_RUNS_FOR_WORKERS, readRunStatesParallel, runWorker, scanSlice, scanWorkersFor } from '../store/parallel-read.js';
import { readIndex } from '../store/run-index.js';
import type { RunState, ScanResult } from '../store/scan.js';
import type { RunExport } from './export.js';
import { readRunExports } from './read-runs.js';

export { DEFAULT_SCAN_WORKERS, MIN_RUNS_FOR_WORKERS, onNetworkFs, scanSlice };

/**
 * Every run's status, as `scanRuns`, reading with `workers` threads in parallel. By default
 * threads are used only for large ensembles on network file systems. If threads cannot start,
 * the scan is done here, sequentially: the answer is the same either way.
 */
export async function scanRunsParallel(setupDir: string, opts: { ids?: Iterable<number>; workers?: number } = {}): Promise<ScanResult> {
  const ensemble = readEnsemble(setupDir);
  let entries = readIndex(setupDir, ensemble.root);
  if (opts.ids !== undefined) {
    const want = new Set(opts.ids);
    entries = entries.filter((e) => want.has(e.id));
  }
  return { ensemble, runs: await readRunStatesParallel(entries, opts.workers ?? scanWorkersFor(entries.length, ensemble.root)) };
}

/**
 * What the exporters need (run.json and result.json beside each status), read in threads on a
 * network file system, as `scanRunsParallel` decides.
 */
export async function readExportsParallel(root: string, states: RunState[], workers?: number): Promise<RunExport[]> {
  const n = workers ?? scanWorkersFor(states.length, root);
  if (n <= 1 || states.length < 2 * n) return readRunExports(states);
  try {
    return await inWorkers(states, n, (slice) => runWorker<RunExport>(EXPORT_WORKER, { kind: 'export', items: slice }));
  } catch (e) {
    threadsFailed(e);
    return readRunExports(states);
  }
}

// From a module one directory below dist/: this one, or the bundled CLI's chunk in dist/bin/.
const EXPORT_WORKER = new URL('../api/scan-worker.js', import.meta.url);
