import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SchedulerName } from '../../src/model/allocation.js';
import { ThemisError } from '../../src/model/errors.js';
import type { CommandSpec } from '../../src/schedulers/adapter.js';
import {
  commandError,
  queryJobStates,
  readSchedulerOutput,
  runSchedulerCommand,
  runSchedulerCommandSync,
  submitScript,
  submitScriptSync,
  type CommandOptions,
  type CommandOutcome,
} from '../../src/schedulers/commands.js';
import { SCHEDULER_NAMES, discoverAllocation, getAdapter } from '../../src/schedulers/index.js';
import { FIXTURES, tempDirs, writeScript } from '../helpers/cli.js';

const FAKE_BIN = path.join(FIXTURES, 'bin');
const tmp = tempDirs('themis-commands-');

/** A directory with one executable `name` running `body`, and an env with it first on PATH. */
function fake(name: string, body: string): { dir: string; env: NodeJS.ProcessEnv; file: string } {
  const dir = tmp();
  const file = writeScript(path.join(dir, name), body);
  return { dir, file, env: { PATH: `${dir}:${process.env.PATH}` } };
}

/** The fake schedulers of fixtures/bin, logging to a temp file; `states` answers squeue/bjobs/flux jobs. */
function fakes(extra: Record<string, string> = {}) {
  const dir = tmp();
  const env = { PATH: `${FAKE_BIN}:${process.env.PATH}`, THEMIS_FAKE_LOG: path.join(dir, 'fake.log'), ...extra };
  const script = writeScript(path.join(dir, 'job.sh'), 'echo job\n');
  return { dir, env, script };
}

const task = { what: 'allocation 3', fix: 'fix it, then resubmit' };
type Runner = (cmd: CommandSpec, o: CommandOptions) => Promise<CommandOutcome>;
const both: [string, Runner][] = [
  ['async', (cmd, o) => runSchedulerCommand(cmd, o)],
  ['sync', async (cmd, o) => runSchedulerCommandSync(cmd, o)],
];

