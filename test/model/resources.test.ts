import { describe, expect, it } from 'vitest';
import { coresHeld, coresPerTask, coresRequested, gpusHeld, peakCores, resourcesOf, sameResources } from '../../src/model/resources.js';

const r = (tasks: number, cores: number, gpus = 0) => ({ tasks, coresPerTask: cores, gpusPerTask: gpus });

describe('step resources: one rule for cores_per_task', () => {
  it('0 is no binding request: one core per task held, no core count requested', () => {
    expect(coresPerTask(r(4, 0))).toBe(1);
    expect(coresRequested(r(4, 0))).toBeNull();
    expect(coresHeld(r(4, 0))).toBe(4);
  });

  it('n > 0 is held and requested as written', () => {
    expect(coresPerTask(r(4, 2))).toBe(2);
    expect(coresRequested(r(4, 2))).toBe(2);
    expect(coresHeld(r(4, 2))).toBe(8);
    expect(gpusHeld(r(4, 2, 1))).toBe(4);
  });

  it("a run's peak is its largest step; the triple is picked and compared as written", () => {
    expect(peakCores([r(1, 0), r(2, 3), r(4, 0)])).toBe(6);
    expect(peakCores([])).toBe(0);
    expect(resourcesOf({ ...r(2, 1, 1), timeout: 5, args: ['x'] } as never)).toEqual(r(2, 1, 1));
    expect(sameResources(r(2, 1), r(2, 1))).toBe(true);
    expect(sameResources(r(2, 0), r(2, 1))).toBe(false);
  });
});
