import type { JobState } from './adapter.js';

/** What schedulers print for job ids they no longer know (the job is long gone). */
export const FORGOTTEN_JOB = /invalid job id|not found|unknown job|no such|jobid .* unknown/i;

/**
 * Parse `<id> <state>` lines (what `squeue -o "%i %T"`, `bjobs -o "jobid stat"` and
 * `flux jobs -no "{id} {state}"` print) into pending/running/gone for each asked-for job. A job the
 * scheduler no longer lists, or lists in a final state, is gone.
 */
export function parseIdStateLines(stdout: string, jobIds: readonly string[], states: { pending: ReadonlySet<string>; running: ReadonlySet<string> }, idPattern: RegExp = /\S/): Map<string, JobState> {
  const seen = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [id, state] = line.trim().split(/\s+/);
    if (id && state && idPattern.test(id)) seen.set(id, state.toUpperCase());
  }
  const out = new Map<string, JobState>();
  for (const id of jobIds) {
    const st = seen.get(id);
    out.set(id, st === undefined ? 'gone' : states.pending.has(st) ? 'pending' : states.running.has(st) ? 'running' : 'gone');
  }
  return out;
}
