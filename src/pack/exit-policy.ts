import type { StopCause } from './state.js';
import { signalExitCode } from './stop-signals.js';

/** Exit codes of `themis-pack` (documented in the README). */
export const PACK_EXIT = { ok: 0, error: 1, usage: 2, blocked: 3, stopped: 4 } as const;

/** How a packer's work ended, as its core left it. */
export interface PackerEnd {
  interrupted: StopCause | null;
  stopStarting: StopCause | null;
  error: string | null;
  /** The first signal received. */
  signal: string | null;
  /** Runs queued or running anywhere at the packer's last scan. */
  pending: number;
  /** Runs it found it could never fit. */
  blocked: number;
}

/**
 * What the end means, pure: was the ensemble completed here (post-ensemble hooks then run), and did
 * the allocation's time run out with work left (then `--repeats` resubmits the batch script)?
 */
export function endOfWork(e: PackerEnd): { ensembleComplete: boolean; timeUp: boolean } {
  const cause = e.interrupted ?? e.stopStarting;
  return {
    ensembleComplete: cause === null && e.pending === 0,
    timeUp: cause?.kind === 'walltime' || e.signal !== null,
  };
}

/**
 * The exit code, pure. `stopFlagSet`: the ensemble's stop flag is set now (max_failed_runs or
 * stopEnsemble(), by any packer). The order matters: an error wins, then a signal (128 + N), then a
 * stopped ensemble with work left, then runs that can never fit.
 */
export function exitCodeOf(e: PackerEnd, stopFlagSet: boolean): number {
  if (e.error !== null) return PACK_EXIT.error;
  if (e.signal !== null) return signalExitCode(e.signal);
  if (e.pending > 0 && stopFlagSet) return PACK_EXIT.stopped;
  if (e.blocked > 0) return PACK_EXIT.blocked;
  return PACK_EXIT.ok;
}
