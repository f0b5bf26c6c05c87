import { createRequire } from 'node:module';
import { ThemisError } from './errors.js';
import type { StepLaunch } from './resources.js';

/** shell-quote loads on the first split: commands that only read an ensemble's state never need it. */
let shellQuote: typeof import('shell-quote') | null = null;
const sq = (): typeof import('shell-quote') => (shellQuote ??= createRequire(import.meta.url)('shell-quote') as typeof import('shell-quote'));

/** Sample values: strings from CSV; any JSON value from JSON samples and the API. */
export type SampleValue = unknown;
export type Sample = Record<string, SampleValue>;

/**
 * One execution of one program: the seed's `Step`, as stored in `.themis/run.json`. Its resources
 * (tasks, cores and GPUs per task, timeout) and what they mean are defined in `resources.ts`.
 */
export interface StepSpec extends StepLaunch {
  /** Program and arguments; args[0] is an absolute path once the ensemble holds it. */
  args: string[];
  /** args[0] is a script to parse for tokens and copy into the run directory before running. */
  batchScript: boolean;
  /** Working directory: relative to the run directory, or absolute. */
  cwd: string;
}

/** Options of `new Step(args, options)`: any step field but the program; absent = STEP_DEFAULTS. */
export type StepOptions = Partial<Omit<StepSpec, 'args'>>;

export const STEP_DEFAULTS: Omit<StepSpec, 'args'> = {
  tasks: 1,
  coresPerTask: 1,
  gpusPerTask: 0,
  timeout: 0,
  batchScript: true,
  cwd: '.',
};

/**
 * Split a command line the way a POSIX shell does, without expanding anything.
 * Operators (`|`, `;`, `>`) and globs are refused: a step is one program and its arguments.
 */
export function splitArgs(command: string, where = 'args'): string[] {
  const parsed = sq().parse(command, (name) => `$${name}`);
  const out: string[] = [];
  for (const token of parsed) {
    if (typeof token === 'string') {
      out.push(token);
    } else if ('op' in token && token.op === 'glob') {
      out.push((token as { pattern: string }).pattern);
    } else if ('comment' in token) {
      break;
    } else {
      throw new ThemisError(
        'INPUT',
        `${where}: shell operator ${JSON.stringify((token as { op: string }).op)} in ${JSON.stringify(command)}; ` +
          'a step runs one program with its arguments: wrap pipelines in a script, or quote the character',
      );
    }
  }
  return out;
}

/** Normalise string-or-array args; a string is split like a shell does. */
export function toArgs(args: string | readonly string[] | undefined, where = 'args'): string[] {
  if (args === undefined) return [];
  if (typeof args === 'string') return splitArgs(args, where);
  return args.map((a) => String(a));
}

/** Check every field of a step; returns problems as "field: what is wrong" strings (empty = valid). */
export function stepProblems(step: StepSpec, prefix: string): string[] {
  const problems: string[] = [];
  const intField = (name: keyof StepSpec, min: number) => {
    const v = step[name] as unknown;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`${prefix}${fieldName(name)}: must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
  };
  if (!Array.isArray(step.args) || step.args.length === 0 || step.args[0] === '') {
    problems.push(`${prefix}args: a step needs a program to run (args is empty)`);
  }
  intField('tasks', 1);
  intField('coresPerTask', 0);
  intField('gpusPerTask', 0);
  if (typeof step.timeout !== 'number' || !Number.isFinite(step.timeout) || step.timeout < 0) {
    problems.push(`${prefix}timeout: must be a number of minutes >= 0 (0.5 = 30 s), got ${JSON.stringify(step.timeout)}`);
  }
  if (typeof step.batchScript !== 'boolean') {
    problems.push(`${prefix}batch_script: must be true or false, got ${JSON.stringify(step.batchScript)}`);
  }
  if (typeof step.cwd !== 'string' || step.cwd === '') {
    problems.push(`${prefix}cwd: must be a directory relative to the run directory, or absolute`);
  } else if (step.cwd.includes('\0')) {
    problems.push(`${prefix}cwd: contains a NUL byte`);
  }
  return problems;
}

/** The seed's snake_case name for a field, as users see it in CSV columns and messages. */
export function fieldName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
