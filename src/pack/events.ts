import type { StepSpec } from '../model/step.js';
import type { Claim, ClaimOwner } from '../store/claim.js';
import type { RunRecord, StatusRecord } from '../store/records.js';
import type { Route } from './launch-policy.js';
import type { ExitRecord, StopReason } from './launcher-protocol.js';
import type { OrphanOutcome } from './orphan.js';
import type { Slot } from './pool.js';
import type { LoadedCandidate } from './queue.js';
import type { StopCause } from './state.js';

/**
 * What happens to a packer, as plain values: the event sources (`loop.ts`: timers, the launcher,
 * signals) and the answers of effects that read or write files (`effects.ts`) are all events.
 */
export type PackerEvent =
  /** Time to decide what starts: the queue's window of candidates, in start order. */
  | { type: 'decide'; candidates: LoadedCandidate[]; windowSize: number }
  /** Answer to `claim`: the claim is ours; `status` is the run's status read under it (or why not). */
  | {
      type: 'claimed';
      candidate: LoadedCandidate;
      record: RunRecord;
      slot: Slot;
      claim: Claim;
      broken: ClaimOwner | null;
      status: StatusRecord | null;
      statusError: string | null;
      dequeueRequested: boolean;
    }
  /** Answer to `claim`: someone else holds it (`contested`), or the run directory refused it. */
  | { type: 'claim-failed'; candidate: LoadedCandidate; slot: Slot; why: 'contested' | 'refused'; message: string }
  /** Answer to `settle-orphan`. */
  | { type: 'orphan-settled'; runId: number; outcome: OrphanOutcome; dequeueRequested: boolean }
  /** Answer to `run-hook`. */
  | { type: 'hook-done'; runId: number; hook: 'prepRun' | 'postRun'; ok: true; value: unknown }
  | { type: 'hook-done'; runId: number; hook: 'prepRun' | 'postRun'; ok: false; message: string; detail: string }
  /** Answer to `write-result`: postRun's value is in `result.json`, or the write failed (`message`). */
  | { type: 'result-written'; runId: number; ok: true }
  | { type: 'result-written'; runId: number; ok: false; message: string }
  /** Answer to `write-status`: written, the claim was no longer ours, or the file system refused. */
  | { type: 'status-written'; runId: number; ok: true }
  | { type: 'status-written'; runId: number; ok: false; why: 'claim-lost' | 'io'; message: string }
  /** The launcher forked the step (and journaled its start). */
  | { type: 'step-started'; key: string; pid: number }
  /** The launcher saw the step end (and journaled its exit). */
  | { type: 'step-exited'; key: string; exit: ExitRecord }
  /** A step has run for RUNNING_WRITE_DELAY_MS (asked by `write-running-later`): time to write its `running` status. */
  | { type: 'running-write-due'; key: string }
  /** The window opened by `wait-job-stop` is over without a stop of ours. */
  | { type: 'job-stop-window-closed'; key: string }
  /** Answer to `mark-failed`: runs failed in the whole ensemble now. */
  | { type: 'failures-counted'; failed: number }
  /** What one heartbeat found: claims lost, dequeue requests of held runs, the ensemble's stop flag. */
  | { type: 'heartbeat'; lost: { runId: number; why: string }[]; dequeues: number[]; stopFlag: string | null }
  /** A rescan may run now (its spacing is the event source's business); `recheck`: the one `rescan-later` asked for. */
  | { type: 'rescan-due'; recheck?: boolean }
  /** Answer to `rescan`. */
  | { type: 'scanned'; pending: number; suspects: number }
  /** Stop starting runs (walltime's early stop, stopEnsemble(), the stop flag). */
  | { type: 'stop-starting'; cause: StopCause }
  /** Stop everything and put the runs back (walltime's end, a packer error). */
  | { type: 'interrupt'; cause: StopCause }
  | { type: 'signal'; signal: string }
  /** The launcher process died on its own: every step it had is gone or orphaned. */
  | { type: 'launcher-lost'; why: string }
  /**
   * The launcher of another node died (killed, its job step ended, the node lost). `exits`: what
   * its journal says of the steps it had that ended; the others were stopped with it.
   */
  | { type: 'node-lost'; node: number; why: string; exits: { key: string; exit: ExitRecord }[] }
  /** A step could not be started for a reason of the infrastructure (its node's launcher did not start). */
  | { type: 'spawn-refused'; key: string; why: string; limitReached?: boolean };

/** What the transitions ask the world to do, as plain values; `effects.ts` carries them out. */
export type Effect =
  | { type: 'log'; line: string }
  /** Claim the run, read its status under the claim → `claimed` or `claim-failed`. */
  | { type: 'claim'; candidate: LoadedCandidate; slot: Slot }
  /** Write into a queued run's status why it cannot start here (under a one-off claim). */
  | { type: 'note-blocked'; dir: string; reason: string }
  /** → `orphan-settled`. */
  | { type: 'settle-orphan'; runId: number; dir: string; status: StatusRecord }
  /** → `hook-done`. */
  | { type: 'run-hook'; hook: 'prepRun' | 'postRun'; runId: number; record: RunRecord; dir: string }
  /** Write a held run's status, only while its claim is ours → `status-written`. */
  | { type: 'write-status'; runId: number; dir: string; claim: Claim; status: StatusRecord }
  /** → `result-written`. */
  | { type: 'write-result'; runId: number; dir: string; value: unknown }
  /** A line for the run's `run.log` (a hook's failure). */
  | { type: 'append-log'; dir: string; cwd: string; text: string }
  | { type: 'clear-dequeue'; runId: number; dir: string }
  | { type: 'release-claim'; claim: Claim }
  | { type: 'spawn'; key: string; runId: number; dir: string; slot: Slot; route: Route; stepIndex: number; attempt: number; step: StepSpec }
  /** Stop what is left of these process groups on a node whose launcher died (one job step). */
  | { type: 'clean-node'; node: number; pids: number[] }
  | { type: 'kill'; key: string; reason: StopReason }
  /** SIGKILL a step's process group (its launcher is gone, so nobody else will). */
  | { type: 'kill-group'; pid: number }
  /** Mark the run failed for the ensemble's count; with `count`, count them → `failures-counted`. */
  | { type: 'mark-failed'; runId: number; count: boolean }
  /** Set the ensemble's stop flag unless it is set. */
  | { type: 'set-stop-flag'; reason: string; kind: 'max-failed-runs' }
  /** → `running-write-due` after `ms`. */
  | { type: 'write-running-later'; key: string; ms: number }
  /** → `job-stop-window-closed` after `ms`. */
  | { type: 'wait-job-stop'; key: string; ms: number }
  /** Scan every run's status → `scanned`. */
  | { type: 'rescan' }
  /** → `rescan-due` (a recheck) after `ms`. */
  | { type: 'rescan-later'; ms: number }
  /** The window ran dry while runs are in hand: rescan if one is due soon (and the window is really empty). */
  | { type: 'look-for-work'; windowWasFull: boolean }
  /** A decision on the next turn of the event loop (many events, one decision). */
  | { type: 'decide-soon' }
  /** A decision before the effects that follow (start the next run while we write files). */
  | { type: 'decide-now' }
  /** Something a progress line shows changed. */
  | { type: 'changed' }
  /** Nothing more will happen: close the launcher, then resolve with `reason`. */
  | { type: 'finish'; reason: string; keepJournal: boolean };

export type EffectOf<T extends Effect['type']> = Extract<Effect, { type: T }>;
