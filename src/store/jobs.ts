import fs from 'node:fs';
import type { LsfFlavor, SchedulerName } from '../model/allocation.js';
import { ThemisError, describeFsError } from '../model/errors.js';
import type { JobState } from '../schedulers/adapter.js';
import { queryJobStates } from '../schedulers/commands.js';
import { checkFormat, readJsonSync, writeJsonAtomicSync } from './atomic.js';
import { FORMAT_VERSION, setupPaths } from './layout.js';
import { readEnsemble } from './records.js';

/** One submitted batch job (by `themis submit`, or by a packer resubmitting itself). */
export interface JobRecord {
  allocation: number;
  jobId: string;
  scheduler: SchedulerName;
  submittedAt: string;
  /** Absolute path of the script that was submitted. */
  script: string;
  /** Who submitted it: `submit` (the command) or `repeat` (a packer's --repeats). */
  by: 'submit' | 'repeat';
}

/** `jobs.json` in the setup directory: every job ever submitted, oldest first. */
export interface JobsFile {
  format: number;
  jobs: JobRecord[];
}

/** What `themis status` shows per allocation: its newest job and what the scheduler says of it. */
export interface AllocationState {
  allocation: number;
  jobId: string;
  scheduler: SchedulerName;
  submittedAt: string;
  /** `unknown` when the scheduler could not be asked (its command is missing or failed). */
  state: JobState | 'unknown';
}

export function readJobs(setupDir: string): JobRecord[] {
  const file = setupPaths(setupDir).jobsFile;
  const rec = readJsonSync<JobsFile>(file);
  if (rec === null) return [];
  checkFormat(file, rec, FORMAT_VERSION);
  return Array.isArray(rec.jobs) ? rec.jobs : [];
}

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/** Block this thread briefly without spinning the CPU. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Append job records under a mkdir lock (atomic on NFS): packers in several allocations may
 * resubmit at the same moment, and a read-modify-write without the lock would drop one of them.
 */
export function recordJobs(setupDir: string, jobs: readonly JobRecord[]): void {
  if (jobs.length === 0) return;
  const file = setupPaths(setupDir).jobsFile;
  const lock = `${file}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ThemisError('IO', `cannot lock ${file} (mkdir ${lock}): ${describeFsError(e)}`, { cause: e });
      }
      // A holder that died leaves its lock; nobody holds it for more than a few milliseconds.
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) {
        throw new ThemisError('IO', `${lock} has been held for ${Math.round(age / 1000)} s; if no themis is running, remove it and retry`);
      } else pause(20);
    }
  }
  try {
    const next: JobsFile = { format: FORMAT_VERSION, jobs: [...readJobs(setupDir), ...jobs] };
    writeJsonAtomicSync(file, next, { fsync: true });
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The newest job of each allocation, lowest allocation first. */
export function latestJobs(jobs: readonly JobRecord[]): JobRecord[] {
  const byAlloc = new Map<number, JobRecord>();
  for (const j of jobs) byAlloc.set(j.allocation, j);
  return [...byAlloc.values()].sort((a, b) => a.allocation - b.allocation);
}

/**
 * Ask the scheduler (squeue, bjobs, flux jobs, ps; never sacct, which many sites lack) about each
 * allocation's newest job. A job the scheduler no longer lists is `gone`.
 */
export async function allocationStates(setupDir: string, options: { env?: NodeJS.ProcessEnv } = {}): Promise<AllocationState[]> {
  const latest = latestJobs(readJobs(setupDir));
  // Classic LSF is asked the way it answers (`bjobs -a -w`); an unreadable ensemble asks as CSM did.
  let lsfFlavor: LsfFlavor | null = null;
  try {
    lsfFlavor = readEnsemble(setupDir).allocation.lsfFlavor ?? null;
  } catch {
    lsfFlavor = null;
  }
  const byScheduler = new Map<SchedulerName, JobRecord[]>();
  for (const j of latest) byScheduler.set(j.scheduler, [...(byScheduler.get(j.scheduler) ?? []), j]);
  const states = new Map<string, JobState | 'unknown'>();
  const key = (scheduler: SchedulerName, id: string) => `${scheduler}\0${id}`;
  for (const [scheduler, jobs] of byScheduler) {
    const found = await queryJobStates(
      scheduler,
      jobs.map((j) => j.jobId),
      { env: options.env, lsfFlavor },
    );
    for (const [id, st] of found) states.set(key(scheduler, id), st);
  }
  return latest.map((j) => ({
    allocation: j.allocation,
    jobId: j.jobId,
    scheduler: j.scheduler,
    submittedAt: j.submittedAt,
    state: states.get(key(j.scheduler, j.jobId)) ?? 'unknown',
  }));
}
