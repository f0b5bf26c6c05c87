import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { applyOverrides, describeResources, discoverResources } from '../../src/pack/resources.js';

const noRun = () => null;

describe('discovering the allocation', () => {
  it('outside any scheduler: this machine, with CUDA_VISIBLE_DEVICES as its GPUs', () => {
    const info = discoverResources({ CUDA_VISIBLE_DEVICES: '2,3' }, {}, null, noRun);
    expect(info.scheduler).toBe('local');
    expect(info.nodes).toEqual([{ name: os.hostname(), cores: os.availableParallelism(), gpus: ['2', '3'] }]);
  });

  it('inside Slurm: nodes, cores and GPUs from the environment', () => {
    const env = { SLURM_JOB_ID: '99', SLURM_JOB_NODELIST: 'node[01-02]', SLURM_JOB_CPUS_PER_NODE: '32(x2)', CUDA_VISIBLE_DEVICES: '0,1' };
    const info = discoverResources(env, {}, 'slurm', noRun);
    expect(info.jobId).toBe('99');
    expect(info.nodes.map((n) => [n.name, n.cores, n.gpus.length])).toEqual([
      ['node01', 32, 2],
      ['node02', 32, 2],
    ]);
  });

  it('--nodes, --cores and --gpus override what was found', () => {
    const base = { scheduler: 'local' as const, jobId: null, endsAt: null, nodes: [{ name: 'a', cores: 4, gpus: ['0'] }] };
    const o = applyOverrides(base, { nodes: 3, cores: 8, gpus: 2 });
    expect(o.nodes).toEqual([
      { name: 'a', cores: 8, gpus: ['0', '1'] },
      { name: 'a-1', cores: 8, gpus: ['0', '1'] },
      { name: 'a-2', cores: 8, gpus: ['0', '1'] },
    ]);
    expect(applyOverrides(base, { nodes: 'x,y', gpus: 0 }).nodes.map((n) => [n.name, n.gpus.length])).toEqual([
      ['x', 0],
      ['y', 0],
    ]);
    expect(() => applyOverrides(base, { cores: 0 })).toThrow(/--cores 0/);
    expect(describeResources(o)).toBe('3 nodes (a,a-1,a-2) x 8 cores, 2 GPUs each');
  });
});
