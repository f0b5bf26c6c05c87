import { parentPort, workerData } from 'node:worker_threads';
import type { IndexEntry } from '../store/run-index.js';
import { readRunState, type RunState } from '../store/scan.js';
import { readRunExports } from './read-runs.js';

// One slice of a parallel read (see scan-parallel.ts), done with synchronous reads.
const job = workerData as { kind: 'status'; items: IndexEntry[] } | { kind: 'export'; items: RunState[] };
parentPort!.postMessage(job.kind === 'status' ? job.items.map(readRunState) : readRunExports(job.items));
