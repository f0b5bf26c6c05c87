import { parentPort, workerData } from 'node:worker_threads';
import type { IndexEntry } from '../store/run-index.js';
import { readRunState } from '../store/scan.js';

// One slice of a parallel scan (see scan-parallel.ts): read each run's status synchronously.
parentPort!.postMessage((workerData as IndexEntry[]).map(readRunState));
