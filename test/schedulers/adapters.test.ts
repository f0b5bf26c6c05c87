import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StepLaunch } from '../../src/model/resources.js';
import type { Placement } from '../../src/schedulers/adapter.js';
import { detectScheduler, getAdapter } from '../../src/schedulers/index.js';
import { FIXTURES, makeTempDir, writeScript } from '../helpers/cli.js';

const step = (s: Partial<StepLaunch> = {}): StepLaunch => ({ tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, ...s });
const twoNodes: Placement = {
  nodes: [
    { name: 'n1', tasks: 2, cores: [0, 1, 2, 3], gpus: ['0'] },
    { name: 'n2', tasks: 2, cores: [0, 1, 2, 3], gpus: ['1'] },
  ],
};

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});
function tmp(): string {
  const t = makeTempDir('themis-sched-');
  temps.push(t);
  return t;
}

describe('launch commands', () => {
  it('Slurm: srun --exact with each flag only when > 0, timeout rounded up; placed steps get per-node --gres GPUs', () => {
    const slurm = getAdapter('slurm');
    expect(slurm.launchPrefix(step())).toEqual(['srun', '--exact', '-n', '1', '-c', '1']);
    expect(slurm.launchPrefix(step({ tasks: 4, coresPerTask: 2, gpusPerTask: 1, timeout: 2.5 }))).toEqual(['srun', '--exact', '-n', '4', '-c', '2', '--gpus-per-task=1', '-t', '3']);
    expect(slurm.launchPrefix(step({ coresPerTask: 0 }))).toEqual(['srun', '--exact', '-n', '1']);
    expect(slurm.placedLaunch(step({ tasks: 4, coresPerTask: 2, gpusPerTask: 1, timeout: 0.5 }), twoNodes, '99')).toEqual([
      'srun',
      '--exact',
      '-N',
      '2',
      '-n',
      '4',
      '-c',
      '2',
      '--gres=gpu:1',
      '--nodelist=n1,n2',
      '-t',
      '1',
    ]);
    const oneNode: Placement = { nodes: [{ name: 'n2', tasks: 2, cores: [0, 1], gpus: ['0', '1'] }] };
    expect(slurm.placedLaunch(step({ tasks: 2, gpusPerTask: 1 }), oneNode, null)).toEqual(['srun', '--exact', '-N', '1', '-n', '2', '-c', '1', '--gres=gpu:2', '--nodelist=n2']);
  });

  it('LSF (no real LSF here): jsrun -n -c -g, or lrun', () => {
    expect(getAdapter('lsf').launchPrefix(step({ tasks: 2, coresPerTask: 4, gpusPerTask: 1 }))).toEqual(['jsrun', '-n', '2', '-c', '4', '-g', '1']);
    expect(getAdapter('lsf', { lsfLauncher: 'lrun' }).launchPrefix(step({ tasks: 2 }))).toEqual(['lrun', '-n', '2', '-c', '1', '-g', '0']);
    expect(getAdapter('lsf', { lsfLauncher: 'lrun' }).placedLaunch(step({ tasks: 4 }), twoNodes, null)).toEqual(['lrun', '-N', '2', '-n', '4', '-c', '1', '-g', '0']);
  });

  it('Flux (no real Flux here): flux run -n -c [-g] [-t Nm], placed with -N and host constraint', () => {
    const flux = getAdapter('flux');
    expect(flux.launchPrefix(step({ tasks: 2, coresPerTask: 3, gpusPerTask: 4, timeout: 5 }))).toEqual(['flux', 'run', '-n', '2', '-c', '3', '-g', '4', '-t', '5m']);
    // Fractions of a minute are exact in seconds (Flux Standard Duration).
    expect(flux.launchPrefix(step({ timeout: 0.5 }))).toEqual(['flux', 'run', '-n', '1', '-c', '1', '-t', '30s']);
    expect(flux.placedLaunch(step({ tasks: 4 }), twoNodes, null)).toEqual(['flux', 'run', '-N', '2', '-n', '4', '-c', '1', '--requires=host:n1,n2']);
  });

  it('cores_per_task 0 (no binding request) is one core per task on every launcher, never `-c 0`; 2 is passed as asked', () => {
    const jsrun = getAdapter('lsf');
    const lrun = getAdapter('lsf', { lsfLauncher: 'lrun' });
    const flux = getAdapter('flux');
    // Slurm: srun's own default is one core per task, so the flag is left out.
    expect(getAdapter('slurm').placedLaunch(step({ tasks: 2, coresPerTask: 0 }), twoNodes, null)).toEqual(['srun', '--exact', '-N', '2', '-n', '2', '--nodelist=n1,n2']);
    expect(jsrun.launchPrefix(step({ tasks: 2, coresPerTask: 0 }))).toEqual(['jsrun', '-n', '2', '-c', '1', '-g', '0']);
    expect(jsrun.launchPrefix(step({ tasks: 2, coresPerTask: 2 }))).toEqual(['jsrun', '-n', '2', '-c', '2', '-g', '0']);
    expect(jsrun.placedLaunch(step({ tasks: 2, coresPerTask: 0 }), twoNodes, null)).toEqual(['jsrun', '-n', '2', '-c', '1', '-g', '0']);
    expect(jsrun.placedLaunch(step({ tasks: 2, coresPerTask: 2 }), twoNodes, null)).toEqual(['jsrun', '-n', '2', '-c', '2', '-g', '0']);
    expect(lrun.launchPrefix(step({ coresPerTask: 0 }))).toEqual(['lrun', '-n', '1', '-c', '1', '-g', '0']);
    expect(lrun.launchPrefix(step({ coresPerTask: 2 }))).toEqual(['lrun', '-n', '1', '-c', '2', '-g', '0']);
    expect(lrun.placedLaunch(step({ tasks: 4, coresPerTask: 0 }), twoNodes, null)).toEqual(['lrun', '-N', '2', '-n', '4', '-c', '1', '-g', '0']);
    expect(lrun.placedLaunch(step({ tasks: 4, coresPerTask: 2 }), twoNodes, null)).toEqual(['lrun', '-N', '2', '-n', '4', '-c', '2', '-g', '0']);
    expect(flux.launchPrefix(step({ coresPerTask: 0 }))).toEqual(['flux', 'run', '-n', '1', '-c', '1']);
    expect(flux.launchPrefix(step({ coresPerTask: 2 }))).toEqual(['flux', 'run', '-n', '1', '-c', '2']);
    expect(flux.placedLaunch(step({ tasks: 4, coresPerTask: 0 }), twoNodes, null)).toEqual(['flux', 'run', '-N', '2', '-n', '4', '-c', '1', '--requires=host:n1,n2']);
    expect(flux.placedLaunch(step({ tasks: 4, coresPerTask: 2 }), twoNodes, null)).toEqual(['flux', 'run', '-N', '2', '-n', '4', '-c', '2', '--requires=host:n1,n2']);
  });

  it('local: steps run directly', () => {
    expect(getAdapter('local').launchPrefix(step({ tasks: 4 }))).toEqual([]);
    expect(getAdapter('local').placedLaunch(step(), twoNodes, null)).toEqual([]);
  });

  it('onceLaunch: Slurm runs a batch script as one --overlap task on the named node; Flux, LSF and local have none', () => {
    expect(getAdapter('slurm').onceLaunch('n2', step({ tasks: 4, coresPerTask: 2, gpusPerTask: 1, timeout: 1.5 }), '9')).toEqual([
      'srun',
      '-N',
      '1',
      '-n',
      '1',
      '--overlap',
      '--nodelist=n2',
      '-t',
      '2',
    ]);
    expect(getAdapter('flux').onceLaunch('n2', step(), null)).toBeNull();
    expect(getAdapter('lsf').onceLaunch('n2', step(), null)).toBeNull();
    expect(getAdapter('lsf', { lsfLauncher: 'lrun' }).onceLaunch('n2', step(), null)).toBeNull();
    expect(getAdapter('local').onceLaunch('n2', step(), null)).toBeNull();
  });
});

