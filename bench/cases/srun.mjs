// srun: inside one Slurm allocation of one node, N single-core /bin/true steps launched by
// `themis-pack` against a bare loop of `srun -n1 --exact true` at the same concurrency (the node's
// CPUs), alternating; time measured inside each job (queue wait excluded). Runs only when a Slurm
// cluster answers (SLURM_CONF set and `sinfo` quick); see test/slurm/cluster.sh for a local one.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { THEMIS_PACK, median, round, snapshot, timed, writeCsv } from '../lib.mjs';

/** Why Slurm is unusable here, or null with the CPUs of the first idle node. */
export function probeSlurm() {
  if (!process.env.SLURM_CONF) return { why: 'no Slurm cluster: SLURM_CONF is not set (bash test/slurm/cluster.sh start /tmp/slurm; source /tmp/slurm/env.sh)' };
  const r = spawnSync('sinfo', ['-h', '-N', '-o', '%N %c %T'], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) return { why: `no Slurm cluster: sinfo did not answer (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})` };
  const node = r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f.length === 3 && /^(idle|mixed)/.test(f[2]));
  if (!node) return { why: `no idle Slurm node: ${r.stdout.trim() || '(sinfo printed nothing)'}` };
  return { why: null, node: node[0], cpus: Number(node[1]) };
}

class Busy extends Error {}

/** Submit and wait; a job that has not finished within `limitMs` (the cluster is busy, e.g. with the
 * Slurm test suite) is cancelled and the case skipped rather than holding the bench up. */
function sbatchWait(script, work, name, limitMs) {
  const r = spawnSync('sbatch', ['--wait', '--parsable', '-J', name, script], { encoding: 'utf8', cwd: work, timeout: limitMs });
  if (r.error?.code === 'ETIMEDOUT') {
    spawnSync('scancel', ['-n', name], { timeout: 10_000 });
    throw new Busy(`Slurm job ${name} did not finish within ${limitMs / 1000} s (cluster busy?); cancelled`);
  }
  if (r.status !== 0) throw new Error(`sbatch --wait ${script}: ${(r.stderr || r.error?.message || '').trim()}`);
}

export async function run(ctx) {
  const probe = probeSlurm();
  if (probe.why) return { skipped: probe.why };
  const n = ctx.quick ? 50 : 500;
  const repeats = ctx.quick ? 1 : 2;
  const c = ctx.cores ?? probe.cpus;
  const work = path.join(ctx.work, 'srun');
  fs.mkdirSync(work, { recursive: true });
  const csv = path.join(work, 'samples.csv');
  writeCsv(csv, ['x'], n, (i) => [i]);
  const dir = path.join(work, 'ens');
  fs.mkdirSync(dir);
  timed([process.execPath, path.join(path.dirname(THEMIS_PACK), 'themis.js'), 'gen', '/bin/true', csv, '--no-batch-script', '--scheduler', 'slurm'], { cwd: dir });
  const restore = snapshot(dir);
  const header = (name) => `#!/bin/bash\n#SBATCH -N1 -n${c} -w ${probe.node} -t 20 -o ${work}/${name}.out\n`;
  const jobName = (name) => `themis-bench-${process.pid}-${name}`;
  const limitMs = ctx.quick ? 90_000 : 900_000;
  const packScript = path.join(work, 'pack.sh');
  fs.writeFileSync(
    packScript,
    header('pack') + `s=$(date +%s.%N)\n${process.execPath} ${THEMIS_PACK} --setup-dir ${dir}/.themis_setup --json > ${work}/pack.json\ne=$(date +%s.%N)\necho "$s $e" > ${work}/pack.times\n`,
  );
  const loopScript = path.join(work, 'loop.sh');
  fs.writeFileSync(loopScript, header('loop') + `s=$(date +%s.%N)\nseq ${n} | xargs -P${c} -n1 srun -n1 -c1 --exact true\ne=$(date +%s.%N)\necho "$s $e" > ${work}/loop.times\n`);
  const span = (f) => {
    const [s, e] = fs.readFileSync(f, 'utf8').trim().split(/\s+/).map(Number);
    return e - s;
  };
  const pk = [];
  const lp = [];
  try {
    for (let i = 0; i < repeats; i++) {
      restore();
      sbatchWait(packScript, work, jobName('pack'), limitMs);
      const summary = JSON.parse(fs.readFileSync(path.join(work, 'pack.json'), 'utf8'));
      if (summary.counts.successful !== n) throw new Error(`srun case: packer ran ${summary.counts.successful} of ${n} successfully`);
      pk.push({ seconds: span(path.join(work, 'pack.times')), schedulerSteps: summary.schedulerSteps });
      sbatchWait(loopScript, work, jobName('loop'), limitMs);
      lp.push({ seconds: span(path.join(work, 'loop.times')) });
    }
  } catch (e) {
    if (e instanceof Busy) return { skipped: e.message };
    throw e;
  }
  const p = median(pk.map((x) => x.seconds));
  const l = median(lp.map((x) => x.seconds));
  return {
    rows: [{ metric: `${n} one-core steps in one allocation, ${c} at once, s (vs srun loop)`, themis: round(p), baseline: round(l), ratio: round(l / p, 2), target: '>= 0.80', met: l / p >= 0.8 }],
    details: { node: probe.node, concurrency: c, packer: pk.map((x) => ({ ...x, seconds: round(x.seconds) })), loop: lp.map((x) => ({ seconds: round(x.seconds) })) },
  };
}
