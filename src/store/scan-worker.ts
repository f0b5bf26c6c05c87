import { parentPort, workerData } from 'node:worker_threads';
import { peekStatus } from './peek.js';
import type { IndexEntry } from './run-index.js';
import { readRunState } from './scan.js';

// One slice of a parallel read (see parallel-read.ts), done with synchronous reads.
const job = workerData as { kind: 'status' | 'peek'; items: IndexEntry[] };
parentPort!.postMessage(job.kind === 'peek' ? job.items.map(peekStatus) : job.items.map(readRunState));