describe('job ids and job states', () => {
  it('parses what each submit command prints', () => {
    expect(getAdapter('slurm').parseJobId('Submitted batch job 4242\n')).toBe('4242');
    expect(getAdapter('slurm').parseJobId('4242;cluster2\n')).toBe('4242');
    expect(getAdapter('slurm').parseJobId('sbatch: error: something\n')).toBeNull();
    expect(getAdapter('lsf').parseJobId('Job <4242> is submitted to queue <pbatch>.\n')).toBe('4242');
    expect(getAdapter('lsf').parseJobId('Request aborted by esub. Job not submitted.\n')).toBeNull();
    expect(getAdapter('flux').parseJobId('ƒ2Xa3bY9Qk\n')).toBe('ƒ2Xa3bY9Qk');
    expect(getAdapter('flux').parseJobId('')).toBeNull();
  });

  it("maps each scheduler's states onto pending / running / gone; unlisted jobs are gone", () => {
    const slurm = getAdapter('slurm');
    expect(slurm.jobStatesCommand(['1', '2'])).toEqual({ argv: ['squeue', '-h', '-j', '1,2', '-o', '%i %T'] });
    expect([...slurm.parseJobStates('1 PENDING\n2 RUNNING\n', ['1', '2', '3'])]).toEqual([
      ['1', 'pending'],
      ['2', 'running'],
      ['3', 'gone'],
    ]);
    const lsf = getAdapter('lsf');
    expect(lsf.jobStatesCommand(['7', '8'])).toEqual({ argv: ['bjobs', '-noheader', '-o', 'jobid stat', '7', '8'] });
    expect([...lsf.parseJobStates('7 PEND\n8 DONE\n', ['7', '8'])]).toEqual([
      ['7', 'pending'],
      ['8', 'gone'],
    ]);
    const flux = getAdapter('flux');
    expect(flux.jobStatesCommand(['ƒa'])).toEqual({ argv: ['flux', 'jobs', '-no', '{id} {state}', 'ƒa'] });
    expect([...flux.parseJobStates('ƒa RUN\nƒb INACTIVE\n', ['ƒa', 'ƒb'])]).toEqual([
      ['ƒa', 'running'],
      ['ƒb', 'gone'],
    ]);
    expect([...getAdapter('local').parseJobStates('  123 S\n  124 Z\n', ['123', '124'])]).toEqual([
      ['123', 'running'],
      ['124', 'gone'],
    ]);
  });
});

