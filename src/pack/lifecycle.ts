import os from 'node:os';
import { addHistory, type StatusRecord } from '../store/records.js';
import { STOP_SIGNALS, signalExitCode } from './stop-signals.js';

/** How a step ended, as the launcher recorded it. */
export interface StepExit {
  code: number | null;
  signal: string | null;
  /** Why themis stopped it, if it did: over its timeout, dequeued, packer interrupted, or the claim was lost. */
  stoppedBy: 'timeout' | 'dequeue' | 'interrupt' | 'lost-claim' | null;
  startedAt: string;
  endedAt: string;
}

export interface LifecyclePolicy {
  /** -1 = unlimited. */
  maxRestarts: number;
  abortOn: readonly number[];
  stepCount: number;
  /** Minutes of the step's timeout (for the reason text). */
  timeoutMinutes: number;
}

/**
 * Signals a scheduler sends a whole job when it cancels it or its time is up: the packer's stop
 * signals (`stop-signals.ts`) and the SIGKILL that follows them.
 */
const EXTERNAL_STOP_SIGNALS: ReadonlySet<string> = new Set<string>([...STOP_SIGNALS, 'SIGKILL']);
/** Exit codes a shell gives when its foreground child died of one of them (a script running `sleep`): 128 + N. */
const EXTERNAL_STOP_CODES: ReadonlySet<number> = new Set([...EXTERNAL_STOP_SIGNALS].map(signalExitCode));

/** Might this exit be the scheduler stopping the whole job (then it is an interruption, not a failure)? */
export function mayBeJobWideStop(exit: Pick<StepExit, 'code' | 'signal'>): boolean {
  return EXTERNAL_STOP_SIGNALS.has(exit.signal ?? '') || (exit.code !== null && EXTERNAL_STOP_CODES.has(exit.code));
}

/** How long a step killed by such a signal waits for the packer's own stop before it counts as a failure. */
export const EXTERNAL_STOP_SETTLE_MS = 2000;

/**
 * How long a step runs before its `running` status is written. Most steps of a big ensemble of
 * short runs end sooner, and then their final status is the only write (two metadata operations
 * fewer per run on the file server); `themis status` shows such a run as queued until then.
 */
export const RUNNING_WRITE_DELAY_MS = 1000;

/** What the packer does next with the run. */
export type Next = 'next-step' | 'restart' | 'done' | 'requeue';

const SIGNAL_MEANING: Record<string, string> = {
  SIGKILL: 'killed (often out of memory, or by the scheduler)',
  SIGTERM: 'terminated',
  SIGSEGV: 'segmentation fault',
  SIGABRT: 'aborted (assertion or abort())',
  SIGBUS: 'bus error',
  SIGFPE: 'floating-point exception',
  SIGILL: 'illegal instruction',
  SIGINT: 'interrupted',
  SIGHUP: 'hung up',
  SIGUSR1: 'user signal 1 (Slurm --signal sends it before the time limit)',
  SIGUSR2: 'user signal 2 (LSF sends it at the run limit)',
  SIGPIPE: 'broken pipe',
  SIGXCPU: 'CPU time limit exceeded',
};

function signalName(n: number): string | null {
  for (const [name, num] of Object.entries(os.constants.signals)) if (num === n) return name;
  return null;
}

/** A step's exit in words: "exit 137: killed (SIGKILL), often out of memory". */
export function explainExit(code: number | null, signal: string | null): string {
  if (signal) return `signal ${signal}: ${SIGNAL_MEANING[signal] ?? 'killed by a signal'}`;
  if (code === null) return 'ended without an exit status';
  if (code === 0) return 'exit 0';
  if (code === 137) return 'exit 137: killed (SIGKILL), often out of memory';
  if (code === 124) return 'exit 124: timed out (timeout(1))';
  if (code === 126) return 'exit 126: not executable (permission denied or not a program)';
  if (code === 127) return 'exit 127: command not found';
  if (code > 128 && code < 160) {
    const name = signalName(code - 128);
    if (name) return `exit ${code}: ${SIGNAL_MEANING[name] ?? 'killed by a signal'} (${name})`;
  }
  return `exit ${code}`;
}

function formatMinutes(min: number): string {
  const s = Math.round(min * 60);
  return s < 120 ? `${s} s` : `${Math.round(s / 6) / 10} min`;
}

