/**
 * End to end against a real Slurm cluster (issue 5, section 3): `themis gen --scheduler slurm`,
 * then plain `sbatch` of the generated script, as a user would; the packer inside the job runs
 * the steps. Needs the throw-away cluster of test/slurm/cluster.sh (2 nodes x 4 CPUs x 2 fake GPUs):
 *   bash test/slurm/cluster.sh start /tmp/slurm && source /tmp/slurm/env.sh && npm test
 * Without a cluster the suite is skipped (and says so); in CI (THEMIS_SLURM_REQUIRED=1) it must run.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, runThemis } from '../helpers/cli.js';
import { runDirs, readStatuses, safeList, withDiagnostics, readLedger, type LedgerLine } from './ensembles.js';
import { jobState, markerProcesses, sbatch, scancel, slurmAvailable, slurmRequired, slurmUnavailableReason, waitFor, waitJobGone, waitJobRunning } from './cluster.js';

const available = slurmAvailable();
if (!available && slurmRequired) {
  // CI (.ci/run) started a cluster: not reaching it is a failure, never a skip.
  throw new Error(`THEMIS_SLURM_REQUIRED=1 but no Slurm test cluster is reachable: ${slurmUnavailableReason()}`);
}
if (!available) {
  const why = slurmUnavailableReason();
  console.warn(`\n*** real-Slurm e2e suite SKIPPED: no test cluster reachable (${why}) ***\n`);
}

const MARKER = 'THEMIS_E2E_MARKER';
const dirs: string[] = [];
afterAll(() => {
  if (process.env.THEMIS_E2E_KEEP === '1') return;
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Ensemble {
  dir: string;
  ledger: string;
  name: string;
  script: string;
}

/** A test application: records start/end in a ledger, prints what the scheduler gave it, sleeps. */
function appScript(ledger: string, seconds: number): string {
  return `#!/bin/bash
echo "start $THEMIS_RUN_ID \${SLURM_JOB_ID:-none} $(date +%s.%N) \${SLURMD_NODENAME:-none} \${CUDA_VISIBLE_DEVICES:-none} $$" >> ${ledger}
echo "SLURM_JOB_ID=\${SLURM_JOB_ID:-}"
echo "SLURM_STEP_ID=\${SLURM_STEP_ID:-}"
echo "node=\${SLURMD_NODENAME:-}"
echo "CUDA_VISIBLE_DEVICES=\${CUDA_VISIBLE_DEVICES:-}"
sleep ${seconds}
echo "end $THEMIS_RUN_ID \${SLURM_JOB_ID:-none} $(date +%s.%N) \${SLURMD_NODENAME:-none} \${CUDA_VISIBLE_DEVICES:-none} $$" >> ${ledger}
`;
}

