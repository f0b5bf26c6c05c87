import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AllocationInfo } from '../../src/schedulers/adapter.js';
import { FLUX_JOBID_ARGV, FLUX_RESOURCE_ARGV } from '../../src/schedulers/flux/index.js';
import { getAdapter } from '../../src/schedulers/index.js';
import { FIXTURES, makeTempDir } from '../helpers/cli.js';

interface EnvFixture {
  env: Record<string, string>;
  hostfile?: string;
  resourceList?: string;
  timeleft?: string;
  expect: { jobId: string; nodes: AllocationInfo['nodes'] };
}
const load = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, 'env', name), 'utf8')) as EnvFixture;

/** A `run` callback that answers from a table and records what was asked. */
function answering(table: Record<string, string | null>) {
  const asked: string[][] = [];
  const run = (argv: string[]) => {
    asked.push(argv);
    return table[argv.join(' ')] ?? null;
  };
  return { run, asked };
}

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});

describe('Slurm discovery from recorded environments', () => {
  it('2 nodes x 36 cores with 2 GPUs each; end time from squeue', () => {
    const f = load('slurm-2node-gpu.json');
    const { run, asked } = answering({ 'squeue -h -j 812345 -o %e': '2026-11-25T14:00:00\n' });
    const info = getAdapter('slurm').discover(f.env, run)!;
    expect(info.jobId).toBe(f.expect.jobId);
    expect(info.nodes).toEqual(f.expect.nodes);
    expect(info.endsAt).toBe(new Date('2026-11-25T14:00:00').getTime());
    expect(asked).toEqual([['squeue', '-h', '-j', '812345', '-o', '%e']]);
  });

  it('uneven CPU counts per node, zero-padded names; no squeue means no end time', () => {
    const f = load('slurm-mixed-nodes.json');
    const info = getAdapter('slurm').discover(f.env, () => null)!;
    expect(info.nodes).toEqual(f.expect.nodes);
    expect(info.endsAt).toBeNull();
  });

  it('outside a job there is nothing to discover', () => {
    expect(getAdapter('slurm').discover({}, () => null)).toBeNull();
  });

  it('an unlimited job (squeue says N/A or Unknown) has no end time', () => {
    const env = { SLURM_JOB_ID: '5', SLURM_JOB_NODELIST: 'n1', SLURM_CPUS_ON_NODE: '8' };
    expect(getAdapter('slurm').discover(env, () => 'Unknown')!.endsAt).toBeNull();
    expect(getAdapter('slurm').discover(env, () => 'N/A')!.nodes).toEqual([{ name: 'n1', cores: 8, gpus: [] }]);
  });
});

describe('LSF discovery from recorded environments (no real LSF here)', () => {
  it('LSB_DJOB_HOSTFILE: one line per slot, the launch node dropped', () => {
    const f = load('lsf-2node.json');
    const dir = makeTempDir();
    temps.push(dir);
    const hostfile = path.join(dir, 'hostfile');
    fs.writeFileSync(hostfile, f.hostfile!);
    const info = getAdapter('lsf').discover({ ...f.env, LSB_DJOB_HOSTFILE: hostfile }, () => null)!;
    expect(info.jobId).toBe(f.expect.jobId);
    expect(info.nodes).toEqual(f.expect.nodes);
  });

  it('LSB_MCPU_HOSTS when the hostfile is missing or unreadable', () => {
    const f = load('lsf-2node.json');
    const info = getAdapter('lsf').discover({ ...f.env, LSB_DJOB_HOSTFILE: '/nonexistent/hostfile' }, () => null)!;
    expect(info.nodes).toEqual(f.expect.nodes);
    const single = load('lsf-mcpu-only.json');
    expect(getAdapter('lsf').discover(single.env, () => null)!.nodes).toEqual(single.expect.nodes);
  });
});

describe('Flux discovery from a recorded `flux resource list` (no real Flux here)', () => {
  it('2 nodes x 64 cores x 8 GPUs, time left from `flux job timeleft`', () => {
    const f = load('flux-2node.json');
    const { run, asked } = answering({ [FLUX_RESOURCE_ARGV.join(' ')]: f.resourceList!, 'flux job timeleft': f.timeleft! });
    const before = Date.now();
    const info = getAdapter('flux').discover(f.env, run)!;
    expect(info.jobId).toBe(f.expect.jobId);
    expect(info.nodes).toEqual(f.expect.nodes);
    expect(info.endsAt! - before).toBeGreaterThanOrEqual(3540 * 1000 - 50);
    expect(info.endsAt! - Date.now()).toBeLessThanOrEqual(3540 * 1000);
    expect(asked[0]).toEqual(FLUX_RESOURCE_ARGV);
  });

  it('a `flux batch` script has no FLUX_JOB_ID: the id from `flux getattr jobid`, else FLUX_ENCLOSING_ID', () => {
    const env = { FLUX_URI: 'local:///tmp/flux-x/local-0', FLUX_ENCLOSING_ID: 'ƒZ2dV75' };
    const { run, asked } = answering({ 'flux getattr jobid': 'ƒZ2dV75\n' });
    expect(getAdapter('flux').discover(env, run)!.jobId).toBe('ƒZ2dV75');
    expect(asked).toContainEqual(FLUX_JOBID_ARGV);
    // getattr failed (an older broker): the enclosing id is the same job.
    expect(getAdapter('flux').discover(env, () => null)!.jobId).toBe('ƒZ2dV75');
    expect(getAdapter('flux').discover({ FLUX_URI: env.FLUX_URI }, () => null)!.jobId).toBeNull();
    // FLUX_JOB_ID, where set, is asked nothing more.
    const set = answering({});
    expect(getAdapter('flux').discover({ ...env, FLUX_JOB_ID: 'ƒA' }, set.run)!.jobId).toBe('ƒA');
    expect(set.asked).not.toContainEqual(FLUX_JOBID_ARGV);
  });

  it('outside a Flux instance there is nothing to discover', () => {
    expect(getAdapter('flux').discover({}, () => null)).toBeNull();
  });
});

describe('local discovery', () => {
  it('this machine: its cores; GPUs from CUDA_VISIBLE_DEVICES, else nvidia-smi -L', () => {
    const local = getAdapter('local');
    const a = local.discover({ CUDA_VISIBLE_DEVICES: '2,3' }, () => null)!;
    expect(a.nodes).toEqual([{ name: os.hostname(), cores: os.availableParallelism(), gpus: ['2', '3'] }]);
    expect(a.jobId).toBeNull();
    const smi = 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2)\n';
    expect(local.discover({}, (argv) => (argv.join(' ') === 'nvidia-smi -L' ? smi : null))!.nodes[0]!.gpus).toEqual(['0', '1']);
    expect(local.discover({}, () => null)!.nodes[0]!.gpus).toEqual([]);
    expect(local.discover({ CUDA_VISIBLE_DEVICES: '' }, () => smi)!.nodes[0]!.gpus).toEqual([]);
  });
});
