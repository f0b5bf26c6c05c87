// scale: the packer's own cost per launch as the allocation grows. The real packer core
// (decisions, claims and status writes as effects, step exits) is driven in process, in virtual
// time, by `dist/pack/simulate.js` (the driver `themis plan` uses) on 1, 64 and 1,024 nodes of 128
// cores with 100,000 queued one-core runs; its launcher stand-in "runs" each step for its duration
// (10-60 virtual seconds).
// No processes and no files: this measures what grows with the nodes (decisions, the pool, the
// window, the bookkeeping per launch), not the file system, which costs the same per launch at any size.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, round } from '../lib.mjs';

const ONE = fileURLToPath(new URL('./scale-one.mjs', import.meta.url));

/** One packer (the real core, `dist/pack/simulate.js`) over `runs` one-core runs on `nodes` x `cores`, in a fresh process. */
function simulateOnce(nodes, cores, runs) {
  const r = spawnSync(process.execPath, [ONE, String(nodes), String(cores), String(runs)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`scale: ${nodes} nodes: ${r.stderr.trim() || `exit ${r.status}`}`);
  return JSON.parse(r.stdout);
}

export async function run(ctx) {
  const runs = ctx.quick ? 5_000 : 100_000;
  const sizes = ctx.quick ? [1, 8, 64] : [1, 64, 1024];
  const cores = 128;
  // Each measurement in its own process (a fresh heap and JIT), the sizes alternating (1, 64,
  // 1,024, 1, 64, ...), the median of each size's repetitions: the figures are CPU per launch of
  // one process on a shared machine, and a size measured after another in the same process would
  // inherit its heap, so where GC pauses land would decide more than the core does.
  const repeats = ctx.quick ? 1 : 5;
  const bySize = new Map(sizes.map((n) => [n, []]));
  for (let i = 0; i < repeats; i++) for (const nodes of sizes) bySize.get(nodes).push(simulateOnce(nodes, cores, runs));
  const results = sizes.map((nodes) => {
    const all = bySize.get(nodes);
    const mid = median(all.map((r) => r.coreUsPerLaunch));
    const pick = all.reduce((a, r) => (Math.abs(r.coreUsPerLaunch - mid) < Math.abs(a.coreUsPerLaunch - mid) ? r : a));
    return { nodes, ...pick, coreUsPerLaunch: mid, coreUsAll: all.map((r) => round(r.coreUsPerLaunch, 1)) };
  });
  const base = results[0];
  const rows = [];
  for (const r of results) {
    const ratio = r.coreUsPerLaunch / base.coreUsPerLaunch;
    const largest = r === results.at(-1);
    const judged = largest && !ctx.quick;
    rows.push({
      metric: `packer core time per launch, us, ${r.nodes} nodes x ${cores} cores, ${runs} runs (vs 1 node)`,
      themis: round(r.coreUsPerLaunch, 1),
      baseline: round(base.coreUsPerLaunch, 1),
      ratio: round(ratio, 2),
      target: judged ? '<= 1.25' : '-',
      met: judged ? ratio <= 1.25 : null,
    });
    rows.push({
      metric: `decision time per launch, us, ${r.nodes} nodes x ${cores} cores`,
      themis: round(r.decideUsPerLaunch, 2),
      baseline: null,
      ratio: null,
      target: judged ? '< 50' : '-',
      met: judged ? r.decideUsPerLaunch < 50 : null,
    });
    rows.push({
      metric: `whole simulation CPU per launch (core + launcher stand-in), us, ${r.nodes} nodes (for information)`,
      themis: round(r.cpuUsPerLaunch, 1),
      baseline: round(base.cpuUsPerLaunch, 1),
      ratio: round(r.cpuUsPerLaunch / base.cpuUsPerLaunch, 2),
      target: '-',
      met: null,
    });
    rows.push({
      metric: `GC pauses per launch, whole simulation (core + launcher stand-in), us, ${r.nodes} nodes (for information)`,
      themis: round(r.gcUsPerLaunch, 1),
      baseline: round(base.gcUsPerLaunch, 1),
      ratio: round(r.gcUsPerLaunch / base.gcUsPerLaunch, 2),
      target: '-',
      met: null,
    });
  }
  return { rows, details: { results } };
}