describe('detectScheduler', () => {
  const fakeBin = (names: string[]) => {
    const dir = tmp();
    for (const n of names) writeScript(path.join(dir, n), 'exit 0\n');
    return dir;
  };

  it('picks slurm, lsf, flux by what is on PATH, in that order, else local', () => {
    expect(detectScheduler({ PATH: fakeBin(['sbatch', 'bsub']) })).toBe('slurm');
    expect(detectScheduler({ PATH: fakeBin(['bsub', 'flux']) })).toBe('lsf');
    expect(detectScheduler({ PATH: fakeBin(['flux']) })).toBe('flux');
    expect(detectScheduler({ PATH: fakeBin([]) })).toBe('local');
  });

  it('never crashes: no PATH, empty entries, missing or unreadable directories, non-executable files', () => {
    expect(detectScheduler({})).toBe('local');
    expect(detectScheduler({ PATH: '::/nonexistent/dir:' })).toBe('local');
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'sbatch'), 'not executable', { mode: 0o644 });
    fs.mkdirSync(path.join(dir, 'bsub'));
    expect(detectScheduler({ PATH: dir })).toBe('local');
  });

  it('refuses an unknown scheduler name with the list of known ones', () => {
    expect(() => getAdapter('pbs' as never)).toThrow(/unknown scheduler "pbs"; choose one of slurm, lsf, flux, local/);
  });
});

