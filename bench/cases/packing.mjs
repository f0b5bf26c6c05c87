// packing: runs needing 1, 2, 4 or 8 cores, each sleeping 0.2-2 s, packed by `themis run --cores 16`;
// the makespan (wall time of `themis run`, startup included) against the ideal
// max(total core-seconds / 16, longest run). Second row: `themis plan`'s simulated makespan (the
// packer's own core in virtual time, durations from the sample column) against the measured one.
import fs from 'node:fs';
import path from 'node:path';
import { THEMIS, genEnsemble, round, themisRun, timed, writeCsv } from '../lib.mjs';

export async function run(ctx) {
  const n = ctx.quick ? 30 : 400;
  const cores = ctx.cores ?? 16;
  const needs = [1, 2, 4, 8];
  // Deterministic pseudo-random durations and core counts.
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const runs = Array.from({ length: n }, () => ({ cores: needs[Math.floor(rand() * needs.length)], seconds: Math.round((0.2 + rand() * 1.8) * 100) / 100 }));
  const csv = path.join(ctx.work, 'packing.csv');
  writeCsv(csv, ['args', 'cores_per_task'], n, (i) => [runs[i - 1].seconds, runs[i - 1].cores]);
  const dir = path.join(ctx.work, 'packing');
  genEnsemble(dir, '/bin/sleep', csv, ['--vary-all']);
  const coreSeconds = runs.reduce((a, r) => a + r.cores * r.seconds, 0);
  const ideal = Math.max(coreSeconds / cores, Math.max(...runs.map((r) => r.seconds)));
  // Planned before the run, from the sample column that holds each run's seconds.
  const planned = timed([process.execPath, THEMIS, 'plan', '--runtime-column', 'args', '--nodes', '1', '--cores-per-node', String(cores), '--walltime', '0', '--json'], { cwd: dir });
  const plan = JSON.parse(planned.stdout).candidates[0];
  const r = await themisRun(dir, ['--cores', String(cores)]);
  if (r.summary.counts.successful !== n) throw new Error(`packing: ${r.summary.counts.successful} of ${n} successful`);
  // Also the span from the first step's start to the last one's end (startup excluded).
  let first = Infinity;
  let last = 0;
  for (const id of fs.readdirSync(path.join(dir, 'runs'))) {
    const s = JSON.parse(fs.readFileSync(path.join(dir, 'runs', id, '.themis/status.json'), 'utf8'));
    first = Math.min(first, Date.parse(s.startedAt));
    last = Math.max(last, Date.parse(s.endedAt));
  }
  const span = (last - first) / 1000;
  const ratio = r.seconds / ideal;
  const planRatio = plan.makespanSeconds / r.seconds;
  return {
    rows: [
      {
        metric: `themis plan: simulated makespan s of the same ${n} runs (vs measured)`,
        themis: round(plan.makespanSeconds, 2),
        baseline: round(r.seconds, 2),
        ratio: round(planRatio, 3),
        target: '0.90-1.10',
        met: Math.abs(planRatio - 1) <= 0.1,
      },
      { metric: `packing ${n} runs on ${cores} cores, makespan s (vs ideal)`, themis: round(r.seconds, 2), baseline: round(ideal, 2), ratio: round(ratio, 2), target: '<= 1.10', met: ratio <= 1.1 },
    ],
    details: {
      runs: n,
      cores,
      coreSeconds: round(coreSeconds, 1),
      ideal: round(ideal, 2),
      wall: round(r.seconds, 2),
      firstStartToLastEnd: round(span, 2),
      spanRatio: round(span / ideal, 3),
      packerCpuMs: round(r.self.cpuMs + r.helpers.cpuMs, 0),
      plannedMakespan: round(plan.makespanSeconds, 2),
      plannedVsSpan: round(plan.makespanSeconds / span, 3),
      planSimulatedMs: plan.simulatedMs,
    },
  };
}