describe.each(both)('running a scheduler command (%s)', (_, run) => {
  it('exit 0: stdout and stderr, no error', async () => {
    const f = fake('sq', 'echo "42 RUNNING"; echo note >&2\n');
    const o = await run({ argv: ['sq', '-h'] }, { env: f.env });
    expect(o).toMatchObject({ shown: 'sq -h', stdout: '42 RUNNING\n', stderr: 'note\n', exitCode: 0, signal: null, timedOut: false, startError: null });
    expect(commandError(o, task)).toBeNull();
  });

  it('a non-zero exit: the command, its exit code, the first lines of stderr and the fix', async () => {
    const f = fake('sbatch', 'for i in 1 2 3 4 5 6 7; do echo "sbatch: error: line $i" >&2; done; exit 3\n');
    const o = await run({ argv: ['sbatch', '/x/job 1.sh'] }, { env: f.env });
    expect(o.exitCode).toBe(3);
    const e = commandError(o, task)!;
    expect(e).toBeInstanceOf(ThemisError);
    expect(e.code).toBe('SCHEDULER');
    expect(e.exitCode).toBe(1);
    expect(e.message).toBe(
      "sbatch refused allocation 3 (`sbatch '/x/job 1.sh'`, exit 3):\n" +
        'sbatch: error: line 1\nsbatch: error: line 2\nsbatch: error: line 3\nsbatch: error: line 4\nsbatch: error: line 5\n' +
        '… (2 more lines)\nfix it, then resubmit',
    );
  });

  it('a silent failure says so; stdout stands in for an empty stderr', async () => {
    const silent = await run({ argv: ['false'] }, {});
    expect(commandError(silent, task)!.message).toContain('(`false`, exit 1):\n(no message)\n');
    const f = fake('bsub', 'echo "Request aborted by esub. Job not submitted."; exit 255\n');
    expect(commandError(await run({ argv: ['bsub'] }, { env: f.env }), task)!.message).toContain('exit 255):\nRequest aborted by esub. Job not submitted.\n');
  });

  it('timeout: the command is killed and the error says it did not answer', async () => {
    const f = fake('squeue', 'exec sleep 30\n');
    const started = Date.now();
    const o = await run({ argv: ['squeue'] }, { env: f.env, timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(o).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL', startError: null });
    expect(commandError(o, { ...task, unreachableFix: 'try a login node' })!.message).toBe('cannot run `squeue` for allocation 3: it did not answer in 0.3 s and was killed; try a login node');
  });

  it('not on PATH: says so, keeps the ENOENT as cause, uses the unreachable fix', async () => {
    const o = await run({ argv: ['sbatch', 'x.sh'] }, { env: { PATH: tmp() } });
    expect(o.startError?.code).toBe('ENOENT');
    const e = commandError(o, { ...task, unreachableFix: 'submit on a login node' })!;
    expect(e.message).toBe('cannot run `sbatch x.sh` for allocation 3: `sbatch` is not on PATH; submit on a login node');
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('killed by a signal: names it', async () => {
    const f = fake('flux', 'kill -TERM $$\n');
    const o = await run({ argv: ['flux', 'batch'] }, { env: f.env });
    expect(o).toMatchObject({ exitCode: null, signal: 'SIGTERM', timedOut: false });
    expect(commandError(o, task)!.message).toBe('cannot run `flux batch` for allocation 3: it was killed by SIGTERM; fix it, then resubmit');
  });

  it('feeds stdinFile on stdin, in cwd, with exactly the given environment', async () => {
    const f = fake('bsub', 'cat; pwd; echo "[$ONLY_THIS] [${HOME:-}]"\n');
    const input = path.join(f.dir, 'job.sh');
    fs.writeFileSync(input, '#BSUB -nnodes 2\n');
    const o = await run({ argv: ['bsub'], stdinFile: input }, { env: { PATH: f.env.PATH, ONLY_THIS: 'yes' }, cwd: f.dir });
    expect(o.shown).toBe(`bsub < ${input}`);
    expect(o.stdout).toBe(`#BSUB -nnodes 2\n${fs.realpathSync(f.dir)}\n[yes] []\n`);
  });
});

describe('submitting through the adapters (fake sbatch, bsub, flux; local for real)', () => {
  it.each([
    ['slurm', {}, '4242'],
    ['lsf', {}, '4242'],
    ['flux', { THEMIS_FAKE_JOBID: 'ƒ2Xa3bY9Qk' }, 'ƒ2Xa3bY9Qk'],
  ] as const)('%s: the job id from the submit command, async and sync alike', async (scheduler, extra, id) => {
    const f = fakes(extra);
    const a = await submitScript(scheduler, f.script, { env: f.env, ...task });
    expect(a.jobId).toBe(id);
    expect(a.shown).toBe(scheduler === 'lsf' ? `bsub < ${f.script}` : scheduler === 'flux' ? `flux batch ${f.script}` : `sbatch ${f.script}`);
    const s = submitScriptSync(scheduler, f.script, { env: f.env, ...task });
    expect(s.jobId).toBe(scheduler === 'flux' ? id : '4243');
  });

  it('a refused submission throws the one error shape, async and sync', async () => {
    const f = fakes({ THEMIS_FAKE_FAIL: 'sbatch bsub' });
    const shape = /^(sbatch|bsub) refused allocation 3 \(`.+`, exit (1|255)\):\n.+\nfix it, then resubmit$/;
    await expect(submitScript('slurm', f.script, { env: f.env, ...task })).rejects.toThrow(shape);
    expect(() => submitScriptSync('lsf', f.script, { env: f.env, ...task })).toThrow(shape);
    expect(() => submitScriptSync('lsf', f.script, { env: f.env, ...task })).toThrow(/User permission denied\. Job not submitted\./);
  });

  it('exit 0 without a recognisable job id: no guess, the output kept for the message', async () => {
    const f = fake('sbatch', 'echo "sbatch: queued somewhere"\n');
    const r = await submitScript('slurm', '/x.sh', { env: f.env, ...task });
    expect(r).toEqual({ jobId: null, shown: 'sbatch /x.sh', output: 'sbatch: queued somewhere' });
  });

  it('local: starts the script detached, its pid is the job id, output to the given file', async () => {
    const dir = tmp();
    const script = writeScript(path.join(dir, 'alloc.sh'), 'echo "pid $$ in $(pwd)"\n');
    const out = path.join(dir, 'logs', 'alloc.out');
    const r = submitScriptSync('local', script, { cwd: dir, outputFile: out, ...task });
    expect(r.jobId).toMatch(/^\d+$/);
    for (let i = 0; i < 100 && !(fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('\n')); i++) await new Promise((res) => setTimeout(res, 20));
    expect(fs.readFileSync(out, 'utf8')).toBe(`pid ${r.jobId} in ${fs.realpathSync(dir)}\n`);
    expect(() => submitScriptSync('local', path.join(dir, 'missing.sh'), task)).toThrow(/cannot start .*missing\.sh for allocation 3; is it executable/);
  });
});

describe('job states', () => {
  it('Slurm: listed ids are pending/running; squeue\'s "Invalid job id specified" (exit 1) means gone', async () => {
    const f = fakes();
    const states = path.join(f.dir, 'states');
    fs.writeFileSync(states, '7 PENDING\n');
    const env = { ...f.env, THEMIS_FAKE_STATES: states };
    expect([...(await queryJobStates('slurm', ['7', '8'], { env }))]).toEqual([
      ['7', 'pending'],
      ['8', 'gone'],
    ]);
    fs.writeFileSync(states, '');
    expect([...(await queryJobStates('slurm', ['7'], { env }))]).toEqual([['7', 'gone']]);
  });

  it('LSF: "Job <N> is not found" (exit 255) means gone', async () => {
    const f = fakes();
    expect([...(await queryJobStates('lsf', ['9'], { env: f.env }))]).toEqual([['9', 'gone']]);
  });

  it('a failure that does not say the jobs are gone, a missing command or a timeout: unknown', async () => {
    const busy = fake('squeue', 'echo "slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1\n');
    expect([...(await queryJobStates('slurm', ['1'], { env: busy.env }))]).toEqual([['1', 'unknown']]);
    expect([...(await queryJobStates('slurm', ['1'], { env: { PATH: tmp() } }))]).toEqual([['1', 'unknown']]);
    const hung = fake('squeue', 'exec sleep 30\n');
    expect([...(await queryJobStates('slurm', ['1'], { env: hung.env, timeoutMs: 200 }))]).toEqual([['1', 'unknown']]);
  });

  it('local: `ps` exiting 1 for dead pids is an answer: gone; this process is running', async () => {
    expect([...(await queryJobStates('local', [String(process.pid), '999999999']))]).toEqual([
      [String(process.pid), 'running'],
      ['999999999', 'gone'],
    ]);
  });
});

describe('discovery and the registry', () => {
  it('readSchedulerOutput: stdout on exit 0, null on a failure or a missing command', () => {
    expect(readSchedulerOutput(['sh', '-c', 'echo 2030-01-01T00:00:00'])).toBe('2030-01-01T00:00:00\n');
    expect(readSchedulerOutput(['sh', '-c', 'echo x; exit 1'])).toBeNull();
    expect(readSchedulerOutput(['themis-no-such-command'])).toBeNull();
  });

  it('discoverAllocation asks the preferred scheduler first, only where its environment is present, else this machine', () => {
    const env = { SLURM_JOB_ID: '5', SLURM_JOB_NODELIST: 'n1', SLURM_CPUS_ON_NODE: '8', LSB_JOBID: '77', LSB_MCPU_HOSTS: 'login 1 c1 4' };
    const asked: string[][] = [];
    const run = (argv: string[]) => {
      asked.push(argv);
      return null;
    };
    expect(discoverAllocation(env, null, run)).toMatchObject({ scheduler: 'slurm', jobId: '5' });
    expect(discoverAllocation(env, 'lsf', run)).toMatchObject({ scheduler: 'lsf', jobId: '77', nodes: [{ name: 'c1', cores: 4 }] });
    expect(asked).toEqual([['squeue', '-h', '-j', '5', '-o', '%e']]);
    expect(discoverAllocation({ CUDA_VISIBLE_DEVICES: '' }, 'flux', run)).toMatchObject({ scheduler: 'local', jobId: null });
  });

  it('every registered adapter carries its own name and says from the environment alone whether it is inside an allocation', () => {
    expect(SCHEDULER_NAMES).toEqual(['slurm', 'lsf', 'flux', 'local']);
    const inside: Record<SchedulerName, NodeJS.ProcessEnv> = { slurm: { SLURM_JOBID: '1' }, lsf: { LSB_JOBID: '1' }, flux: { FLUX_URI: 'local:///x' }, local: {} };
    for (const name of SCHEDULER_NAMES) {
      const a = getAdapter(name);
      expect(a.name).toBe(name);
      expect(a.insideAllocation({})).toBe(false);
      expect(a.insideAllocation(inside[name])).toBe(name !== 'local');
    }
  });
});
