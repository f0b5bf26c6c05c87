// One measurement of the scale case, in a fresh process: `node scale-one.mjs NODES CORES RUNS`
// prints one JSON line. scale.mjs runs it once per size and repetition, alternating sizes, so no
// size is measured in a heap (or JIT state) that another size's simulation left behind.
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../lib.mjs';

const [nodes, cores, runs] = process.argv.slice(2).map(Number);
const { simulate } = await import(pathToFileURL(path.join(ROOT, 'dist/pack/simulate.js')).href);
let seed = 7;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const work = Array.from({ length: runs }, (_, i) => ({ id: i + 1, steps: [{ tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, seconds: 10 + rand() * 50 }] }));
const allocation = { nodes: Array.from({ length: nodes }, (_, i) => ({ name: `n${i}`, cores, gpus: [] })) };
// GC pauses of the whole simulation (core and launcher stand-in), for information: the core's time
// includes the pauses that happen to start inside a transition.
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
if (r.successful !== runs) {
  console.error(`scale: ${r.successful} of ${runs} successful on ${nodes} nodes (${p.reason})`);
  process.exit(1);
}
console.log(
  JSON.stringify({
    launches: p.launches,
    coreUsPerLaunch: (p.transitionMs * 1000) / p.launches,
    decideUsPerLaunch: p.decideMsPerLaunch * 1000,
    cpuUsPerLaunch: (cpu.user + cpu.system) / p.launches,
    gcUsPerLaunch: (gcMs * 1000) / p.launches,
    decisions: p.decisions,
    wallMs: r.wallMs,
    makespanS: r.makespanSeconds,
    heapMB: Math.round(process.memoryUsage().heapUsed / 1e6),
  }),
);
