import { ThemisError } from '../model/errors.js';
import type { StepResources } from '../model/resources.js';
import { coresPerTask } from '../model/resources.js';
import type { Sample } from '../model/step.js';
import { attemptsOf } from '../store/history.js';
import type { StatusRecord } from '../store/records.js';

/**
 * How long each queued run's steps will take, for `themis plan` and `gen --nodes auto`. Pure.
 * Three sources, one at a time, and the plan says which it used:
 * - measured (the default): per step, the median duration of this ensemble's attempts that exited
 *   0 with the same resources (tasks, cores, GPUs); else of that step index; else of every step;
 * - a sample column (`--runtime-column NAME`): the run's duration, split evenly over its steps;
 * - a given estimate (`--runtime 90s`): every step.
 */
export type EstimateHow = { kind: 'measured' } | { kind: 'column'; column: string } | { kind: 'given'; seconds: number };

export interface EstimateInput {
  id: number;
  sample: Sample;
  steps: readonly StepResources[];
  status: StatusRecord | null;
}

export interface DurationEstimates {
  how: EstimateHow;
  /** What was used, in words (printed by `themis plan`). */
  said: string;
  /** Per run id: seconds for each of its steps. */
  seconds: Map<number, number[]>;
  /** The measured medians, per step and shape (measured only). */
  medians: { step: number; shape: string; runs: number; seconds: number }[];
  /** Steps that had no measurement of their own shape (they took the step's or the ensemble's median). */
  fallbacks: number;
}

/** "90", "90s", "1.5m", "2 min", "1h" -> seconds; a bare number is seconds. Null when it does not read. */
export function parseDuration(text: unknown): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : null;
  if (typeof text !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = (m[2] ?? 's').toLowerCase();
  return unit.startsWith('h') ? n * 3600 : unit.startsWith('m') ? n * 60 : n;
}

export function shapeOf(r: StepResources): string {
  return `${r.tasks}x${coresPerTask(r)}c${r.gpusPerTask > 0 ? `${r.gpusPerTask}g` : ''}`;
}

/** The middle value (mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Step durations (seconds) of the attempts that exited 0, per step index and shape. */
export function measuredDurations(runs: readonly EstimateInput[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of runs) {
    if (!r.status) continue;
    for (const a of attemptsOf(r.status).attempts) {
      if (a.outcome !== 'ok' || a.end === null) continue;
      const step = r.steps[a.step];
      if (!step) continue;
      const key = `${a.step}/${shapeOf(step)}`;
      let list = out.get(key);
      if (!list) {
        list = [];
        out.set(key, list);
      }
      list.push((a.end - a.start) / 1000);
    }
  }
  return out;
}

/**
 * Estimate the steps of `todo` (the runs to plan) from `all` (every run of the ensemble, for
 * measurements). Throws a USAGE error that says what to give when there is nothing to go on.
 */
export function estimateDurations(all: readonly EstimateInput[], todo: readonly EstimateInput[], how: EstimateHow): DurationEstimates {
  const seconds = new Map<number, number[]>();
  if (how.kind === 'given') {
    for (const r of todo)
      seconds.set(
        r.id,
        r.steps.map(() => how.seconds),
      );
    return { how, said: `the given estimate: ${fmtSeconds(how.seconds)} per step (--runtime)`, seconds, medians: [], fallbacks: 0 };
  }
  if (how.kind === 'column') {
    const bad: string[] = [];
    for (const r of todo) {
      const raw = r.sample[how.column];
      const s = parseDuration(raw);
      if (s === null) {
        if (bad.length < 5) bad.push(`run ${r.id}: ${raw === undefined ? 'no such column' : JSON.stringify(raw)}`);
        continue;
      }
      const n = Math.max(1, r.steps.length);
      seconds.set(
        r.id,
        r.steps.map(() => s / n),
      );
    }
    if (bad.length > 0) {
      throw new ThemisError('USAGE', `--runtime-column ${how.column}: not a duration for ${bad.join('; ')}; give seconds (90, 90s), minutes (2m) or hours (1h) in that column`);
    }
    return { how, said: `sample column "${how.column}" (the run's duration, split evenly over its steps)`, seconds, medians: [], fallbacks: 0 };
  }
  const measured = measuredDurations(all);
  if (measured.size === 0) {
    throw new ThemisError('USAGE', 'no finished step to measure durations from yet; give an estimate with --runtime 90s, or a sample column with --runtime-column NAME');
  }
  const byKey = new Map<string, number>();
  const perStep = new Map<number, number[]>();
  const every: number[] = [];
  const medians: DurationEstimates['medians'] = [];
  for (const [key, list] of measured) {
    const m = median(list);
    byKey.set(key, m);
    const [step, shape] = key.split('/') as [string, string];
    medians.push({ step: Number(step), shape, runs: list.length, seconds: m });
    const ps = perStep.get(Number(step)) ?? [];
    ps.push(...list);
    perStep.set(Number(step), ps);
    every.push(...list);
  }
  medians.sort((a, b) => a.step - b.step || a.shape.localeCompare(b.shape));
  const stepMedian = new Map([...perStep].map(([k, v]) => [k, median(v)]));
  const all_ = median(every);
  let fallbacks = 0;
  for (const r of todo) {
    seconds.set(
      r.id,
      r.steps.map((st, i) => {
        const exact = byKey.get(`${i}/${shapeOf(st)}`);
        if (exact !== undefined) return exact;
        fallbacks++;
        return stepMedian.get(i) ?? all_;
      }),
    );
  }
  const n = [...measured.values()].reduce((a, l) => a + l.length, 0);
  const extra = fallbacks > 0 ? `; ${fallbacks} step${fallbacks === 1 ? '' : 's'} with no finished run of the same resources took the step's (or every step's) median` : '';
  return { how, said: `measured: the median duration of ${n} finished step${n === 1 ? '' : 's'} of this ensemble, per step and resources${extra}`, seconds, medians, fallbacks };
}

/** 42 s, 3.5 min, 2.1 h */
export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 120) return `${Math.round(s * 10) / 10} s`;
  if (s < 7200) return `${Math.round(s / 6) / 10} min`;
  return `${Math.round(s / 360) / 10} h`;
}