/** `themis gen APP samples.csv --scheduler slurm -m NAME ...` in a fresh directory. */
function gen(name: string, runs: number, seconds: number, flags: string[]): Ensemble {
  const dir = makeTempDir(`themis-e2e-${name}-`);
  dirs.push(dir);
  const ledger = path.join(dir, 'ledger.txt');
  fs.writeFileSync(ledger, '');
  const app = path.join(dir, 'app.sh');
  fs.writeFileSync(app, appScript(ledger, seconds), { mode: 0o755 });
  const rows = ['x', ...Array.from({ length: runs }, (_, i) => String(i + 1))];
  fs.writeFileSync(path.join(dir, 'samples.csv'), rows.join('\n') + '\n');
  const r = runThemis(['gen', app, 'samples.csv', '--scheduler', 'slurm', '-m', name, ...flags], { cwd: dir });
  if (r.code !== 0) throw new Error(`themis gen failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const script = path.join(dir, '.themis_setup', 'batch', `${name}-1.sh`);
  if (!fs.existsSync(script)) {
    throw new Error(`themis gen did not write ${script}; batch/ holds: ${safeList(path.dirname(script)).join(' ')}\n${r.stdout}`);
  }
  return { dir, ledger, name, script };
}

/** Plain sbatch of the generated script, with a marker every process of the job inherits. */
function submit(e: Ensemble, allocation = 1): string {
  const script = allocation === 1 ? e.script : e.script.replace(/-1\.sh$/, `-${allocation}.sh`);
  return sbatch(script, { cwd: e.dir, env: { [MARKER]: e.dir } });
}

const statuses = readStatuses;
const countWhere = (e: Ensemble, s: string) => [...statuses(e).values()].filter((x) => x.status === s).length;

const ledger = readLedger;
const idsOf = (lines: LedgerLine[], kind: 'start' | 'end') => lines.filter((l) => l.kind === kind).map((l) => l.id);

/** `themis status --json`: the report's `total` and `counts` per status (src/api/report.ts). */
function cliStatus(e: Ensemble): { total: number; counts: Record<string, number> } {
  const r = runThemis(['status', '--json'], { cwd: e.dir });
  if (r.code !== 0) throw new Error(`themis status --json failed (${r.code}): ${r.stdout}${r.stderr}`);
  const json = JSON.parse(r.stdout) as { total?: number; counts?: Record<string, number> };
  if (typeof json.total !== 'number' || !json.counts) throw new Error(`themis status --json has no total/counts: ${r.stdout.slice(0, 500)}`);
  return { total: json.total, counts: json.counts };
}

function expectAllSuccessfulInCli(e: Ensemble, n: number): void {
  const { total, counts } = cliStatus(e);
  expect(total).toBe(n);
  expect(counts.successful).toBe(n);
}

/** Processes of a job still alive: the marker of this ensemble plus SLURM_JOB_ID of that job. */
function jobProcesses(e: Ensemble, jobId: string): { pid: number; cmd: string }[] {
  return markerProcesses(MARKER, e.dir).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p.pid}/environ`, 'latin1').split('\0').includes(`SLURM_JOB_ID=${jobId}`);
    } catch {
      return false;
    }
  });
}

/** No process of the job may outlive it (a few seconds of grace for Slurm's own teardown). */
async function expectNoJobProcesses(e: Ensemble, jobId: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let left = jobProcesses(e, jobId);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    left = jobProcesses(e, jobId);
  }
  expect(left, `processes of job ${jobId} still alive after it ended`).toEqual([]);
}