/**
 * The status with the step's exit and the outcome's `changes`, in one copy: on a big allocation the
 * status is cold by the time its step ends, and every copy is garbage to collect.
 */
function endedStatus(status: StatusRecord, exit: StepExit, changes: Partial<StatusRecord>): StatusRecord {
  return { ...status, exitCode: exit.code, signal: exit.signal, endedAt: exit.endedAt, ...changes };
}

/**
 * The status after a step ends, and what to do next. Pure. The order of the rules matters:
 * an exit 0 wins over an interrupt or a dequeue that came too late;
 * themis's own stops (interrupt, dequeue, lost claim) come first because the exit code then says
 * nothing about the application; a timeout counts as a failure; a code in `abort_on` aborts at once;
 * any other non-zero exit restarts the same step while the run's budget lasts.
 */
export function afterStepExit(status: StatusRecord, exit: StepExit, policy: LifecyclePolicy, at: string = new Date().toISOString()): { status: StatusRecord; next: Next } {
  // A step that exited 0 on its own while being stopped had finished its work: running it again
  // would run it twice to completion (the seed: "if the run finishes first, its real status wins").
  if ((exit.stoppedBy === 'interrupt' || exit.stoppedBy === 'dequeue') && exit.code === 0 && exit.signal === null) {
    exit = { ...exit, stoppedBy: null };
  }
  const what = explainExit(exit.code, exit.signal);
  const step = `step ${status.step}`;
  if (exit.stoppedBy === 'interrupt' || exit.stoppedBy === 'lost-claim') {
    // Not the run's fault: back to the queue at the same step, no restart used.
    const reason = exit.stoppedBy === 'interrupt' ? 'interrupted by the packer (allocation ending or signalled)' : 'claim lost';
    return {
      status: addHistory(endedStatus(status, exit, { status: 'queued', attempt: status.attempt + 1, reason }), 'requeued', `${step}: ${reason}`, at),
      next: 'requeue',
    };
  }
  if (exit.stoppedBy === 'dequeue') {
    return { status: addHistory(endedStatus(status, exit, { status: 'killed', reason: 'dequeued while running' }), 'killed', `${step}: dequeued`, at), next: 'done' };
  }
  if (exit.stoppedBy !== 'timeout' && exit.code === 0) {
    if (status.step + 1 >= policy.stepCount) {
      return { status: addHistory(endedStatus(status, exit, { status: 'successful', step: policy.stepCount, reason: null }), 'successful', undefined, at), next: 'done' };
    }
    return {
      status: addHistory(endedStatus(status, exit, { step: status.step + 1, attempt: 0, reason: null }), 'step done', `${step} exit 0`, at),
      next: 'next-step',
    };
  }
  const reason = exit.stoppedBy === 'timeout' ? `timeout: ${step} ran over its ${formatMinutes(policy.timeoutMinutes)} limit (${what})` : `${step}: ${what}`;
  if (exit.stoppedBy !== 'timeout' && exit.code !== null && policy.abortOn.includes(exit.code)) {
    return { status: addHistory(endedStatus(status, exit, { status: 'aborted', reason: `${reason} (in abort_on)` }), 'aborted', reason, at), next: 'done' };
  }
  if (policy.maxRestarts === -1 || status.restarts < policy.maxRestarts) {
    return {
      status: addHistory(endedStatus(status, exit, { restarts: status.restarts + 1, attempt: status.attempt + 1, reason }), 'restart', reason, at),
      next: 'restart',
    };
  }
  const budget = policy.maxRestarts === 0 ? 'no restarts allowed' : `all ${policy.maxRestarts} restarts used`;
  return { status: addHistory(endedStatus(status, exit, { status: 'failed', reason: `${reason}; ${budget}` }), 'failed', reason, at), next: 'done' };
}

/** A hook (prepRun/postRun) that threw: the step fails like a non-zero exit. */
export function hookFailure(status: StatusRecord, hook: string, message: string, policy: LifecyclePolicy, at: string): { status: StatusRecord; next: Next } {
  const r = afterStepExit(status, { code: 1, signal: null, stoppedBy: null, startedAt: at, endedAt: at }, policy, at);
  const reason = `${hook} failed: ${message}`;
  const s = r.status.status === 'failed' ? `${reason}; no restarts left` : reason;
  return { status: { ...r.status, exitCode: null, reason: s }, next: r.next };
}
