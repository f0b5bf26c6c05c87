import { describe, expect, it } from 'vitest';
import { estimateDurations, median, parseDuration, type EstimateInput } from '../../src/api/estimate.js';
import { attemptsOf } from '../../src/store/history.js';
import { newStatus, type StatusRecord } from '../../src/store/records.js';

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const r1 = { tasks: 1, coresPerTask: 1, gpusPerTask: 0 };
const r4 = { tasks: 1, coresPerTask: 4, gpusPerTask: 0 };

/** A finished run whose steps took `secs` (step i started at 100*i). */
function finished(id: number, secs: number[], more: Partial<StatusRecord> = {}): StatusRecord {
  const s = newStatus(id);
  const history = [...s.history];
  secs.forEach((d, i) => {
    history.push({ at: t(100 * i), event: 'started', detail: `step ${i} attempt 0` });
    history.push({ at: t(100 * i + d), event: i === secs.length - 1 ? 'successful' : 'step done' });
  });
  return { ...s, status: 'successful', step: secs.length, history, ...more };
}

describe('attemptsOf: step attempts from a status history', () => {
  it('pairs each start with what settled it, restarts included', () => {
    const s = newStatus(1);
    s.history.push(
      { at: t(0), event: 'started', detail: 'step 0 attempt 0' },
      { at: t(5), event: 'restart', detail: 'step 0: exit 2' },
      { at: t(6), event: 'started', detail: 'step 0 attempt 1' },
      { at: t(9), event: 'failed' },
    );
    const { attempts, trimmed } = attemptsOf({ ...s, status: 'failed' });
    expect(trimmed).toBe(false);
    expect(attempts.map((a) => [a.step, a.attempt, (a.end! - a.start) / 1000, a.outcome, a.last])).toEqual([
      [0, 0, 5, 'restart', false],
      [0, 1, 3, 'failed', true],
    ]);
  });

  it('says when the history lost its first entries, and that a step still runs', () => {
    const s = {
      ...newStatus(2),
      status: 'running' as const,
      history: [
        { at: t(0), event: 'step done' },
        { at: t(10), event: 'started', detail: 'step 3 attempt 0' },
      ],
    };
    const { attempts, trimmed } = attemptsOf(s);
    expect(trimmed).toBe(true);
    expect(attempts).toMatchObject([{ step: 3, outcome: 'running', end: null }]);
  });
});

describe('duration estimates', () => {
  it('reads durations with units; a bare number is seconds', () => {
    expect(parseDuration('90')).toBe(90);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('1.5m')).toBe(90);
    expect(parseDuration('2 min')).toBe(120);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration(12)).toBe(12);
    expect(parseDuration('soon')).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });

  it('measured: the median of finished runs with the same step and resources, else of the step, and says so', () => {
    const all: EstimateInput[] = [
      { id: 1, sample: {}, steps: [r1, r4], status: finished(1, [10, 40]) },
      { id: 2, sample: {}, steps: [r1, r4], status: finished(2, [20, 60]) },
      { id: 3, sample: {}, steps: [r1, r4], status: finished(3, [90, 50]) },
      { id: 4, sample: {}, steps: [r1, r4], status: newStatus(4) },
      { id: 5, sample: {}, steps: [r4, r4], status: newStatus(5) },
    ];
    const e = estimateDurations(all, all.slice(3), { kind: 'measured' });
    expect(e.seconds.get(4)).toEqual([20, 50]);
    // Step 0 was never run with 4 cores: the median of every step-0 attempt.
    expect(e.seconds.get(5)).toEqual([20, 50]);
    expect(e.fallbacks).toBe(1);
    expect(e.medians).toEqual([
      { step: 0, shape: '1x1c', runs: 3, seconds: 20 },
      { step: 1, shape: '1x4c', runs: 3, seconds: 50 },
    ]);
    expect(e.said).toMatch(/^measured: the median duration of 6 finished steps/);
  });

  it('ignores attempts that did not exit 0 when measuring', () => {
    const s = newStatus(1);
    s.history.push(
      { at: t(0), event: 'started', detail: 'step 0 attempt 0' },
      { at: t(500), event: 'restart' },
      { at: t(500), event: 'started', detail: 'step 0 attempt 1' },
      { at: t(530), event: 'successful' },
    );
    const e = estimateDurations([{ id: 1, sample: {}, steps: [r1], status: { ...s, status: 'successful' } }], [{ id: 2, sample: {}, steps: [r1], status: null }], { kind: 'measured' });
    expect(e.seconds.get(2)).toEqual([30]);
  });

  it('a sample column holds the run duration, split over its steps; a given estimate is every step', () => {
    const todo: EstimateInput[] = [
      { id: 1, sample: { t: '1m' }, steps: [r1, r1], status: null },
      { id: 2, sample: { t: 30 }, steps: [r1], status: null },
    ];
    expect(estimateDurations([], todo, { kind: 'column', column: 't' }).seconds).toEqual(
      new Map([
        [1, [30, 30]],
        [2, [30]],
      ]),
    );
    expect(estimateDurations([], todo, { kind: 'given', seconds: 5 }).seconds.get(1)).toEqual([5, 5]);
  });

  it('says what to give when there is nothing to go on', () => {
    expect(() => estimateDurations([], [{ id: 1, sample: {}, steps: [r1], status: null }], { kind: 'measured' })).toThrow(/--runtime 90s.*--runtime-column/);
    expect(() => estimateDurations([], [{ id: 1, sample: { t: 'x' }, steps: [r1], status: null }], { kind: 'column', column: 't' })).toThrow(/run 1: "x"/);
  });
});