/** Names of job ids squeue still lists as active for this job name. */
function activeJobs(name: string): string[] {
  return allJobs(name).filter((id) => ['PENDING', 'RUNNING', 'COMPLETING', 'CONFIGURING'].includes(jobState(id)));
}
function allJobs(name: string): string[] {
  const r = spawnSync('squeue', ['-h', '-t', 'all', '-n', `${name}-1`, '-o', '%i'], { encoding: 'utf8', timeout: 5000 });
  return String(r.stdout ?? '')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

describe.runIf(available)('real Slurm: gen + sbatch + themis-pack', () => {
  it('1. runs every run inside the job that was sbatch-ed; all end successful', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        e = gen('e2e-basic', 6, 1, ['-N', '1', '-t', '5', '-c', '1']);
        const job = submit(e);
        await waitJobGone(job, 90_000);
        const st = statuses(e);
        expect([...st.values()].map((s) => s.status)).toEqual(Array(6).fill('successful'));
        expectAllSuccessfulInCli(e, 6);
        for (const [, d] of runDirs(e)) {
          expect(fs.readFileSync(path.join(d, 'run.log'), 'utf8')).toContain(`SLURM_JOB_ID=${job}`);
        }
        await expectNoJobProcesses(e, job);
      },
    );
  }, 120_000);

  it('2. two allocations submitted at once drain one ensemble, each run exactly once', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        e = gen('e2e-two', 24, 0.5, ['-N', '1', '-t', '5', '-c', '1', '--allocations', '2']);
        const jobs = [submit(e, 1), submit(e, 2)];
        for (const j of jobs) await waitJobGone(j, 120_000);
        const lines = ledger(e);
        const ends = idsOf(lines, 'end').sort((a, b) => a - b);
        expect(ends).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
        expect(idsOf(lines, 'start').length).toBe(24);
        // Every run ran inside one of the two jobs.
        expect(lines.every((l) => jobs.includes(l.job))).toBe(true);
        expect(countWhere(e, 'successful')).toBe(24);
        expectAllSuccessfulInCli(e, 24);
      },
    );
  }, 150_000);

  it('3a. a tasks=2 step spreads over both nodes through srun', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        // 2 tasks x 4 cores cannot fit one 4-CPU node: one task per node. A program step, not a batch
        // script: a batch-script step runs once and starts its own tasks (%%themis_launch%%, issue 13).
        e = gen('e2e-multi', 1, 1, ['-N', '2', '-t', '5', '-n', '2', '-c', '4', '--no-batch-script']);
        const job = submit(e);
        await waitJobGone(job, 90_000);
        expect(countWhere(e, 'successful')).toBe(1);
        const log = fs.readFileSync(path.join(runDirs(e).get(1)!, 'run.log'), 'utf8');
        expect(log).toMatch(/^node=n1$/m);
        expect(log).toMatch(/^node=n2$/m);
        // Both tasks ran as one srun step of this job.
        expect(log.match(/^SLURM_STEP_ID=\d+$/gm)?.length).toBe(2);
        expect(log.match(new RegExp(`^SLURM_JOB_ID=${job}$`, 'gm'))?.length).toBe(2);
      },
    );
  }, 120_000);

  it('3b. 1-GPU steps running side by side get distinct CUDA_VISIBLE_DEVICES', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        e = gen('e2e-gpu', 4, 3, ['-N', '1', '-t', '5', '-c', '1', '-g', '1', '--gpus-per-node', '2']);
        const job = submit(e);
        await waitJobGone(job, 90_000);
        expect(countWhere(e, 'successful')).toBe(4);
        const lines = ledger(e);
        const spans = idsOf(lines, 'start').map((id) => {
          const s = lines.find((l) => l.kind === 'start' && l.id === id)!;
          const t = lines.find((l) => l.kind === 'end' && l.id === id)!;
          return { id, node: s.node, gpus: s.gpus, from: s.at, to: t.at };
        });
        expect(spans.length).toBe(4);
        for (const s of spans) expect(s.gpus).toMatch(/^[01]$/); // exactly one of the node's two GPUs
        let overlapping = 0;
        for (const a of spans) {
          for (const b of spans) {
            if (a.id < b.id && a.node === b.node && a.from < b.to && b.from < a.to) {
              overlapping++;
              expect(a.gpus, `runs ${a.id} and ${b.id} ran at once on ${a.node}`).not.toBe(b.gpus);
            }
          }
        }
        // 4 cores and 2 GPUs: pairs of runs must have run side by side.
        expect(overlapping).toBeGreaterThan(0);
      },
    );
  }, 120_000);

  it('3c. 1-GPU steps on the second node (launched through srun) also get one distinct GPU each', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        // 4 GPUs over 2 nodes and 4 one-GPU runs of 4 s: two run on the packer's node, two on the
        // other one, which the packer can only reach through srun.
        e = gen('e2e-gpu2', 4, 4, ['-N', '2', '-t', '5', '-c', '1', '-g', '1', '--gpus-per-node', '2']);
        const job = submit(e);
        await waitJobGone(job, 90_000);
        expect(countWhere(e, 'successful')).toBe(4);
        const lines = ledger(e);
        const spans = idsOf(lines, 'start').map((id) => {
          const s = lines.find((l) => l.kind === 'start' && l.id === id)!;
          const t = lines.find((l) => l.kind === 'end' && l.id === id)!;
          return { id, node: s.node, gpus: s.gpus, from: s.at, to: t.at };
        });
        expect(new Set(spans.map((s) => s.node)), 'runs used both nodes').toEqual(new Set(['n1', 'n2']));
        for (const s of spans) expect(s.gpus, `run ${s.id} on ${s.node}`).toMatch(/^[01]$/);
        for (const a of spans) {
          for (const b of spans) {
            if (a.id < b.id && a.node === b.node && a.from < b.to && b.from < a.to) {
              expect(a.gpus, `runs ${a.id} and ${b.id} ran at once on ${a.node}`).not.toBe(b.gpus);
            }
          }
        }
        // All four fit at once (2 nodes x 2 GPUs): no step waited for a GPU its neighbour was given.
        const lastStart = Math.max(...spans.map((s) => s.from));
        const firstEnd = Math.min(...spans.map((s) => s.to));
        expect(lastStart, 'the 4 runs did not all run side by side').toBeLessThan(firstEnd);
      },
    );
  }, 120_000);

  it('5. scancel of a running allocation: runs back to queued, nothing left running, the next allocation finishes them', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        e = gen('e2e-cancel', 8, 15, ['-N', '1', '-t', '5', '-c', '1']);
        const first = submit(e);
        await waitJobRunning(first, 60_000);
        await waitFor('4 runs started', () => idsOf(ledger(e!), 'start').length >= 4, 60_000);
        // scancel makes Slurm SIGTERM every process of the job at once: the packer and its steps. A step
        // may die of that SIGTERM before the packer handles its own: it was interrupted, not failed.
        scancel(first);
        await waitJobGone(first, 60_000);
        await expectNoJobProcesses(e, first);
        const st = statuses(e);
        for (const [id, s] of st) {
          expect(['queued', 'successful'], `run ${id} is ${s.status} after scancel (a step killed by Slurm's SIGTERM is interrupted, not failed)`).toContain(s.status);
          expect(fs.existsSync(path.join(runDirs(e).get(id)!, '.themis', 'claim')), `run ${id} still claimed`).toBe(false);
        }
        expect(countWhere(e, 'queued')).toBeGreaterThanOrEqual(4);

        const second = submit(e);
        await waitJobGone(second, 120_000);
        expect(countWhere(e, 'successful')).toBe(8);
        expect(idsOf(ledger(e), 'end').sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        // An interruption is not a failure: it uses no restart.
        for (const [id, s] of statuses(e)) expect(s.restarts, `run ${id} restarts`).toBe(0);
        expectAllSuccessfulInCli(e, 8);
        await expectNoJobProcesses(e, second);
      },
    );
  }, 240_000);

  it('6a. --early-stop with the packer clock override: no run starts in the last minute', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        // A 5-minute allocation; the packer's clock (THEMIS_CLOCK_OFFSET_MS: the epoch ms its "now"
        // starts at, see src/store/layout.ts) starts 225 s ahead, while the allocation's end is real
        // (Slurm's end time, or the real start + --walltime), so the early-stop line (1 minute before
        // the end) is about 15 s of real time after the packer starts. This needs the packer to anchor
        // the end to the real clock, not to its shifted one (else the override cancels out).
        e = gen('e2e-clock', 12, 10, ['-N', '1', '-t', '5', '-c', '1', '--early-stop', '1']);
        const job = sbatch(e.script, {
          cwd: e.dir,
          env: { [MARKER]: e.dir, THEMIS_CLOCK_OFFSET_MS: String(Date.now() + 225_000) },
        });
        // The clock is shifted when the packer starts, so the line is ~15 s after the job starts running
        // (however long it was pending).
        await waitJobRunning(job, 120_000);
        const t0 = Date.now() / 1000;
        await waitJobGone(job, 150_000);
        const lines = ledger(e);
        const starts = lines.filter((l) => l.kind === 'start');
        // Batches start at ~0 s and ~10 s; the third (~20 s) is past the line and must not start.
        expect(starts.length).toBeGreaterThanOrEqual(4);
        expect(starts.length).toBeLessThan(12);
        for (const s of starts) expect(s.at - t0, `run ${s.id} started late`).toBeLessThan(19);
        expect(countWhere(e, 'successful')).toBe(starts.length);
        expect(countWhere(e, 'queued')).toBe(12 - starts.length);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 180_000);
});

