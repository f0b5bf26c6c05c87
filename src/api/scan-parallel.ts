import { Worker } from 'node:worker_threads';
import { readEnsemble } from '../store/records.js';
import { onNetworkFs } from '../store/fs-kind.js';
import { readIndex, type IndexEntry } from '../store/run-index.js';
import { readRunState, type RunState, type ScanResult } from '../store/scan.js';
import type { RunExport } from './export.js';
import { readRunExports } from './read-runs.js';

export { onNetworkFs };

export const MIN_RUNS_FOR_WORKERS = 2000;
export const DEFAULT_SCAN_WORKERS = 8;

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
  const n = opts.workers ?? (entries.length >= MIN_RUNS_FOR_WORKERS && onNetworkFs(ensemble.root) ? DEFAULT_SCAN_WORKERS : 1);
  if (n <= 1 || entries.length < 2 * n) return { ensemble, runs: entries.map(readRunState) };
  try {
    return { ensemble, runs: await inWorkers(entries, n, scanSlice) };
  } catch {
    return { ensemble, runs: entries.map(readRunState) };
  }
}

/**
 * What the exporters need (run.json and result.json beside each status), read in threads on a
 * network file system, as `scanRunsParallel` decides.
 */
export async function readExportsParallel(root: string, states: RunState[], workers?: number): Promise<RunExport[]> {
  const n = workers ?? (states.length >= MIN_RUNS_FOR_WORKERS && onNetworkFs(root) ? DEFAULT_SCAN_WORKERS : 1);
  if (n <= 1 || states.length < 2 * n) return readRunExports(states);
  try {
    return await inWorkers(states, n, (slice) => runWorker<RunExport>({ kind: 'export', items: slice }));
  } catch {
    return readRunExports(states);
  }
}

/** Split `items` into `n` contiguous slices, run `fn` on each at once, concatenate in order. */
async function inWorkers<T, R>(items: T[], n: number, fn: (slice: T[]) => Promise<R[]>): Promise<R[]> {
  const size = Math.ceil(items.length / n);
  const slices: T[][] = [];
  for (let i = 0; i < items.length; i += size) slices.push(items.slice(i, i + size));
  return (await Promise.all(slices.map(fn))).flat();
}

/** Read one slice of the index in a worker thread (rejects when the thread cannot run). */
export function scanSlice(entries: IndexEntry[]): Promise<RunState[]> {
  return runWorker<RunState>({ kind: 'status', items: entries });
}

function runWorker<R>(job: { kind: 'status' | 'export'; items: unknown[] }): Promise<R[]> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (!settled) {
        settled = true;
        f();
      }
    };
    let worker: Worker;
    try {
      worker = new Worker(new URL('./scan-worker.js', import.meta.url), { workerData: job });
    } catch (e) {
      reject(e);
      return;
    }
    worker.once('message', (out: R[]) => settle(() => resolve(out)));
    worker.once('error', (e) => settle(() => reject(e)));
    worker.once('exit', (code) => settle(() => reject(new Error(`scan worker exited with ${code} before answering`))));
  });
}
