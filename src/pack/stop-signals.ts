import os from 'node:os';

/** One row of the stop-signal table: a signal and who sends it to a job. */
export interface StopSignal {
  signal: NodeJS.Signals;
  /** Who sends it, in words (the README's signal table says the same). */
  sentBy: string;
}

/**
 * The signals that stop a packer, on every scheduler. Each means the same thing: start no more
 * runs, stop the running steps, put their runs back in the queue at the step they were on (no
 * restart used), release every claim, exit 128 + N. The README's signal table has these rows, in
 * this order and words (`test/pack/stop-signals.test.ts` checks).
 */
export const STOP_SIGNAL_TABLE: readonly StopSignal[] = [
  { signal: 'SIGTERM', sentBy: 'every scheduler on cancel (`scancel`, `bkill` 10 s after SIGINT, `flux cancel`); Slurm at the time limit; `kill`' },
  { signal: 'SIGINT', sentBy: "LSF's `bkill` (first, with SIGCONT); Ctrl-C" },
  { signal: 'SIGUSR1', sentBy: 'Slurm with `--signal=USR1@SECONDS` (a warning before the time limit)' },
  { signal: 'SIGUSR2', sentBy: 'LSF at the run limit (`-W`): the only signal before a kill ten minutes later' },
  { signal: 'SIGXCPU', sentBy: 'LSF at the CPU-time limit (before SIGINT, SIGTERM, SIGKILL)' },
  { signal: 'SIGHUP', sentBy: "Flux's batch-instance broker on `flux cancel` (right after SIGTERM) and `flux shutdown`" },
];

export const STOP_SIGNALS: readonly NodeJS.Signals[] = STOP_SIGNAL_TABLE.map((r) => r.signal);

/** The exit code of a packer stopped by `signal`: 128 + its number (143 for SIGTERM). */
export function signalExitCode(signal: string): number {
  return 128 + (os.constants.signals[signal as NodeJS.Signals] ?? 15);
}
