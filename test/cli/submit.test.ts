import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { submitAllocations } from '../../src/api/submit.js';
import { ensureBatchScripts } from '../../src/render/batch.js';
import { allocationStates, readJobs } from '../../src/store/jobs.js';
import { setupPaths } from '../../src/store/layout.js';
import { readEnsemble, type AllocationSettings, type SchedulerName } from '../../src/store/records.js';
import { ensembleRecord, writeHandEnsemble } from '../api/helpers.js';
import { FIXTURES, makeTempDir, runThemis } from '../helpers/cli.js';

const FAKE_BIN = path.join(FIXTURES, 'bin');
const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});

interface FakeLine {
  tool: string;
  argv: string[];
  env: Record<string, string>;
  stdin?: string;
  cwd: string;
}

/** An ensemble of 3 runs with `allocations` batch scripts, and an env whose PATH has the fakes first. */
function setup(scheduler: SchedulerName, alloc: Partial<AllocationSettings> = {}, extraEnv: Record<string, string> = {}) {
  const root = makeTempDir('themis-submit-');
  temps.push(root);
  const setupDir = writeHandEnsemble(root, [{}, {}, {}], {
    scheduler,
    allocation: { ...ensembleRecord(root, root).allocation, allocations: 2, ...alloc },
  });
  ensureBatchScripts(setupDir, readEnsemble(setupDir));
  const log = path.join(root, 'fake.log');
  const env = { PATH: `${FAKE_BIN}:${process.env.PATH}`, THEMIS_FAKE_LOG: log, ...extraEnv };
  const calls = (): FakeLine[] =>
    fs.existsSync(log)
      ? fs
          .readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
      : [];
  return { root, setupDir, env, calls, script: (k: number) => setupPaths(setupDir).batchScript('themis', k) };
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string; exitCode: number }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string; exitCode: number };
  }
  throw new Error('expected a rejection');
}

describe('submitAllocations with fake sbatch', () => {
  it('runs `sbatch SCRIPT` per allocation, parses the ids, records them', async () => {
    const s = setup('slurm');
    const report = await submitAllocations(s.setupDir, { env: s.env });
    expect(report.jobs.map((j) => [j.allocation, j.jobId])).toEqual([
      [1, '4242'],
      [2, '4243'],
    ]);
    expect(report.jobs[0]!.command).toBe(`sbatch ${s.script(1)}`);
    expect(s.calls().map((c) => [c.tool, c.argv, c.cwd])).toEqual([
      ['sbatch', [s.script(1)], s.root],
      ['sbatch', [s.script(2)], s.root],
    ]);
    const jobs = readJobs(s.setupDir);
    expect(jobs.map((j) => ({ ...j, submittedAt: 'T' }))).toEqual([
      { allocation: 1, jobId: '4242', scheduler: 'slurm', submittedAt: 'T', script: s.script(1), by: 'submit' },
      { allocation: 2, jobId: '4243', scheduler: 'slurm', submittedAt: 'T', script: s.script(2), by: 'submit' },
    ]);
    // Submitting one allocation again appends; the newest job of each allocation is what counts.
    await submitAllocations(s.setupDir, { env: s.env, allocations: [2] });
    expect(readJobs(s.setupDir).map((j) => j.jobId)).toEqual(['4242', '4243', '4244']);
  });

  it("shows sbatch's own error, records nothing, and is a SCHEDULER error (exit 1)", async () => {
    const s = setup('slurm', {}, { THEMIS_FAKE_FAIL: 'sbatch' });
    const err = await rejection(submitAllocations(s.setupDir, { env: s.env }));
    expect(err.code).toBe('SCHEDULER');
    expect(err.exitCode).toBe(1);
    expect(err.message).toContain('Invalid account or account/partition combination specified');
    expect(err.message).toContain(`sbatch ${s.script(1)}`);
    expect(err.message).toContain('themis submit --allocation 1');
    expect(fs.existsSync(setupPaths(s.setupDir).jobsFile)).toBe(false);
  });

  it('says plainly when sbatch is not on PATH', async () => {
    const s = setup('slurm');
    const emptyBin = makeTempDir('themis-nobin-');
    temps.push(emptyBin);
    const err = await rejection(submitAllocations(s.setupDir, { env: { PATH: emptyBin } }));
    expect(err.code).toBe('SCHEDULER');
    expect(err.message).toMatch(/`sbatch` is not on PATH/);
  });

  it('refuses an allocation the ensemble does not have (usage error, exit 2)', async () => {
    const s = setup('slurm');
    const err = await rejection(submitAllocations(s.setupDir, { env: s.env, allocations: [3] }));
    expect(err.code).toBe('USAGE');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('allocations 1..2');
    expect(s.calls()).toEqual([]);
  });

  it('refuses to submit an allocation whose job is still queued or running, unless forced', async () => {
    const s = setup('slurm');
    const states = path.join(s.root, 'states');
    const env = { ...s.env, THEMIS_FAKE_STATES: states };
    await submitAllocations(s.setupDir, { env });
    fs.writeFileSync(states, '4242 PENDING\n');
    const err = await rejection(submitAllocations(s.setupDir, { env }));
    expect(err.code).toBe('STATE');
    expect(err.message).toContain('allocation 1 = job 4242 (pending)');
    expect(err.message).toContain('--force');
    expect(readJobs(s.setupDir).map((j) => j.jobId)).toEqual(['4242', '4243']);
    // Allocation 2's job is gone: resubmitting just that one is fine.
    await submitAllocations(s.setupDir, { env, allocations: [2] });
    await submitAllocations(s.setupDir, { env, allocations: [1], force: true });
    expect(readJobs(s.setupDir).map((j) => [j.allocation, j.jobId])).toEqual([
      [1, '4242'],
      [2, '4243'],
      [2, '4244'],
      [1, '4245'],
    ]);
  });

  it('renders a missing script before submitting it', async () => {
    const s = setup('slurm');
    fs.rmSync(s.script(2));
    await submitAllocations(s.setupDir, { env: s.env, allocations: [2] });
    expect(fs.readFileSync(s.script(2), 'utf8')).toContain('--allocation 2');
    expect(s.calls().map((c) => c.argv)).toEqual([[s.script(2)]]);
  });
});

