import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import type { SchedulerName } from '../model/allocation.js';
import { submitScriptSync } from '../schedulers/commands.js';
import { readJsonSync, writeJsonAtomicSync } from '../store/atomic.js';
import { recordJobs } from '../store/jobs.js';
import { setupPaths } from '../store/layout.js';

/** A batch script submitted again by `--repeats`. */
export interface Resubmission {
  jobId: string | null;
  at: string;
  repeat: number;
}

/** Resubmit the batch script when the allocation ended with work left (`--repeats`). */
export function resubmit(setupDir: string, allocation: number | null, script: string, repeats: number, scheduler: SchedulerName, log: (l: string) => void): Resubmission | null {
  const file = path.join(setupPaths(setupDir).stateDir, `repeats-${allocation ?? 0}.json`);
  const rec = readJsonSync<{ used: number; submissions: { at: string; jobId: string | null }[] }>(file) ?? { used: 0, submissions: [] };
  if (rec.used >= repeats) {
    log(`queued runs remain but all ${repeats} repeats are used; not resubmitting`);
    return null;
  }
  let jobId: string | null;
  try {
    // Local: the script starts in the background (its pid is the job id), with no output kept.
    jobId = submitScriptSync(scheduler, script, {
      cwd: path.dirname(script),
      what: 'the resubmission',
      fix: 'the runs left stay queued: fix what it names, then submit again (`themis submit`)',
    }).jobId;
  } catch (e) {
    if (!(e instanceof ThemisError)) throw e;
    log(`resubmitting ${script} failed: ${e.message}`);
    return null;
  }
  const at = new Date().toISOString();
  rec.used++;
  rec.submissions.push({ at, jobId });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeJsonAtomicSync(file, rec);
  // Also in jobs.json, so `themis status` shows the resubmitted allocation beside the others.
  if (jobId) recordJobs(setupDir, [{ allocation: allocation ?? 0, jobId, scheduler, submittedAt: at, script, by: 'repeat' }]);
  log(`resubmitted ${script} (repeat ${rec.used} of ${repeats})${jobId ? `: job ${jobId}` : ''}`);
  return { jobId, at, repeat: rec.used };
}
