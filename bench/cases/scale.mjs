// scale: the packer's own cost per launch as the allocation grows. The real packer core
// (dist/pack/transitions.js: decisions, claims and status writes as effects, step exits) is
// driven in process, in virtual time, on 1, 64 and 1,024 nodes of 128 cores with 100,000 queued
// one-core runs; a launcher stand-in "runs" each step for its duration (10-60 virtual seconds).
// No processes and no files: this measures what grows with the nodes (decisions, the pool, the
// window, the bookkeeping per launch), not the file system, which costs the same per launch at any size.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, round } from '../lib.mjs';

const dist = (m) => import(pathToFileURL(path.join(ROOT, 'dist', m)).href);

/** A binary heap of step exits by virtual time. */
class Exits {
  a = [];
  push(t, key) {
    const a = this.a;
    a.push([t, key]);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p][0] <= a[i][0]) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }
  pop() {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l][0] < a[m][0]) m = l;
        if (r < a.length && a[r][0] < a[m][0]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
  get size() {
    return this.a.length;
  }
}

/** Drive one packer core over `runs` queued runs on `nodes` x `cores`; its cost per launch. */
async function simulate(nodes, cores, runs) {
  const { transition } = await dist('pack/transitions.js');
  const { createState } = await dist('pack/state.js');
  const { createPool } = await dist('pack/pool.js');
  const { DEFAULT_PLAN_OPTIONS } = await dist('pack/plan.js');
  const { windowFor } = await dist('pack/run-queue.js');
  const { newStatus } = await dist('store/records.js');
  const pool = createPool(Array.from({ length: nodes }, (_, i) => ({ name: `n${i}`, cores, gpus: [] })));
  const cfg = {
    packerId: 'p',
    jobId: '1',
    host: 'h',
    maxRestarts: 0,
    abortOn: [],
    maxFailedRuns: null,
    hasPrepRun: false,
    hasPostRun: false,
    planOptions: DEFAULT_PLAN_OPTIONS,
    heartbeatMs: 10_000,
    launch: { mode: 'auto', scheduler: 'slurm', jobId: '1', ownNode: 0, bind: false, nodeLaunchers: true },
    stepLimit: 40_000,
  };
  const s = createState(cfg, pool);
  const step = { args: ['/bin/app'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: false, cwd: '.' };
  const record = { format: 1, id: 0, sample: {}, sampleKeys: [], steps: [step] };
  const need = { tasks: 1, coresPerTask: 1, gpusPerTask: 0 };
  const queue = Array.from({ length: runs }, (_, i) => ({ id: i + 1, runId: i + 1, dir: `/e/runs/${i + 1}`, step: 0, orphan: false, since: 0, passedOver: 0, record, need }));
  const windowSize = windowFor(nodes * cores);
  let head = 0;
  const claim = { runDir: '', owner: {}, id: { dev: 0, ino: 0 }, shared: null };
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const exits = new Exits();
  let now = 0;
  let launches = 0;
  let decideNs = 0n;
  let coreNs = 0n;
  let decisions = 0;
  let due = false;
  const at = () => ({ now, iso: '2026-01-01T00:00:00.000Z' });
  const handle = (ev) => {
    const t0 = process.hrtime.bigint();
    const fx = transition(s, ev, at());
    const spent = process.hrtime.bigint() - t0;
    coreNs += spent;
    if (ev.type === 'decide') {
      decideNs += spent;
      decisions++;
    }
    for (const e of fx) {
      switch (e.type) {
        case 'claim':
          handle({ type: 'claimed', candidate: e.candidate, record, slot: e.slot, claim, broken: null, status: newStatus(e.candidate.id), statusError: null, dequeueRequested: false });
          break;
        case 'write-status':
          handle({ type: 'status-written', runId: e.runId, ok: true });
          break;
        case 'spawn':
          launches++;
          exits.push(now + 10_000 + rand() * 50_000, e.key);
          break;
        case 'decide-now':
          handle(decideEvent());
          break;
        case 'decide-soon':
          due = true;
          break;
        case 'rescan':
          handle({ type: 'scanned', pending: runs - head, suspects: 0 });
          break;
        default:
      }
    }
  };
  const decideEvent = () => {
    while (head < queue.length && queue[head].gone) head++;
    const candidates = [];
    for (let i = head; i < queue.length && candidates.length < windowSize; i++) if (!queue[i].gone) candidates.push(queue[i]);
    return { type: 'decide', candidates, windowSize };
  };
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  handle(decideEvent());
  while (s.finished === null) {
    if (due) {
      due = false;
      handle(decideEvent());
      continue;
    }
    if (exits.size === 0) break;
    const [t, key] = exits.pop();
    now = t;
    const a = s.byKey.get(key);
    handle({ type: 'step-exited', key, exit: { format: 1, runId: a.id, step: 0, attempt: 0, code: 0, signal: null, stoppedBy: null, startedAt: '', endedAt: '', host: 'h', pid: 1 } });
  }
  const cpu = process.cpuUsage(cpu0);
  const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
  if (s.counts.successful !== runs) throw new Error(`scale: ${s.counts.successful} of ${runs} successful on ${nodes} nodes (${s.finished})`);
  // Time inside transition() is the packer core's own work (nested answers counted once: a
  // synchronous answer is handled inside the effect loop, outside the transition that asked).
  return {
    launches,
    coreUsPerLaunch: Number(coreNs) / 1000 / launches,
    cpuUsPerLaunch: (cpu.user + cpu.system) / launches,
    decideUsPerLaunch: Number(decideNs) / 1000 / launches,
    decisions,
    wallMs,
    makespanS: now / 1000,
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
      const r = await simulate(nodes, cores, runs);
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
  }
  return { rows, details: { results } };
}