describe('submitAllocations against fakes (no real LSF/Flux here)', () => {
  it('LSF: `bsub < SCRIPT` feeds the script on stdin', async () => {
    const s = setup('lsf', { allocations: 1 });
    const report = await submitAllocations(s.setupDir, { env: s.env });
    expect(report.jobs.map((j) => j.jobId)).toEqual(['4242']);
    expect(report.jobs[0]!.command).toBe(`bsub < ${s.script(1)}`);
    const [call] = s.calls();
    expect(call!.argv).toEqual([]);
    expect(call!.stdin + '\n').toBe(fs.readFileSync(s.script(1), 'utf8'));
  });

  it("LSF: bsub's refusal is shown", async () => {
    const s = setup('lsf', { allocations: 1 }, { THEMIS_FAKE_FAIL: 'bsub' });
    const err = await rejection(submitAllocations(s.setupDir, { env: s.env }));
    expect(err.message).toContain('User permission denied. Job not submitted.');
    expect(err.message).toContain('exit 255');
  });

  it('Flux: `flux batch SCRIPT`, the job id is its output', async () => {
    const s = setup('flux', { allocations: 1 }, { THEMIS_FAKE_JOBID: 'ƒ2Xa3bY9Qk' });
    const report = await submitAllocations(s.setupDir, { env: s.env });
    expect(report.jobs.map((j) => j.jobId)).toEqual(['ƒ2Xa3bY9Qk']);
    expect(s.calls()[0]!.argv).toEqual(['batch', s.script(1)]);
  });
});

describe('allocationStates (squeue, bjobs, flux jobs; never sacct)', () => {
  it('Slurm: listed jobs are pending/running, unlisted ones gone; `Invalid job id` means gone', async () => {
    const s = setup('slurm');
    const states = path.join(s.root, 'states');
    fs.writeFileSync(states, '4242 RUNNING\n');
    const env = { ...s.env, THEMIS_FAKE_STATES: states };
    await submitAllocations(s.setupDir, { env });
    expect((await allocationStates(s.setupDir, { env })).map((a) => [a.allocation, a.jobId, a.state])).toEqual([
      [1, '4242', 'running'],
      [2, '4243', 'gone'],
    ]);
    expect(s.calls().filter((c) => c.tool === 'squeue')[0]!.argv).toEqual(['-h', '-j', '4242,4243', '-o', '%i %T']);
    fs.writeFileSync(states, '');
    expect((await allocationStates(s.setupDir, { env })).map((a) => a.state)).toEqual(['gone', 'gone']);
  });

  it('Slurm: without squeue the state is unknown, not gone', async () => {
    const s = setup('slurm');
    await submitAllocations(s.setupDir, { env: s.env });
    const emptyBin = makeTempDir('themis-nobin-');
    temps.push(emptyBin);
    expect((await allocationStates(s.setupDir, { env: { PATH: emptyBin } })).map((a) => a.state)).toEqual(['unknown', 'unknown']);
  });

  it('LSF and Flux against fakes (no real LSF/Flux here)', async () => {
    const l = setup('lsf');
    const states = path.join(l.root, 'states');
    fs.writeFileSync(states, '4242 PEND\n4243 RUN\n');
    await submitAllocations(l.setupDir, { env: l.env });
    expect((await allocationStates(l.setupDir, { env: { ...l.env, THEMIS_FAKE_STATES: states } })).map((a) => a.state)).toEqual(['pending', 'running']);
    const f = setup('flux', { allocations: 1 }, { THEMIS_FAKE_JOBID: 'ƒAbc' });
    fs.writeFileSync(states, 'ƒAbc SCHED\n');
    await submitAllocations(f.setupDir, { env: f.env });
    expect((await allocationStates(f.setupDir, { env: { ...f.env, THEMIS_FAKE_STATES: states } })).map((a) => a.state)).toEqual(['pending']);
  });
});

