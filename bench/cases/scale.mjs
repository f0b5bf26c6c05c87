// scale: the packer's own cost per launch as the allocation grows. The real packer core
// (decisions, claims and status writes as effects, step exits) is driven in process, in virtual
// time, by `dist/pack/simulate.js` (the driver `themis plan` uses) on 1, 64 and 1,024 nodes of 128
// cores with 100,000 queued one-core runs; its launcher stand-in "runs" each step for its duration
// (10-60 virtual seconds).
// No processes and no files: this measures what grows with the nodes (decisions, the pool, the
// window, the bookkeeping per launch), not the file system, which costs the same per launch at any size.
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { ROOT, round } from '../lib.mjs';

const dist = (m) => import(pathToFileURL(path.join(ROOT, 'dist', m)).href);

/** One packer (the real core, `dist/pack/simulate.js`) over `runs` one-core runs on `nodes` x `cores`. */
async function simulateOnce(nodes, cores, runs) {
  const { simulate } = await dist('pack/simulate.js');
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const work = Array.from({ length: runs }, (_, i) => ({ id: i + 1, steps: [{ tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, seconds: 10 + rand() * 50 }] }));
  const allocation = { nodes: Array.from({ length: nodes }, (_, i) => ({ name: `n${i}`, cores, gpus: [] })) };
  // GC pauses of the whole simulation (core and launcher stand-in), for information: the core's
  // time includes the pauses that happen to start inside a transition, and which ones do depends on
  // which allocation fills the young generation, so this says how much of the spread is collection.
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  gc.observe({ entryTypes: ['gc'] });
  const cpu0 = process.cpuUsage();
  const r = simulate(work, [allocation]);
  const cpu = process.cpuUsage(cpu0);
  // The entries are delivered after the synchronous simulation, on a later turn of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 20));
  gc.disconnect();
  const p = r.packers[0];
  if (r.successful !== runs) throw new Error(`scale: ${r.successful} of ${runs} successful on ${nodes} nodes (${p.reason})`);
  return {
    launches: p.launches,
    coreUsPerLaunch: (p.transitionMs * 1000) / p.launches,
    decideUsPerLaunch: p.decideMsPerLaunch * 1000,
    cpuUsPerLaunch: (cpu.user + cpu.system) / p.launches,
    gcUsPerLaunch: (gcMs * 1000) / p.launches,
    decisions: p.decisions,
    wallMs: r.wallMs,
    makespanS: r.makespanSeconds,
  };
}

export async function run(ctx) {
  const runs = ctx.quick ? 5_000 : 100_000;
  const sizes = ctx.quick ? [1, 8, 64] : [1, 64, 1024];
  const cores = 128;
  const results = [];
  for (const nodes of sizes) {
    // Best of 3: the figures are CPU per launch of one process, and the machine is shared.
    let best = null;
    for (let i = 0; i < 3; i++) {
      const r = await simulateOnce(nodes, cores, runs);
      if (!best || r.coreUsPerLaunch < best.coreUsPerLaunch) best = r;
    }
    results.push({ nodes, ...best });
  }
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
