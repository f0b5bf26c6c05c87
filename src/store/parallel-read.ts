import { Worker } from 'node:worker_threads';
import { onNetworkFs } from './fs-kind.js';
import { ENV } from './layout.js';
import { peekStatus, type StatusPeek } from './peek.js';
import type { IndexEntry } from './run-index.js';
import { readRunState, type RunState } from './scan.js';

export const MIN_RUNS_FOR_WORKERS = 2000;
export const DEFAULT_SCAN_WORKERS = 8;

/**
 * How many threads read `count` runs' files under `dir`: on a network file system (NFS, Lustre,
 * GPFS, …) each open is a round trip to a server, so large ensembles are read by 8 at once; on a
 * local one the reads are cheap and one thread is best. `THEMIS_SCAN_WORKERS` sets the number.
 */
export function scanWorkersFor(count: number, dir: string, env: NodeJS.ProcessEnv = process.env): number {
  const forced = Number(env[ENV.scanWorkers]);
  if (Number.isInteger(forced) && forced >= 1) return forced;
  return count >= MIN_RUNS_FOR_WORKERS && onNetworkFs(dir) ? DEFAULT_SCAN_WORKERS : 1;
}

/** Split `items` into `n` contiguous slices, run `fn` on each at once, concatenate in order. */
export async function inWorkers<T, R>(items: T[], n: number, fn: (slice: T[]) => Promise<R[]>): Promise<R[]> {
  const size = Math.ceil(items.length / n);
  const slices: T[][] = [];
  for (let i = 0; i < items.length; i += size) slices.push(items.slice(i, i + size));
  return (await Promise.all(slices.map(fn))).flat();
}

let threadsFailedSaid = false;

/** Say once per process that reads fall back to this thread: the answer is the same, only slower on a network file system. */
export function threadsFailed(e: unknown): void {
  if (threadsFailedSaid) return;
  threadsFailedSaid = true;
  process.stderr.write(`themis: reading status files in this thread: scan threads did not run (${e instanceof Error ? e.message : String(e)})\n`);
}

/** Run one job in a worker thread from `script` (rejects when the thread cannot run or dies). */
export function runWorker<R>(script: URL, job: { kind: string; items: unknown[] }): Promise<R[]> {
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
      worker = new Worker(script, { workerData: job });
    } catch (e) {
      reject(e);
      return;
    }
    worker.once('message', (out: R[]) => settle(() => resolve(out)));
    worker.once('error', (e) => settle(() => reject(e)));
    worker.once('exit', (code) => settle(() => reject(new Error(`scan worker exited with ${code} before answering`))));
  });
}

// From a module one directory below dist/: this one, or the bundled CLI's chunk in dist/bin/.
const SCAN_WORKER = new URL('../store/scan-worker.js', import.meta.url);

/** Read one slice of the index in a worker thread: each run's full state. */
export function scanSlice(entries: IndexEntry[]): Promise<RunState[]> {
  return runWorker<RunState>(SCAN_WORKER, { kind: 'status', items: entries });
}

/** Read one slice of the index in a worker thread: each run's status and step only (`peekStatus`). */
export function peekSlice(entries: IndexEntry[]): Promise<StatusPeek[]> {
  return runWorker<StatusPeek>(SCAN_WORKER, { kind: 'peek', items: entries });
}

/**
 * Every run's status and step, in index order, read by `workers` threads (the packer's scan on a
 * network file system). If threads cannot start the reads are done here: the answer is the same.
 */
export async function peekStatusesParallel(entries: IndexEntry[], workers: number): Promise<StatusPeek[]> {
  if (workers <= 1 || entries.length < 2 * workers) return entries.map(peekStatus);
  try {
    return await inWorkers(entries, workers, peekSlice);
  } catch (e) {
    threadsFailed(e);
    return entries.map(peekStatus);
  }
}

/** Every run's full state in index order, read by `workers` threads (as `peekStatusesParallel`). */
export async function readRunStatesParallel(entries: IndexEntry[], workers: number): Promise<RunState[]> {
  if (workers <= 1 || entries.length < 2 * workers) return entries.map(readRunState);
  try {
    return await inWorkers(entries, workers, scanSlice);
  } catch (e) {
    threadsFailed(e);
    return entries.map(readRunState);
  }
}