describe('local submission', () => {
  it('starts each script in the background, records its pid, and the script really runs', async () => {
    const s = setup('local');
    const tpl = path.join(s.root, 'mine.sh.hbs');
    fs.writeFileSync(tpl, '#!/bin/sh\necho "allocation {{allocation}} pid $$" > {{quote setupDir}}/started-{{allocation}}\nsleep 0.3\n');
    const ens = readEnsemble(s.setupDir);
    fs.writeFileSync(setupPaths(s.setupDir).ensemble, JSON.stringify({ ...ens, allocation: { ...ens.allocation, template: tpl } }));
    for (const k of [1, 2]) fs.rmSync(s.script(k));
    const report = await submitAllocations(s.setupDir, { env: s.env });
    const pids = report.jobs.map((j) => j.jobId);
    expect(pids.every((p) => /^\d+$/.test(p))).toBe(true);
    expect((await allocationStates(s.setupDir, { env: s.env })).map((a) => a.state)).toEqual(['running', 'running']);
    const started = (k: number) => path.join(s.setupDir, `started-${k}`);
    for (let i = 0; i < 100 && !(fs.existsSync(started(1)) && fs.existsSync(started(2))); i++) await new Promise((r) => setTimeout(r, 20));
    expect(fs.readFileSync(started(1), 'utf8')).toBe(`allocation 1 pid ${pids[0]}\n`);
    expect(fs.readFileSync(started(2), 'utf8')).toBe(`allocation 2 pid ${pids[1]}\n`);
    for (let i = 0; i < 100; i++) {
      const st = await allocationStates(s.setupDir, { env: s.env });
      if (st.every((a) => a.state === 'gone')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('local allocations never ended');
  });
});

describe('`themis submit` (built binary)', () => {
  it('prints each job id and the command, or JSON; exit 0', () => {
    const s = setup('slurm');
    const r = runThemis(['submit', '--setup-dir', s.setupDir], { cwd: s.root, env: s.env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`allocation 1: job 4242  (sbatch ${s.script(1)})`);
    expect(r.stdout).toContain(`allocation 2: job 4243  (sbatch ${s.script(2)})`);
    const j = runThemis(['submit', '--setup-dir', s.setupDir, '--allocation', '2', '--json'], { cwd: s.root, env: s.env });
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout);
    expect(report.scheduler).toBe('slurm');
    expect(report.jobs).toEqual([{ allocation: 2, jobId: '4244', script: s.script(2), command: `sbatch ${s.script(2)}` }]);
  });

  it('`themis gen --scheduler lsf` then `themis submit`: each script reaches (fake) bsub on stdin (no real LSF here)', () => {
    const root = makeTempDir('themis-gensub-');
    temps.push(root);
    fs.writeFileSync(path.join(root, 'samples.csv'), 'x\n1\n2\n3\n');
    const log = path.join(root, 'fake.log');
    const env = { PATH: `${FAKE_BIN}:${process.env.PATH}`, THEMIS_FAKE_LOG: log };
    const gen = runThemis(['gen', '/bin/echo', 'samples.csv', '--scheduler', 'lsf', '--allocations', '2', '-N', '2', '--no-batch-script'], {
      cwd: root,
      env,
    });
    expect(gen.stderr).toBe('');
    expect(gen.code).toBe(0);
    const sub = runThemis(['submit', '--json'], { cwd: root, env });
    expect(sub.code).toBe(0);
    const report = JSON.parse(sub.stdout);
    expect(report.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['4242', '4243']);
    const calls = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as FakeLine);
    expect(calls.map((c) => [c.tool, c.argv])).toEqual([
      ['bsub', []],
      ['bsub', []],
    ]);
    for (const [i, c] of calls.entries()) {
      expect(c.stdin + '\n').toBe(fs.readFileSync(report.jobs[i].script, 'utf8'));
      expect(c.stdin).toContain(`#BSUB -nnodes 2\n`);
      expect(c.stdin).toContain(`--allocation ${i + 1} `);
    }
  });

  it("exit 1 with the scheduler's message on a refused submission; exit 2 for a bad --allocation", () => {
    const s = setup('slurm', {}, { THEMIS_FAKE_FAIL: 'sbatch' });
    const r = runThemis(['submit', '--setup-dir', s.setupDir], { cwd: s.root, env: s.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Invalid account or account/partition combination specified');
    const bad = runThemis(['submit', '--setup-dir', s.setupDir, '--allocation', 'x'], { cwd: s.root, env: s.env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--allocation "x"');
    const missing = runThemis(['submit', '--setup-dir', path.join(s.root, 'nope')], { cwd: s.root, env: s.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no ensemble');
  });
});
