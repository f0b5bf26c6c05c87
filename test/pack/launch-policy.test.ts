import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StepSpec } from '../../src/model/step.js';
import { launchArgv as argvFor, routeOf, spawnRequest, type LaunchSetup } from '../../src/pack/launch-policy.js';
import { createPool, findSlot, type Slot } from '../../src/pack/pool.js';
import { writeScript } from '../helpers/cli.js';
import { makeEnsemble, startPack, statuses } from './helpers.js';

/**
 * In process (no packer, no fake srun): where each step is started and with what argv and
 * environment, for a 2-node Slurm allocation (n1, n2 x 4 cores x 2 GPUs) whose packer runs on n1.
 */
describe('launch policy: routeOf, launchArgv, spawnRequest (in process)', () => {
  const pool = createPool([
    { name: 'n1', cores: 4, gpus: ['0', '1'] },
    { name: 'n2', cores: 4, gpus: ['0', '1'] },
  ]);
  // Without launchers on other nodes unless a test says so (then routes to them are tested below).
  const setup = (over: Partial<LaunchSetup> = {}): LaunchSetup => ({ mode: 'auto', scheduler: 'slurm', jobId: '77', ownNode: 0, bind: false, nodeLaunchers: false, ...over });
  const isDirect = (st: LaunchSetup, placed: Slot, s: StepSpec) => routeOf(st, placed, s).kind === 'node';
  /** The argv and environment on the route the packer would take, and whether it costs a job step. */
  const launchArgv = (st: LaunchSetup, p: typeof pool, placed: Slot, s: StepSpec, dir: string) => {
    const route = routeOf(st, placed, s);
    return { ...argvFor(st, p, placed, s, dir, route), direct: route.kind === 'node', jobStep: route.kind === 'scheduler' };
  };
  const step = (over: Partial<StepSpec> = {}): StepSpec => ({ args: ['/app/job.sh', '-x'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: true, cwd: '.', ...over });
  /** Tasks per node index, cores and GPUs by index from 0: what findSlot would give on an empty pool. */
  const slot = (...parts: [node: number, tasks: number, cores: number[], gpus?: number[]][]): Slot => ({
    nodes: parts.map(([node, tasks, cores, gpus]) => ({ node, tasks, cores, gpus: gpus ?? [] })),
  });
  const runDir = '/ens/runs/1';

  it("a batch-script step whose first placed node is the packer's runs once, directly, with THEMIS_LAUNCH naming every placed node", () => {
    const s = step({ tasks: 2, coresPerTask: 4 });
    const placed = findSlot(pool, s)!;
    expect(placed.nodes.map((p) => p.node)).toEqual([0, 1]);
    const st = setup();
    expect(isDirect(st, placed, s)).toBe(true);
    const r = launchArgv(st, pool, placed, s, runDir);
    expect(r.direct).toBe(true);
    expect(r.argv).toEqual(['/ens/runs/1/job.sh', '-x']);
    expect(r.env.THEMIS_LAUNCH).toBe('srun --exact -N 2 -n 2 -c 4 --nodelist=n1,n2');
    expect(r.env.CUDA_VISIBLE_DEVICES).toBe('');
    expect(r.jobStep).toBe(false);
  });

  it('a batch-script step placed on another node runs once, through one srun -N1 -n1 --overlap task there, never srun -n <tasks>', () => {
    const s = step({ tasks: 2, coresPerTask: 2, gpusPerTask: 1, timeout: 2 });
    const placed = slot([1, 2, [0, 1, 2, 3], [0, 1]]);
    const st = setup();
    expect(isDirect(st, placed, s)).toBe(false);
    const r = launchArgv(st, pool, placed, s, runDir);
    expect(r.direct).toBe(false);
    // The scheduler gives an --overlap task every GPU of its node: env puts back the placed ones.
    expect(r.argv).toEqual([
      'srun',
      '-N',
      '1',
      '-n',
      '1',
      '--overlap',
      '--nodelist=n2',
      '-t',
      '2',
      'env',
      'CUDA_VISIBLE_DEVICES=0,1',
      'ROCR_VISIBLE_DEVICES=0,1',
      'HIP_VISIBLE_DEVICES=0,1',
      '/ens/runs/1/job.sh',
      '-x',
    ]);
    expect(r.env.THEMIS_LAUNCH).toBe('srun --exact -N 1 -n 2 -c 2 --gres=gpu:2 --nodelist=n2 -t 2');
    expect(r.jobStep).toBe(true);
  });

  it('a multi-node batch-script step starting on another node runs on its first node only; its tasks go to all of them', () => {
    const s = step({ tasks: 3, coresPerTask: 2 });
    const three = createPool([...pool.nodes, { name: 'n3', cores: 4, gpus: [] }]);
    const placed = slot([1, 2, [0, 1, 2, 3]], [2, 1, [0, 1]]);
    const r = launchArgv(setup(), three, placed, s, runDir);
    expect(r.argv.slice(0, 7)).toEqual(['srun', '-N', '1', '-n', '1', '--overlap', '--nodelist=n2']);
    expect(r.argv.filter((a) => a === '-n')).toHaveLength(1);
    expect(r.env.THEMIS_LAUNCH).toBe('srun --exact -N 2 -n 3 -c 2 --nodelist=n2,n3');
  });

  it("on Flux and LSF (no one-task launcher on a named node) the script runs once on the packer's node, holding none of its GPUs or cores", () => {
    const s = step({ tasks: 2, coresPerTask: 2, gpusPerTask: 1 });
    const placed = slot([1, 2, [0, 1, 2, 3], [0, 1]]);
    for (const scheduler of ['flux', 'lsf'] as const) {
      const st = setup({ scheduler, bind: true });
      expect(isDirect(st, placed, s), scheduler).toBe(true);
      const r = launchArgv(st, pool, placed, s, runDir);
      expect(r.argv, scheduler).toEqual(['/ens/runs/1/job.sh', '-x']);
      expect(r.env.CUDA_VISIBLE_DEVICES, scheduler).toBe('');
      expect(r.jobStep).toBe(false);
    }
    expect(launchArgv(setup({ scheduler: 'flux' }), pool, placed, s, runDir).env.THEMIS_LAUNCH).toBe('flux run -N 1 -n 2 -c 2 -g 1 --requires=host:n2');
  });

  it("non-batch steps keep their routes: one task on the packer's node direct, tasks elsewhere through placedLaunch; no THEMIS_LAUNCH", () => {
    const one = step({ batchScript: false, gpusPerTask: 1 });
    const here = slot([0, 1, [2], [1]]);
    const r = launchArgv(setup({ bind: true }), pool, here, one, runDir);
    expect(r.argv).toEqual(['taskset', '-c', '2', '/app/job.sh', '-x']);
    expect(r.env).toEqual({ OMP_NUM_THREADS: '1', CUDA_VISIBLE_DEVICES: '1', ROCR_VISIBLE_DEVICES: '1', HIP_VISIBLE_DEVICES: '1' });
    const two = step({ batchScript: false, tasks: 2 });
    const r2 = launchArgv(setup(), pool, slot([1, 2, [0, 1]]), two, runDir);
    expect(r2.argv).toEqual(['srun', '--exact', '-N', '1', '-n', '2', '-c', '1', '--nodelist=n2', '/app/job.sh', '-x']);
    expect(r2.env.THEMIS_LAUNCH).toBeUndefined();
  });

  it('local and --launcher direct: everything direct; THEMIS_LAUNCH is empty locally (the script runs its program itself)', () => {
    const s = step({ tasks: 2 });
    const local = launchArgv(setup({ scheduler: 'local' }), pool, slot([0, 2, [0, 1]]), s, runDir);
    expect(local.direct).toBe(true);
    expect(local.env.THEMIS_LAUNCH).toBe('');
    const forced = launchArgv(setup({ mode: 'direct' }), pool, slot([1, 2, [0, 1]]), s, runDir);
    expect(forced.argv).toEqual(['/ens/runs/1/job.sh', '-x']);
    expect(forced.env.THEMIS_LAUNCH).toBe('srun --exact -N 1 -n 2 -c 1 --nodelist=n2');
  });

  it("with launchers on other nodes a batch-script step is forked by its first node's launcher, with that node's GPUs; a one-task step too", () => {
    const st = setup({ nodeLaunchers: true, bind: true });
    const s = step({ tasks: 2, coresPerTask: 2, gpusPerTask: 1 });
    const placed = slot([1, 2, [0, 1, 2, 3], [0, 1]]);
    expect(routeOf(st, placed, s)).toEqual({ kind: 'node', node: 1 });
    const r = launchArgv(st, pool, placed, s, runDir);
    expect(r.argv).toEqual(['taskset', '-c', '0,1,2,3', '/ens/runs/1/job.sh', '-x']);
    expect(r.env).toMatchObject({ CUDA_VISIBLE_DEVICES: '0,1', THEMIS_LAUNCH: 'srun --exact -N 1 -n 2 -c 2 --gres=gpu:2 --nodelist=n2' });
    const one = step({ batchScript: false });
    expect(routeOf(st, slot([1, 1, [3]]), one)).toEqual({ kind: 'node', node: 1 });
    expect(routeOf(st, slot([1, 2, [2, 3]]), step({ batchScript: false, tasks: 2 }))).toEqual({ kind: 'scheduler' });
    expect(routeOf(setup({ nodeLaunchers: true, mode: 'srun' }), slot([1, 1, [3]]), one)).toEqual({ kind: 'scheduler' });
  });

  it('spawnRequest carries THEMIS_LAUNCH beside the THEMIS_* variables of every step', () => {
    const placed = slot([1, 2, [0, 1]]);
    const req = spawnRequest(setup(), pool, placed, {
      key: 'k',
      runId: 1,
      runDir,
      setupDir: '/ens/.themis_setup',
      stepIndex: 0,
      attempt: 0,
      step: step({ tasks: 2 }),
      route: routeOf(setup(), placed, step({ tasks: 2 })),
    });
    expect(req.argv.slice(0, 7)).toEqual(['srun', '-N', '1', '-n', '1', '--overlap', '--nodelist=n2']);
    expect(req.env).toMatchObject({ THEMIS_LAUNCH: 'srun --exact -N 1 -n 2 -c 1 --nodelist=n2', THEMIS_RUN_ID: '1', THEMIS_RUN_DIR: runDir, THEMIS_STEP: '0', OMP_NUM_THREADS: '1' });
    expect(req.cwd).toBe(runDir);
  });
});

/**
 * A fake `srun` on PATH records its argv; the step "runs" by the fake exiting 0. Checks which
 * steps the packer starts directly and which through the scheduler's launcher.
 */
describe('launch policy (fake srun on PATH)', () => {
  it('single-node steps on the packer node start directly; multi-node steps go through srun --exact', async () => {
    const e = makeEnsemble([]);
    const bin = path.join(e.root, 'bin');
    const srunLog = path.join(e.root, 'srun.log');
    writeScript(path.join(bin, 'srun'), `echo "$THEMIS_RUN_ID $*" >> "${srunLog}"`);
    const direct = path.join(e.root, 'direct.log');
    const app = ['/bin/sh', '-c', 'echo "$THEMIS_RUN_ID $OMP_NUM_THREADS" >> "$0"', direct];
    const e2 = makeEnsemble(
      [
        { steps: [{ args: app, coresPerTask: 2 }] }, // one task: direct on the packer's node
        { steps: [{ args: app, tasks: 4, coresPerTask: 2 }] }, // 8 cores: across both nodes, srun
        { steps: [{ args: app, tasks: 2, coresPerTask: 1, batchScript: false }] }, // several tasks, one node: srun
      ],
      { root: e.root, scheduler: 'slurm' },
    );
    const env = { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_ID: '4242', SLURM_JOB_NODELIST: 'vm,other', SLURM_JOB_CPUS_PER_NODE: '4(x2)' };
    const r = await startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2', '--max-concurrency', '1'], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(e2.root, 3).map((s) => s.status)).toEqual(['successful', 'successful', 'successful']);
    expect(statuses(e2.root, 3).map((s) => s.jobId)).toEqual(['4242', '4242', '4242']);
    expect(fs.readFileSync(direct, 'utf8').trim().split('\n')).toEqual(['1 2']);
    const sruns = fs.readFileSync(srunLog, 'utf8').trim().split('\n');
    expect(sruns).toHaveLength(2);
    expect(sruns[0]).toMatch(/^2 --exact -N 2 -n 4 -c 2 --nodelist=vm,other /);
    expect(sruns[1]).toMatch(/^3 --exact -N 1 -n 2 -c 1 --nodelist=vm /);
    const summary = JSON.parse(
      fs.readFileSync(
        fs
          .readdirSync(path.join(e2.setupDir, 'logs'))
          .map((f) => path.join(e2.setupDir, 'logs', f))
          .find((f) => f.endsWith('.summary.json'))!,
        'utf8',
      ),
    );
    expect(summary.schedulerSteps).toBe(2);
  }, 30_000);

  it('--bind pins each direct step to the cores it was given; OMP_NUM_THREADS and THEMIS_* are set', async () => {
    const e = makeEnsemble([]);
    const out = path.join(e.root, 'out');
    const app = ['/bin/sh', '-c', 'echo "$THEMIS_RUN_ID $(grep Cpus_allowed_list /proc/self/status | cut -f2) $OMP_NUM_THREADS $THEMIS_STEP $THEMIS_SETUP_DIR $THEMIS_RUN_DIR" >> "$0"', out];
    const e2 = makeEnsemble([{ steps: [{ args: app }] }, { steps: [{ args: app }] }], { root: e.root });
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '2', '--bind', '--max-concurrency', '1']).done;
    expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(out, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual([`1 0 1 0 ${e2.setupDir} ${e2.runDir(1)}`, `2 0 1 0 ${e2.setupDir} ${e2.runDir(2)}`]);
  }, 30_000);

  it('--launcher direct forces every step to start directly', async () => {
    const e = makeEnsemble([]);
    const bin = path.join(e.root, 'bin');
    const srunLog = path.join(e.root, 'srun.log');
    writeScript(path.join(bin, 'srun'), `echo "$*" >> "${srunLog}"`);
    const e2 = makeEnsemble([{ steps: [{ args: ['/bin/true'], tasks: 2 }] }], { root: e.root, scheduler: 'slurm' });
    const env = { PATH: `${bin}:${process.env.PATH}`, SLURM_JOB_ID: '7', SLURM_JOB_NODELIST: 'vm', SLURM_JOB_CPUS_PER_NODE: '4' };
    const r = await startPack(['--setup-dir', e2.setupDir, '--launcher', 'direct'], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(srunLog)).toBe(false);
  }, 30_000);
});
