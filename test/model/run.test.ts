import { describe, expect, it } from 'vitest';
import { ThemisError } from '../../src/model/errors.js';
import { CompositeRun, Run, Step, parseBool, parseIntField, parseMinutes, runProblems, validateRuns } from '../../src/model/run.js';

describe('Step', () => {
  it('has the seed defaults and splits a string like a shell', () => {
    const s = new Step("/bin/bash -c 'exit 1;'");
    expect(s.toSpec()).toEqual({ args: ['/bin/bash', '-c', 'exit 1;'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: true, cwd: '.' });
  });

  it('takes options after the args and keeps arrays as given', () => {
    const s = new Step(['sim', '--x', 'a b'], { tasks: 4, coresPerTask: 2, gpusPerTask: 1, timeout: 0.5, batchScript: false, cwd: 'work' });
    expect(s.toSpec()).toMatchObject({ args: ['sim', '--x', 'a b'], tasks: 4, coresPerTask: 2, gpusPerTask: 1, timeout: 0.5, batchScript: false, cwd: 'work' });
  });

  it('refuses shell operators in a string', () => {
    expect(() => new Step('sim | tee log')).toThrow(/shell operator "\|"/);
  });
});

describe('Run and CompositeRun', () => {
  it('Run builds one step from the ensemble application', () => {
    const r = new Run({ x: '1' }, '-x 1', { tasks: 2 });
    expect(r.toSteps('/opt/sim', false)).toEqual([{ args: ['/opt/sim', '-x', '1'], tasks: 2, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: false, cwd: '.' }]);
    expect(new Run().sample).toEqual({});
  });

  it('CompositeRun keeps its steps in order and copies them per run', () => {
    const steps = [new Step('prep.sh'), new Step('sim', { tasks: 4 })];
    const r = new CompositeRun({ seed: 7 }, steps);
    const a = r.toSteps();
    a[0]!.args[0] = '/changed';
    expect(r.toSteps()[0]!.args[0]).toBe('prep.sh');
    expect(a.map((s) => s.tasks)).toEqual([1, 4]);
  });
});

describe('validation', () => {
  it('reports every problem with run id and field at once', () => {
    const bad = new CompositeRun({}, [new Step('a', { tasks: 0, coresPerTask: -1 }), new Step('b', { timeout: -2, cwd: '' })]);
    const problems = runProblems(7, bad.sample, bad.toSteps());
    expect(problems).toEqual([
      expect.stringMatching(/^run 7 step 1: tasks: must be an integer >= 1, got 0/),
      expect.stringMatching(/^run 7 step 1: cores_per_task: must be an integer >= 0, got -1/),
      expect.stringMatching(/^run 7 step 2: timeout: must be a number of minutes >= 0/),
      expect.stringMatching(/^run 7 step 2: cwd:/),
    ]);
  });

  it('an empty step list and a non-object sample are problems', () => {
    expect(runProblems(3, [1], [])).toEqual([expect.stringMatching(/run 3: sample: must be an object/), 'run 3: steps: a run needs at least one step']);
  });

  it('validateRuns throws one VALIDATION error listing all runs', () => {
    const runs = [new Run({}, null, { tasks: 0 }), new Run({}, null, { gpusPerTask: 1.5 })];
    try {
      validateRuns(runs, 1, (r) => (r as Run).toSteps('/x', false));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ThemisError);
      expect((e as ThemisError).code).toBe('VALIDATION');
      expect((e as ThemisError).exitCode).toBe(2);
      expect((e as ThemisError).problems).toHaveLength(2);
      expect((e as Error).message).toMatch(/run 1: tasks/);
      expect((e as Error).message).toMatch(/run 2: gpus_per_task/);
    }
  });
});

describe('text fields', () => {
  it('parses integers strictly', () => {
    expect(parseIntField(' 4 ', 'tasks', 1)).toBe(4);
    expect(parseIntField('0', 'tasks', 1)).toMatch(/tasks: must be an integer >= 1, got "0"/);
    expect(parseIntField('2.5', 'coresPerTask', 0)).toMatch(/cores_per_task/);
    expect(parseIntField('', 'tasks', 1)).toMatch(/got ""/);
  });
  it('parses minutes with fractions', () => {
    expect(parseMinutes('0.5')).toBe(0.5);
    expect(parseMinutes('.25')).toBe(0.25);
    expect(parseMinutes('-1')).toMatch(/timeout: must be a number of minutes/);
    expect(parseMinutes('10m')).toMatch(/got "10m"/);
  });
  it('parses booleans strictly (not Python bool("False"))', () => {
    expect(parseBool('False', 'batch_script')).toBe(false);
    expect(parseBool('TRUE', 'batch_script')).toBe(true);
    expect(parseBool('0', 'batch_script')).toBe(false);
    expect(parseBool('nope', 'batch_script')).toMatch(/batch_script: must be true or false, got "nope"/);
  });
});
