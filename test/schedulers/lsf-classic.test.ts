import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXECUTE_ALLOC_OPTIONS, GEN_ALLOCATION_FLAGS, allocationProblems } from '../../src/model/allocation.js';
import type { StepLaunch } from '../../src/model/resources.js';
import { packerLsfFlavor } from '../../src/pack/resources.js';
import { DEFAULT_ALLOCATION } from '../../src/render/generate.js';
import type { Placement } from '../../src/schedulers/adapter.js';
import { queryJobStates, submitScriptSync } from '../../src/schedulers/commands.js';
import { detectLsfFlavor, discoverAllocation, getAdapter } from '../../src/schedulers/index.js';
import { FIXTURES, tempDirs, writeScript } from '../helpers/cli.js';

const FAKE_BIN = path.join(FIXTURES, 'bin');
const tmp = tempDirs('themis-lsf-');
const step = (s: Partial<StepLaunch> = {}): StepLaunch => ({ tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, ...s });
const classic = getAdapter('lsf', { lsfFlavor: 'classic' });

/** A PATH holding only these (empty) executables. */
function binWith(names: string[]): string {
  const dir = tmp();
  for (const n of names) writeScript(path.join(dir, n), 'exit 0\n');
  return dir;
}

/** The fakes first on PATH, as classic LSF (THEMIS_FAKE_LSF=classic), with a log of their calls. */
function classicFakes(extra: Record<string, string> = {}) {
  const dir = tmp();
  const log = path.join(dir, 'fake.log');
  const env: NodeJS.ProcessEnv = { PATH: `${FAKE_BIN}:${process.env.PATH}`, THEMIS_FAKE_LOG: log, THEMIS_FAKE_LSF: 'classic', ...extra };
  const calls = () =>
    fs.existsSync(log)
      ? fs
          .readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { tool: string; argv: string[]; env: Record<string, string>; stdin?: string })
      : [];
  return { dir, env, calls };
}

describe('choosing the LSF flavour', () => {
  it('getAdapter: csm by default (what older ensembles were rendered for), classic when asked; detection is CSM only where jsrun or lrun is on PATH', () => {
    expect(getAdapter('lsf').launchPrefix(step())[0]).toBe('jsrun');
    expect(getAdapter('lsf', { lsfFlavor: 'csm', lsfLauncher: 'lrun' }).launchPrefix(step())[0]).toBe('lrun');
    expect(getAdapter('lsf', { lsfFlavor: 'classic' })).toBe(classic);
    expect(detectLsfFlavor({ PATH: binWith(['bsub', 'jsrun']) })).toEqual({ flavor: 'csm', why: '`jsrun` is on PATH' });
    expect(detectLsfFlavor({ PATH: binWith(['bsub', 'lrun']) }).flavor).toBe('csm');
    expect(detectLsfFlavor({ PATH: binWith(['bsub', 'blaunch']) })).toEqual({ flavor: 'classic', why: 'no `jsrun` or `lrun` on PATH' });
    expect(detectLsfFlavor({})).toMatchObject({ flavor: 'classic' });
  });

  it("a packer reads the batch script's THEMIS_LSF_FLAVOR first, else PATH", () => {
    const csmPath = binWith(['jsrun']);
    expect(packerLsfFlavor({ PATH: csmPath })).toBe('csm');
    expect(packerLsfFlavor({ PATH: csmPath, THEMIS_LSF_FLAVOR: 'classic' })).toBe('classic');
    expect(packerLsfFlavor({ PATH: binWith([]), THEMIS_LSF_FLAVOR: 'bogus' })).toBe('classic');
  });

  it('classic LSF needs the cores per node; the messages name the flag or the option', () => {
    const base = { ...DEFAULT_ALLOCATION, lsfFlavor: 'classic' as const };
    expect(allocationProblems(base, GEN_ALLOCATION_FLAGS, 'lsf')).toEqual([
      "--cores-per-node: classic LSF counts job slots, not nodes, so it needs the cores of one node, got undefined; give them (`bhosts` shows each host's MAX slots), or --lsf-flavor csm for IBM CSM",
    ]);
    expect(allocationProblems(base, EXECUTE_ALLOC_OPTIONS, 'lsf')[0]).toMatch(/^coresPerNode: .* or lsfFlavor csm for IBM CSM$/);
    expect(allocationProblems({ ...base, coresPerNode: 36 }, GEN_ALLOCATION_FLAGS, 'lsf')).toEqual([]);
    // Only LSF needs it; CSM counts nodes.
    expect(allocationProblems(base, GEN_ALLOCATION_FLAGS, 'slurm')).toEqual([]);
    expect(allocationProblems({ ...base, lsfFlavor: 'csm' }, GEN_ALLOCATION_FLAGS, 'lsf')).toEqual([]);
    expect(allocationProblems({ ...base, coresPerNode: 0, lsfFlavor: 'openlava' }, GEN_ALLOCATION_FLAGS, 'lsf')).toEqual([
      '--lsf-flavor: must be one of classic, csm, got "openlava"; give classic (bsub -n, blaunch) or csm (IBM CSM: bsub -nnodes, jsrun)',
      '--cores-per-node: must be an integer >= 1, got 0; give the cores (job slots) of one node',
    ]);
  });
});

