import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeScript } from '../helpers/cli.js';
import { makeEnsemble, startPack, statuses } from './helpers.js';

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
