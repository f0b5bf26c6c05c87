import { describe, expect, it } from 'vitest';
import { EXECUTE_ALLOC_OPTIONS, GEN_ALLOCATION_FLAGS, allocationProblems } from '../../src/model/allocation.js';
import { DEFAULT_ALLOCATION } from '../../src/render/generate.js';

describe('allocation settings: one check, one set of messages', () => {
  it('accepts the defaults', () => {
    expect(allocationProblems(DEFAULT_ALLOCATION, GEN_ALLOCATION_FLAGS)).toEqual([]);
  });

  it("names gen's flags, says what is wrong and what to give", () => {
    const bad = { ...DEFAULT_ALLOCATION, nodes: 0, allocations: 1.5, repeats: -1, walltime: '10m', earlyStop: -2, gpusPerNode: -1, name: ' ' };
    expect(allocationProblems(bad, GEN_ALLOCATION_FLAGS)).toEqual([
      '--nodes: must be an integer >= 1, got 0; give the nodes each allocation asks for',
      '--allocations: must be an integer >= 1, got 1.5; give how many batch scripts to split the runs over',
      '--repeats: must be an integer >= 0, got -1; give how often an allocation that ends with work left is resubmitted (0 = never)',
      '--walltime: must be minutes >= 0, got "10m"; give each allocation\'s time limit (0 = the scheduler\'s default)',
      '--early-stop: must be minutes >= 0, got -2; give how long before the end of an allocation no new run starts',
      '--gpus-per-node: must be an integer >= 0, got -1; give the GPUs per node to ask for, or leave it out to ask for what the runs need',
      '--name: the job name must not be empty, got " "; give a name, or leave it out for "themis"',
    ]);
  });

  it('executeAlloc gets the same messages under its option names (walltime is `timeout` there)', () => {
    const bad = { ...DEFAULT_ALLOCATION, nodes: 0, walltime: -1, maxConcurrency: 0 };
    expect(allocationProblems(bad, EXECUTE_ALLOC_OPTIONS)).toEqual([
      'nodes: must be an integer >= 1, got 0; give the nodes each allocation asks for',
      "timeout: must be minutes >= 0, got -1; give each allocation's time limit (0 = the scheduler's default)",
      'maxConcurrency: must be an integer >= 1, got 0; give the most steps each allocation runs at once, or null to fill its cores',
    ]);
    expect(allocationProblems({ ...DEFAULT_ALLOCATION, maxConcurrency: null }, EXECUTE_ALLOC_OPTIONS)).toEqual([]);
  });
});