describe('classic LSF launch commands (no real LSF here)', () => {
  const twoNodes: Placement = {
    nodes: [
      { name: 'n1', tasks: 2, cores: [0, 1], gpus: ['0'] },
      { name: 'n2', tasks: 1, cores: [0], gpus: ['1'] },
    ],
  };

  it('a placed step goes through `blaunch -z "HOST …"`, each host once per task; GPUs in its environment when every host gave the same ids', () => {
    expect(classic.placedLaunch(step({ tasks: 3 }), twoNodes, '419')).toEqual(['blaunch', '-z', 'n1 n1 n2']);
    // Different GPU ids per host: blaunch gives every task one environment, so LSF's is left alone.
    expect(classic.placedLaunch(step({ tasks: 3, gpusPerTask: 1 }), twoNodes, '419')).toEqual(['blaunch', '-z', 'n1 n1 n2']);
    const one: Placement = { nodes: [{ name: 'n2', tasks: 1, cores: [3], gpus: ['2', '3'] }] };
    expect(classic.placedLaunch(step({ gpusPerTask: 2 }), one, null)).toEqual(['blaunch', '-z', 'n2', 'env', 'CUDA_VISIBLE_DEVICES=2,3', 'ROCR_VISIBLE_DEVICES=2,3', 'HIP_VISIBLE_DEVICES=2,3']);
  });

  it('%%themis_launch%% is nothing for one task and `mpirun -n T` for more (classic LSF has no launcher of its own)', () => {
    expect(classic.launchPrefix(step())).toEqual([]);
    expect(classic.launchPrefix(step({ tasks: 4, coresPerTask: 2 }))).toEqual(['mpirun', '-n', '4']);
  });

  it('fake blaunch starts the command once per host name and exits with the first failure', () => {
    const f = classicFakes();
    const out = path.join(f.dir, 'out');
    const r = spawnSync('blaunch', ['-z', 'n1 n1 n2', 'sh', '-c', `echo "$LSF_BLAUNCH_HOST" >> ${out}`], { env: f.env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(fs.readFileSync(out, 'utf8').trim().split('\n').sort()).toEqual(['n1', 'n1', 'n2']);
    expect(spawnSync('blaunch', ['-z', 'n1', 'sh', '-c', 'exit 3'], { env: f.env }).status).toBe(3);
    expect(f.calls()[0]).toMatchObject({ tool: 'blaunch', argv: ['-z', 'n1 n1 n2', 'sh', '-c', expect.any(String)] });
  });
});

describe('classic LSF discovery, as OpenLava sets up a job (no real LSF here)', () => {
  it('no LSB_DJOB_HOSTFILE: LSB_MCPU_HOSTS with its trailing space; every host is a node, the first too; job id from LSB_JOBID', () => {
    expect(classic.discover({ LSB_JOBID: '419', LSB_MCPU_HOSTS: 'vm 2 ', LSB_HOSTS: 'vm vm' }, () => null)).toEqual({
      scheduler: 'lsf',
      jobId: '419',
      nodes: [{ name: 'vm', cores: 2, gpus: [] }],
      endsAt: null,
      lsfFlavor: 'classic',
    });
    expect(classic.discover({ LSB_JOBID: '420', LSB_MCPU_HOSTS: 'node1 2 node2 2 ' }, () => null)!.nodes).toEqual([
      { name: 'node1', cores: 2, gpus: [] },
      { name: 'node2', cores: 2, gpus: [] },
    ]);
    // CSM reads the same variable with its launch node first, and drops it.
    expect(getAdapter('lsf').discover({ LSB_JOBID: '420', LSB_MCPU_HOSTS: 'node1 2 node2 2 ' }, () => null)!.nodes).toEqual([{ name: 'node2', cores: 2, gpus: [] }]);
  });

  it('LSB_HOSTS (one name per slot) when LSB_MCPU_HOSTS is missing too; a hostfile when IBM LSF writes one', () => {
    expect(classic.discover({ LSB_JOBID: '7', LSB_HOSTS: 'node1 node1 node2' }, () => null)!.nodes).toEqual([
      { name: 'node1', cores: 2, gpus: [] },
      { name: 'node2', cores: 1, gpus: [] },
    ]);
    const hostfile = path.join(tmp(), 'hostfile');
    fs.writeFileSync(hostfile, 'node1\nnode1\nnode2\nnode2\n');
    expect(classic.discover({ LSB_JOBID: '7', LSB_DJOB_HOSTFILE: hostfile, LSB_MCPU_HOSTS: 'x 1 ' }, () => null)!.nodes.map((n) => [n.name, n.cores])).toEqual([
      ['node1', 2],
      ['node2', 2],
    ]);
  });

  it('discoverAllocation reads an LSF job as the flavour it is given', () => {
    const env = { LSB_JOBID: '77', LSB_MCPU_HOSTS: 'login 1 c1 4 ' };
    expect(discoverAllocation(env, 'lsf', () => null, { lsfFlavor: 'classic' }).nodes.map((n) => n.name)).toEqual(['login', 'c1']);
    expect(discoverAllocation(env, 'lsf', () => null).nodes.map((n) => n.name)).toEqual(['c1']);
  });
});

describe('classic LSF job states: `bjobs -a -w`, no -o (against a fake bjobs answering as OpenLava)', () => {
  it('asks `bjobs -a -w IDS` and reads STAT from its untruncated lines; a pending job has no EXEC_HOST', () => {
    expect(classic.jobStatesCommand(['419', '420'])).toEqual({ argv: ['bjobs', '-a', '-w', '419', '420'] });
    const out = [
      'JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME',
      '419     root    RUN   normal     vm          vm:vm       themis-1   Nov 25 13:00',
      '420     root    PEND  normal     vm                      themis-2   Nov 25 13:01',
      '421     root    DONE  normal     vm          vm:vm       themis-3   Nov 25 12:00',
    ].join('\n');
    expect([...classic.parseJobStates(out, ['419', '420', '421', '422'])]).toEqual([
      ['419', 'running'],
      ['420', 'pending'],
      ['421', 'gone'],
      ['422', 'gone'],
    ]);
  });

  it('fake bjobs: listed jobs by state; "No unfinished job found" or "Job <N> is not found" with exit 255 means gone, not an error', async () => {
    const states = path.join(tmp(), 'states');
    fs.writeFileSync(states, '419 RUN\n420 PEND\n');
    const f = classicFakes({ THEMIS_FAKE_STATES: states });
    expect([...(await queryJobStates('lsf', ['419', '420', '9'], { env: f.env, lsfFlavor: 'classic' }))]).toEqual([
      ['419', 'running'],
      ['420', 'pending'],
      ['9', 'gone'],
    ]);
    fs.writeFileSync(states, '');
    expect([...(await queryJobStates('lsf', ['419'], { env: f.env, lsfFlavor: 'classic' }))]).toEqual([['419', 'gone']]);
    expect(f.calls().map((c) => c.argv)).toEqual([
      ['-a', '-w', '419', '420', '9'],
      ['-a', '-w', '419'],
    ]);
    const noJobs = spawnSync('bjobs', ['-a', '-w'], { env: f.env, encoding: 'utf8' });
    expect([noJobs.status, noJobs.stderr]).toEqual([255, 'No unfinished job found\n']);
    // Asked the IBM way, classic LSF refuses -o: the state is unknown, never "gone".
    expect([...(await queryJobStates('lsf', ['419'], { env: f.env }))]).toEqual([['419', 'unknown']]);
  });
});

describe('classic LSF submission (against a fake bsub that refuses what OpenLava refuses)', () => {
  it('fake bsub in classic mode refuses `#BSUB -nnodes` as OpenLava does, and accepts `#BSUB -n`', () => {
    const f = classicFakes();
    const csm = writeScript(path.join(f.dir, 'csm.sh'), '#BSUB -nnodes 1\nexit 0\n');
    expect(() => submitScriptSync('lsf', csm, { env: f.env, what: 'allocation 1', fix: 'fix it' })).toThrow(/The number of processors must be a positive integer\. Job not submitted\./);
    const ok = writeScript(path.join(f.dir, 'classic.sh'), '#BSUB -n 2\n#BSUB -R "span[ptile=2]"\nexit 0\n');
    expect(submitScriptSync('lsf', ok, { env: f.env, what: 'allocation 1', fix: 'fix it' }).jobId).toBe('4242');
  });
});
