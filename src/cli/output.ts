import { ThemisError } from '../model/errors.js';

/** The only place that writes to the terminal. Commands print through these so tests can capture. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** True when stderr is a terminal: progress bars and live lines only then. */
  readonly interactive: boolean;
}

export const processOutput: Output = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : text + '\n'),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : text + '\n'),
  get interactive() {
    return Boolean(process.stderr.isTTY) && process.env.CI !== 'true';
  },
};

/** A one-line progress bar redrawn in place on a terminal; silent otherwise. */
export function progressLine(output: Output, label: string, total: number): { tick(done: number): void; done(): void } {
  if (!output.interactive || total < 200) return { tick: () => {}, done: () => {} };
  let last = 0;
  const draw = (n: number) => {
    const width = 30;
    const filled = Math.round((n / total) * width);
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${n}/${total}`);
  };
  return {
    tick(n) {
      const now = Date.now();
      if (now - last < 100 && n < total) return;
      last = now;
      draw(n);
    },
    done() {
      draw(total);
      process.stderr.write('\n');
    },
  };
}

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** An unexpected error: a bug in themis. */
  bug: 70,
} as const;

/** Print an error the way every command does; returns the exit code (a bug's is EXIT.bug). */
export function reportError(e: unknown, output: Output, stack: boolean): number {
  if (e instanceof ThemisError) {
    output.err(`themis: ${e.message}`);
    if (stack && e.cause) output.err(String((e.cause as Error).stack ?? e.cause));
    return e.exitCode;
  }
  output.err(`themis: unexpected error (this is a bug in themis; please report it with the text below)`);
  output.err(String((e as Error)?.stack ?? e));
  return EXIT.bug;
}
