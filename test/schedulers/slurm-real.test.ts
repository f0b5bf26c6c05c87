/**
 * `themis submit` and allocation states against the real Slurm test cluster (test/slurm/cluster.sh):
 * the real sbatch must accept the rendered header and print a job id themis parses, and the real
 * squeue must tell pending/running from gone. Skipped (and says so) without a cluster; in CI
 * (THEMIS_SLURM_REQUIRED=1) it must run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { submitAllocations } from '../../src/api/submit.js';
import { allocationStates, readJobs } from '../../src/store/jobs.js';
import { readEnsemble } from '../../src/store/records.js';
import { ensembleRecord, writeHandEnsemble } from '../api/helpers.js';
import { makeTempDir } from '../helpers/cli.js';
import { slurmAvailable, slurmRequired, slurmUnavailableReason, waitFor, waitJobGone } from '../slurm/cluster.js';

const available = slurmAvailable();
if (!available && slurmRequired) {
  throw new Error(`THEMIS_SLURM_REQUIRED=1 but no Slurm test cluster is reachable: ${slurmUnavailableReason()}`);
}
if (!available) console.warn(`\n*** real-Slurm submit tests SKIPPED: no test cluster reachable (${slurmUnavailableReason()}) ***\n`);

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

/** A Slurm ensemble whose (user) template keeps the built-in header but runs a one-liner, not the packer. */
function ensemble(partition: string | null) {
  const root = makeTempDir("themis-sreal-it's ");
  temps.push(root);
  const tpl = path.join(root, 'probe.sh.hbs');
  fs.writeFileSync(tpl, '#!/bin/bash\n{{#each directives}}\n{{this}}\n{{/each}}\nset -euo pipefail\necho "job $SLURM_JOB_ID allocation {{allocation}}" > {{quote setupDir}}/ran-{{allocation}}\n');
  const setupDir = writeHandEnsemble(root, [{}], {
    scheduler: 'slurm',
    allocation: { ...ensembleRecord(root, root).allocation, walltime: 1, partition, name: `probe "q" $(x)`, template: tpl },
  });
  return { root, setupDir };
}

describe.runIf(available)('real Slurm: themis submit and allocation states', () => {
  it('the real sbatch accepts the rendered header; the job id is recorded; squeue says pending/running, then gone', async () => {
    const { setupDir } = ensemble(null);
    const report = await submitAllocations(setupDir);
    const jobId = report.jobs[0]!.jobId;
    expect(jobId).toMatch(/^\d+$/);
    expect(readJobs(setupDir).map((j) => j.jobId)).toEqual([jobId]);
    const [first] = await allocationStates(setupDir);
    expect(['pending', 'running', 'gone']).toContain(first!.state);
    await waitFor('the job to write its marker', () => fs.existsSync(path.join(setupDir, 'ran-1')), 60_000);
    expect(fs.readFileSync(path.join(setupDir, 'ran-1'), 'utf8')).toBe(`job ${jobId} allocation 1\n`);
    await waitJobGone(jobId, 30_000);
    expect((await allocationStates(setupDir)).map((a) => a.state)).toEqual(['gone']);
    // The job's output file went where the header said, despite the quote in the path.
    expect(fs.readdirSync(path.join(setupDir, 'logs'))).toContain(`probe_q_x_-1.${jobId}.out`);
    expect(readEnsemble(setupDir).scheduler).toBe('slurm');
  }, 120_000);

  it("a partition Slurm does not have: the error shows sbatch's own message", async () => {
    const { setupDir } = ensemble('no_such_partition');
    await expect(submitAllocations(setupDir)).rejects.toThrow(/sbatch refused allocation 1[\s\S]*invalid partition/i);
    expect(readJobs(setupDir)).toEqual([]);
  }, 60_000);
});
