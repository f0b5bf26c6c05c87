import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { getAdapter } from '../schedulers/index.js';
import { readJsonSync, writeJsonAtomicSync } from '../store/atomic.js';
import { recordJobs } from '../store/jobs.js';
import { setupPaths } from '../store/layout.js';
import type { SchedulerName } from '../store/records.js';

/** A batch script submitted again by `--repeats`. */
export interface Resubmission {
  jobId: string | null;
  at: string;
  repeat: number;
}

/** Resubmit the batch script when the allocation ended with work left (`--repeats`). */
export function resubmit(setupDir: string, allocation: number | null, script: string, repeats: number, scheduler: string, log: (l: string) => void): Resubmission | null {
  const file = path.join(setupPaths(setupDir).stateDir, `repeats-${allocation ?? 0}.json`);
  const rec = readJsonSync<{ used: number; submissions: { at: string; jobId: string | null }[] }>(file) ?? { used: 0, submissions: [] };
  if (rec.used >= repeats) {
    log(`queued runs remain but all ${repeats} repeats are used; not resubmitting`);
    return null;
  }
  const adapter = getAdapter(scheduler as 'slurm');
  const cmd = adapter.submitCommand(script);
  if (adapter.submitDetached) {
    // Local "submission" starts the script in the background; its pid is the job id.
    const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { cwd: path.dirname(script), detached: true, stdio: 'ignore' });
    child.unref();
    return record(String(child.pid ?? ''));
  }
  const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), {
    encoding: 'utf8',
    input: cmd.stdinFile ? fs.readFileSync(cmd.stdinFile) : undefined,
    cwd: path.dirname(script),
    timeout: 60_000,
  });
  if (r.status !== 0) {
    log(`resubmitting ${script} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
    return null;
  }
  return record(adapter.parseJobId(r.stdout ?? ''));

  function record(jobId: string | null): Resubmission {
    const at = new Date().toISOString();
    rec.used++;
    rec.submissions.push({ at, jobId });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeJsonAtomicSync(file, rec);
    // Also in jobs.json, so `themis status` shows the resubmitted allocation beside the others.
    if (jobId) recordJobs(setupDir, [{ allocation: allocation ?? 0, jobId, scheduler: scheduler as SchedulerName, submittedAt: at, script, by: 'repeat' }]);
    log(`resubmitted ${script} (repeat ${rec.used} of ${repeats})${jobId ? `: job ${jobId}` : ''}`);
    return { jobId, at, repeat: rec.used };
  }
}