// The two scenarios that wait for a real 1-minute walltime run side by side (one node each).
describe.runIf(available).concurrent('real Slurm: real walltime', () => {
  it('4. walltime: interrupted runs go back to queued, no step survives, --repeats 1 finishes them', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        // 8 runs x 30 s on 4 cores: the first batch ends at 30 s, the second (started at 30 s) is cut by
        // the 1-minute limit (or by the packer's own margin before it); the repeat runs it again.
        e = gen('e2e-wall', 8, 30, ['-N', '1', '-t', '1', '-c', '1', '--repeats', '1']);
        const first = submit(e);
        const endState = await waitJobGone(first, 150_000);
        expect(['TIMEOUT', 'COMPLETED', 'CANCELLED', 'GONE']).toContain(endState);
        await expectNoJobProcesses(e, first);
        // Nothing is left `running` on behalf of the ended job (queued, or already taken by the repeat).
        for (const [id, s] of statuses(e)) {
          if (s.status === 'running') expect(s.jobId, `run ${id} still running for job ${first}`).not.toBe(first);
          expect(['queued', 'running', 'successful']).toContain(s.status);
        }
        const startedInFirst = ledger(e)
          .filter((l) => l.kind === 'start' && l.job === first)
          .map((l) => l.id);
        const endedInFirst = ledger(e)
          .filter((l) => l.kind === 'end' && l.job === first)
          .map((l) => l.id);
        expect(endedInFirst.length).toBeLessThan(8);
        expect(startedInFirst.length).toBeGreaterThan(endedInFirst.length); // some runs were interrupted

        // --repeats 1: the packer resubmitted its own script; that job finishes the rest.
        const later = () => allJobs(e!.name).filter((j) => Number(j) > Number(first));
        await waitFor('the resubmitted allocation', () => later().length >= 1, 30_000);
        const repeat = later()[0]!;
        await waitJobGone(repeat, 120_000);
        expect(countWhere(e, 'successful')).toBe(8);
        const ends = idsOf(ledger(e), 'end').sort((a, b) => a - b);
        expect(ends).toEqual(Array.from({ length: 8 }, (_, i) => i + 1));
        for (const [id, s] of statuses(e)) expect(s.restarts, `run ${id} restarts`).toBe(0);
        expectAllSuccessfulInCli(e, 8);
        await expectNoJobProcesses(e, repeat);
        expect(activeJobs(e.name)).toEqual([]);
      },
    );
  }, 330_000);

  it('6b. --early-stop against a real 2-minute walltime: no run starts in the last minute', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        // 16 runs x 25 s on 4 cores: batches at 0, 25, 50 s; the one at 75 s is inside the last minute.
        e = gen('e2e-early', 16, 25, ['-N', '1', '-t', '2', '-c', '1', '--early-stop', '1']);
        const job = submit(e);
        await waitJobRunning(job, 120_000);
        const startedAt = Date.now() / 1000;
        await waitJobGone(job, 200_000);
        const starts = ledger(e).filter((l) => l.kind === 'start');
        expect(starts.length).toBeGreaterThanOrEqual(8);
        expect(starts.length).toBeLessThan(16);
        for (const s of starts) expect(s.at - startedAt, `run ${s.id} started in the last minute`).toBeLessThan(61);
        expect(countWhere(e, 'successful')).toBe(starts.length);
        expect(countWhere(e, 'queued')).toBe(16 - starts.length);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 330_000);
});
