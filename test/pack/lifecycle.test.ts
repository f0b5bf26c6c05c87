import { describe, expect, it } from 'vitest';
import { afterStepExit, explainExit, type LifecyclePolicy, type StepExit } from '../../src/pack/lifecycle.js';
import { newStatus, type StatusRecord } from '../../src/store/records.js';

const at = '2026-01-01T00:00:00.000Z';
const exit = (code: number | null, more: Partial<StepExit> = {}): StepExit => ({ code, signal: null, stoppedBy: null, startedAt: at, endedAt: at, ...more });
const policy = (more: Partial<LifecyclePolicy> = {}): LifecyclePolicy => ({ maxRestarts: 1, abortOn: [42], stepCount: 2, timeoutMinutes: 0.5, ...more });
const running = (more: Partial<StatusRecord> = {}): StatusRecord => ({ ...newStatus(7), status: 'running', ...more });

describe('step exit → run status (pure)', () => {
  it('exit 0 moves to the next step, and after the last one the run is successful', () => {
    const a = afterStepExit(running(), exit(0), policy());
    expect(a.next).toBe('next-step');
    expect(a.status).toMatchObject({ status: 'running', step: 1, attempt: 0 });
    const b = afterStepExit(a.status, exit(0), policy());
    expect(b.next).toBe('done');
    expect(b.status.status).toBe('successful');
  });

  it('a failing step restarts the same step while the budget lasts, then fails with the reason', () => {
    const a = afterStepExit(running({ step: 1 }), exit(3), policy());
    expect(a.next).toBe('restart');
    expect(a.status).toMatchObject({ step: 1, restarts: 1, attempt: 1 });
    const b = afterStepExit(a.status, exit(3), policy());
    expect(b.next).toBe('done');
    expect(b.status).toMatchObject({ status: 'failed', step: 1, exitCode: 3 });
    expect(b.status.reason).toBe('step 1: exit 3; all 1 restarts used');
  });

  it('-1 means unlimited restarts', () => {
    expect(afterStepExit(running({ restarts: 1000 }), exit(1), policy({ maxRestarts: -1 })).next).toBe('restart');
  });

  it('abort_on codes abort at once without using a restart', () => {
    const a = afterStepExit(running(), exit(42), policy());
    expect(a.status).toMatchObject({ status: 'aborted', restarts: 0 });
    expect(a.status.reason).toContain('abort_on');
  });

  it('a timeout counts as a failure with reason "timeout", even with an abort_on code', () => {
    const a = afterStepExit(running(), exit(42, { signal: null, stoppedBy: 'timeout' }), policy({ maxRestarts: 0 }));
    expect(a.status.status).toBe('failed');
    expect(a.status.reason).toMatch(/^timeout: step 0 ran over its 30 s limit/);
  });

  it('dequeue → killed; interrupt → queued at the same step without a restart', () => {
    expect(afterStepExit(running(), exit(null, { signal: 'SIGTERM', stoppedBy: 'dequeue' }), policy()).status.status).toBe('killed');
    const i = afterStepExit(running({ step: 1, attempt: 2, restarts: 1 }), exit(null, { signal: 'SIGTERM', stoppedBy: 'interrupt' }), policy());
    expect(i.next).toBe('requeue');
    expect(i.status).toMatchObject({ status: 'queued', step: 1, attempt: 3, restarts: 1 });
  });

  it('an exit 0 that raced with an interrupt or a dequeue counts as done, not as interrupted', () => {
    expect(afterStepExit(running(), exit(0, { stoppedBy: 'interrupt' }), policy()).next).toBe('next-step');
    expect(afterStepExit(running({ step: 1 }), exit(0, { stoppedBy: 'dequeue' }), policy()).status.status).toBe('successful');
    expect(afterStepExit(running(), exit(0, { stoppedBy: 'timeout' }), policy({ maxRestarts: 0 })).status.status).toBe('failed');
  });

  it('explains exits in words', () => {
    expect(explainExit(137, null)).toBe('exit 137: killed (SIGKILL), often out of memory');
    expect(explainExit(139, null)).toContain('segmentation fault');
    expect(explainExit(null, 'SIGKILL')).toContain('often out of memory');
    expect(explainExit(127, null)).toContain('command not found');
    expect(explainExit(2, null)).toBe('exit 2');
  });

  it('keeps a bounded history', () => {
    let s = running();
    for (let i = 0; i < 50; i++) s = afterStepExit(s, exit(1), policy({ maxRestarts: -1 })).status;
    expect(s.history.length).toBeLessThanOrEqual(20);
  });
});
