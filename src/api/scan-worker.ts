import { parentPort, workerData } from 'node:worker_threads';
import type { RunState } from '../store/scan.js';
import { readRunExports } from './read-runs.js';

// One slice of a parallel read of what the exporters need (see scan-parallel.ts), done with synchronous reads.
const job = workerData as { kind: 'export'; items: RunState[] };
parentPort!.postMessage(readRunExports(job.items));