describe('launch commands through fake launchers (no real LSF/Flux here)', () => {
  const run = (argv: string[], env: Record<string, string>) => {
    const log = path.join(tmp(), 'fake.log');
    const r = spawnSync(argv[0]!, argv.slice(1), {
      encoding: 'utf8',
      env: { PATH: `${path.join(FIXTURES, 'bin')}:${process.env.PATH}`, THEMIS_FAKE_LOG: log, ...env },
    });
    const lines = fs.existsSync(log)
      ? fs
          .readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
      : [];
    return { r, lines };
  };

  it('fake jsrun records the exact argv and THEMIS_/CUDA env, then runs the step', () => {
    const argv = [...getAdapter('lsf').launchPrefix(step({ tasks: 2, coresPerTask: 4, gpusPerTask: 1 })), 'sh', '-c', 'echo "ran $THEMIS_RUN_ID"'];
    const { r, lines } = run(argv, { THEMIS_RUN_ID: '17', CUDA_VISIBLE_DEVICES: '1', LSB_JOBID: '3187654' });
    expect(r.stdout).toBe('ran 17\n');
    expect(lines).toEqual([
      {
        tool: 'jsrun',
        cwd: process.cwd(),
        argv: argv.slice(1),
        env: { CUDA_VISIBLE_DEVICES: '1', LSB_JOBID: '3187654', THEMIS_RUN_ID: '17' },
      },
    ]);
  });

  it('fake lrun and fake `flux run` run the step after their options', () => {
    const lrun = [...getAdapter('lsf', { lsfLauncher: 'lrun' }).placedLaunch(step({ tasks: 4 }), twoNodes, null), 'echo', 'ok'];
    expect(run(lrun, {}).r.stdout).toBe('ok\n');
    const flux = [...getAdapter('flux').placedLaunch(step({ tasks: 4, gpusPerTask: 1, timeout: 1 }), twoNodes, null), 'echo', 'ok'];
    const { r, lines } = run(flux, { FLUX_URI: 'local:///tmp/x' });
    expect(r.stdout).toBe('ok\n');
    expect(lines[0].argv).toEqual(flux.slice(1));
    expect(lines[0].env).toEqual({ FLUX_URI: 'local:///tmp/x' });
  });
});

describe('node launchers and the step limit (argv and parsing; Flux and LSF against no real engine)', () => {
  const node = { name: 'n7', cores: 128, gpus: ['0', '1', '2', '3'] };
  it('Slurm: one task holding the whole node, --overlap so later steps share it, unbuffered; MaxStepCount parsed, 40,000 by default', () => {
    const slurm = getAdapter('slurm');
    expect(slurm.nodeLauncher!(node)).toEqual([
      'srun',
      '--overlap',
      '--nodes=1',
      '--ntasks=1',
      '--nodelist=n7',
      '--cpus-per-task=128',
      '--gres=gpu:4',
      '--mem=0',
      '--unbuffered',
      '--kill-on-bad-exit=1',
      '--quiet',
      '--job-name=themis-launcher',
    ]);
    expect(slurm.nodeLauncher!({ ...node, gpus: [] })).not.toContain('--gres=gpu:0');
    expect(slurm.nodeCommand!(node)).toEqual(['srun', '--overlap', '--nodes=1', '--ntasks=1', '--nodelist=n7', '--quiet']);
    expect(slurm.parseStepLimit!('MaxJobCount             = 10000\nMaxStepCount            = 25\nMaxTasksPerNode = 512\n')).toBe(25);
    expect(slurm.parseStepLimit!('nothing here')).toBeNull();
    expect(slurm.defaultStepLimit).toBe(40_000);
  });
  it("Slurm: srun's refusals are told apart from a step that ran and failed", () => {
    const slurm = getAdapter('slurm');
    expect(slurm.refusedStep!('srun: error: Unable to create step for job 1: Step limit reached for this job\n')).toEqual({
      why: 'srun: Unable to create step for job 1: Step limit reached for this job',
      limitReached: true,
    });
    expect(slurm.refusedStep!('srun: Job 5 step creation temporarily disabled, retrying\nsrun: error: Unable to create step for job 5: Job/step already completing or completed\n')!.limitReached).toBe(
      false,
    );
    expect(slurm.refusedStep!('Segmentation fault (core dumped)\nsrun: error: n1: task 0: Exited with exit code 139\n')).toBeNull();
  });
  it('Flux (no real Flux here): flux run of one task on that host with its cores and GPUs; LSF (no real LSF here): blaunch -z HOST', () => {
    expect(getAdapter('flux').nodeLauncher!(node)).toEqual([
      'flux',
      'run',
      '--nodes=1',
      '--ntasks=1',
      '--cores-per-task=128',
      '--gpus-per-task=4',
      '--requires=host:n7',
      '--setopt=cpu-affinity=off',
      '--job-name=themis-launcher',
    ]);
    expect(getAdapter('lsf').nodeLauncher!(node)).toEqual(['blaunch', '-z', 'n7']);
    expect(getAdapter('local').nodeLauncher).toBeUndefined();
  });
});
