import { ThemisError, throwIfProblems } from './errors.js';
import type { StepLaunch } from './resources.js';
import { STEP_DEFAULTS, fieldName, stepProblems, toArgs, type Sample, type StepOptions, type StepSpec } from './step.js';

/** Resource options of a `Run` (the seed's keyword arguments, camelCased); see `resources.ts`. */
export type RunOptions = Partial<StepLaunch>;

export type { StepOptions };

/**
 * One execution of one program (the seed's `Step`).
 * @example new Step('/usr/bin/env python3 sim.py', { tasks: 4, coresPerTask: 2 })
 */
export class Step {
  readonly args: string[];
  readonly tasks: number;
  readonly coresPerTask: number;
  readonly gpusPerTask: number;
  readonly timeout: number;
  readonly batchScript: boolean;
  readonly cwd: string;

  constructor(args: string | readonly string[], options: StepOptions = {}) {
    this.args = toArgs(args, 'Step args');
    this.tasks = options.tasks ?? STEP_DEFAULTS.tasks;
    this.coresPerTask = options.coresPerTask ?? STEP_DEFAULTS.coresPerTask;
    this.gpusPerTask = options.gpusPerTask ?? STEP_DEFAULTS.gpusPerTask;
    this.timeout = options.timeout ?? STEP_DEFAULTS.timeout;
    this.batchScript = options.batchScript ?? STEP_DEFAULTS.batchScript;
    this.cwd = options.cwd ?? STEP_DEFAULTS.cwd;
  }

  /** The plain record stored in `.themis/run.json`. */
  toSpec(): StepSpec {
    return {
      args: [...this.args],
      tasks: this.tasks,
      coresPerTask: this.coresPerTask,
      gpusPerTask: this.gpusPerTask,
      timeout: this.timeout,
      batchScript: this.batchScript,
      cwd: this.cwd,
    };
  }

  static fromSpec(spec: StepSpec): Step {
    return new Step(spec.args, spec);
  }
}

/**
 * The single-step shorthand: the program is the ensemble-wide application, `args` its arguments.
 * @example new Run({ visc: '0.1' }, '-i deck.in', { tasks: 2 })
 */
export class Run {
  readonly sample: Sample;
  readonly args: string[];
  readonly tasks: number;
  readonly coresPerTask: number;
  readonly gpusPerTask: number;
  readonly timeout: number;

  constructor(sample: Sample | null = null, args: string | readonly string[] | null = null, options: RunOptions = {}) {
    this.sample = sample ?? {};
    this.args = toArgs(args ?? undefined, 'Run args');
    this.tasks = options.tasks ?? STEP_DEFAULTS.tasks;
    this.coresPerTask = options.coresPerTask ?? STEP_DEFAULTS.coresPerTask;
    this.gpusPerTask = options.gpusPerTask ?? STEP_DEFAULTS.gpusPerTask;
    this.timeout = options.timeout ?? STEP_DEFAULTS.timeout;
  }

  /** Its one step, given the ensemble's application and whether that is a batch script. */
  toSteps(application: string, appIsBatchScript: boolean): StepSpec[] {
    return [
      {
        args: [application, ...this.args],
        tasks: this.tasks,
        coresPerTask: this.coresPerTask,
        gpusPerTask: this.gpusPerTask,
        timeout: this.timeout,
        batchScript: appIsBatchScript,
        cwd: '.',
      },
    ];
  }
}

/**
 * The general run: a sample plus a non-empty sequence of steps run in order.
 * @example new CompositeRun({ seed: 7 }, [new Step('prep.sh'), new Step('sim -n 4', { tasks: 4 })])
 */
export class CompositeRun {
  readonly sample: Sample;
  readonly steps: Step[];

  constructor(sample: Sample | null, steps: readonly (Step | StepSpec)[]) {
    if (!Array.isArray(steps)) {
      throw new ThemisError('VALIDATION', `CompositeRun steps: must be an array of Step objects, got ${typeof steps}`);
    }
    this.sample = sample ?? {};
    this.steps = steps.map((s) => (s instanceof Step ? s : Step.fromSpec(s)));
  }

  toSteps(): StepSpec[] {
    return this.steps.map((s) => s.toSpec());
  }
}

export type AnyRun = Run | CompositeRun;

/** Problems of one run's sample and steps, each prefixed with the run id and field. */
export function runProblems(id: number, sample: unknown, steps: readonly StepSpec[]): string[] {
  const problems: string[] = [];
  if (sample === null || typeof sample !== 'object' || Array.isArray(sample)) {
    problems.push(`run ${id}: sample: must be an object of name -> value, got ${Array.isArray(sample) ? 'an array' : typeof sample}`);
  }
  if (steps.length === 0) problems.push(`run ${id}: steps: a run needs at least one step`);
  steps.forEach((step, i) => {
    const prefix = steps.length === 1 ? `run ${id}: ` : `run ${id} step ${i + 1}: `;
    problems.push(...stepProblems(step, prefix));
  });
  return problems;
}

/**
 * Validate many runs at once and throw one error listing every problem (run id and field each).
 * `steps(i)` gives the steps of the i-th run (ids start at `firstId`).
 */
export function validateRuns(runs: readonly { sample: unknown }[], firstId: number, stepsOf: (run: { sample: unknown }, index: number) => StepSpec[]): void {
  const problems: string[] = [];
  runs.forEach((run, i) => {
    problems.push(...runProblems(firstId + i, run.sample, stepsOf(run, i)));
  });
  throwIfProblems('VALIDATION', `${problems.length} problem${problems.length === 1 ? '' : 's'} in the runs`, problems);
}

/** Parse a resource value from text (CSV cells, CLI): an integer >= min, or a problem string. */
export function parseIntField(raw: string, field: string, min: number): number | string {
  const t = raw.trim();
  if (!/^[+]?\d+$/.test(t)) return `${fieldName(field)}: must be an integer >= ${min}, got ${JSON.stringify(raw)}`;
  const n = Number.parseInt(t, 10);
  if (n < min) return `${fieldName(field)}: must be an integer >= ${min}, got ${JSON.stringify(raw)}`;
  return n;
}

/** Minutes, fractions allowed ("0.5" = 30 s). */
export function parseMinutes(raw: string, field = 'timeout'): number | string {
  const t = raw.trim();
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)$/.test(t)) return `${field}: must be a number of minutes >= 0 (0.5 = 30 s), got ${JSON.stringify(raw)}`;
  return Number.parseFloat(t);
}

/** Strict booleans for step files: true/false/yes/no/1/0 (any case); anything else is a problem. */
export function parseBool(raw: string, field: string): boolean | string {
  const t = raw.trim().toLowerCase();
  if (['true', 'yes', '1'].includes(t)) return true;
  if (['false', 'no', '0'].includes(t)) return false;
  return `${field}: must be true or false, got ${JSON.stringify(raw)}`;
}
