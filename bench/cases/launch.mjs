// launch: N runs of /bin/true from `themis run` to all successful, with 2 and 8 in flight, against
// `xargs -P2`/`-P8`, GNU `parallel -j2 --joblog` and a bare Node spawn loop (a reference: the floor
// for any Node launcher) of the same commands, alternating; and the
// packer's own CPU per launched run (the packer process plus its launcher child, sampled from /proc;
// the steps themselves are not counted).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureParallel, genEnsemble, median, round, settle, snapshot, themisRun, timed, writeCsv } from '../lib.mjs';

/** The floor for any Node launcher: child_process.spawn in a loop, nothing recorded (a reference row). */
const NODE_LOOP = fileURLToPath(new URL('../baselines/node-spawn-loop.mjs', import.meta.url));
/** The packer's file work for a run alone, by themis's own store functions (a reference row). */
const STORE_OPS = fileURLToPath(new URL('../baselines/store-ops.mjs', import.meta.url));

export async function run(ctx) {
  const n = ctx.quick ? 100 : 2000;
  const repeats = ctx.quick ? 1 : 3;
  const levels = ctx.cores ? [ctx.cores] : [2, 8];
  const noParallel = ensureParallel({ install: !ctx.quick });
  const dir = path.join(ctx.work, 'launch');
  const csv = path.join(ctx.work, 'launch.csv');
  writeCsv(csv, ['x'], n, (i) => [i]);
  genEnsemble(dir, '/bin/true', csv);
  const restore = snapshot(dir);
  const joblog = path.join(ctx.work, 'parallel.joblog');
  // The packer's fixed CPU (Node startup, imports, first scan, launcher start) from 1-run ensembles,
  // so the per-run figure is the marginal cost of a launch, not startup spread over few runs.
  const one = path.join(ctx.work, 'launch-one');
  const oneCsv = path.join(ctx.work, 'launch-one.csv');
  writeCsv(oneCsv, ['x'], 1, (i) => [i]);
  genEnsemble(one, '/bin/true', oneCsv);
  const restoreOne = snapshot(one);
  const fixed = [];
  for (let i = 0; i < repeats; i++) {
    restoreOne();
    const r = await themisRun(one, ['--cores', '2']);
    fixed.push(r.self.cpuMs + r.helpers.cpuMs);
  }
  const fixedMs = median(fixed);
  // How much of a launch's CPU is the file work of claiming, reading, finishing and releasing a
  // run, done alone on the same ensemble and disk: the part no launcher design can remove.
  const storeOps = [];
  for (let i = 0; i < repeats; i++) {
    restore();
    settle();
    storeOps.push(JSON.parse(timed([process.execPath, STORE_OPS, dir]).stdout).cpuMsPerRun);
  }
  // The marginal CPU of a launch: the slope between N and 2N runs at 2 in flight. Unlike the
  // 1-run subtraction, it leaves out the fixed cost of V8 optimising the hot path (paid once per
  // packer, about 0.2 s of compiler-thread CPU here), which a 2,000-run packer spreads over its runs.
  const twice = path.join(ctx.work, 'launch-twice');
  const twiceCsv = path.join(ctx.work, 'launch-twice.csv');
  writeCsv(twiceCsv, ['x'], 2 * n, (i) => [i]);
  genEnsemble(twice, '/bin/true', twiceCsv);
  const restoreTwice = snapshot(twice);
  const twiceCpu = [];
  const rows = [];
  const details = { runs: n, repeats, parallel: noParallel ?? 'used', levels: {} };
  details.packerFixedCpuMs = round(fixedMs, 0);
  const cpuPerRun = [];
  for (const p of levels) {
    const th = [];
    const xa = [];
    const gp = [];
    const bare = [];
    for (let i = 0; i < repeats; i++) {
      restore();
      const r = await themisRun(dir, ['--cores', String(p)]);
      if (r.summary.counts.successful !== n) throw new Error(`themis run: ${r.summary.counts.successful} of ${n} successful`);
      th.push({ seconds: r.seconds, cpuMs: r.self.cpuMs + r.helpers.cpuMs, packerCpuMs: r.self.cpuMs, launcherCpuMs: r.helpers.cpuMs });
      details.launcher = r.helpers.names;
      if (p === 2) {
        settle();
        restoreTwice();
        const r2 = await themisRun(twice, ['--cores', '2']);
        if (r2.summary.counts.successful !== 2 * n) throw new Error(`themis run: ${r2.summary.counts.successful} of ${2 * n} successful`);
        twiceCpu.push(r2.self.cpuMs + r2.helpers.cpuMs);
      }
      settle();
      xa.push(timed(`seq ${n} | xargs -P${p} -n1 /bin/true`, { shell: true }));
      if (p === 2 && !noParallel) settle();
      if (p === 2 && !noParallel) gp.push(timed(`seq ${n} | parallel -j${p} --joblog ${joblog} /bin/true`, { shell: true }));
      settle();
      bare.push(timed([process.execPath, NODE_LOOP, String(n), String(p), '/bin/true']));
    }
    const t = median(th.map((x) => x.seconds));
    const x = median(xa.map((x) => x.seconds));
    const ratio = x / t; // rate ratio: themis runs/s over xargs runs/s
    rows.push({
      metric: `${n} x /bin/true, ${p} in flight, s (vs xargs -P${p})`,
      themis: round(t),
      baseline: round(x),
      ratio: round(ratio, 2),
      target: p === 2 ? '>= 0.60' : p === 8 ? '>= 0.75' : '-',
      met: p === 2 ? ratio >= 0.6 : p === 8 ? ratio >= 0.75 : null,
    });
    if (gp.length) {
      const g = median(gp.map((x) => x.seconds));
      rows.push({ metric: `${n} x /bin/true, ${p} in flight, s (vs parallel -j${p} --joblog)`, themis: round(t), baseline: round(g), ratio: round(g / t, 2), target: '-', met: null });
    }
    const b = median(bare.map((x) => x.seconds));
    rows.push({
      metric: `${n} x /bin/true, ${p} in flight: a bare Node spawn loop (no state) vs xargs -P${p}, s`,
      themis: round(b),
      baseline: round(x),
      ratio: round(x / b, 2),
      target: '-',
      met: null,
    });
    for (const s of th) cpuPerRun.push((s.cpuMs - fixedMs) / (n - 1));
    if (p === 2) details.marginal = { runs: [n, 2 * n], cpuMs: [th.map((s) => round(s.cpuMs, 0)), twiceCpu.map((c) => round(c, 0))] };
    details.levels[p] = {
      themis: th.map((s) => ({ seconds: round(s.seconds), packerCpuMs: round(s.packerCpuMs, 0), launcherCpuMs: round(s.launcherCpuMs, 0) })),
      xargs: xa.map((s) => ({ seconds: round(s.seconds), cpuSeconds: s.cpuSeconds })),
      nodeSpawnLoop: bare.map((s) => ({ seconds: round(s.seconds), cpuSeconds: s.cpuSeconds })),
      parallel: gp.map((s) => ({ seconds: round(s.seconds), cpuSeconds: s.cpuSeconds })),
      xargsCpuMsPerRun: round((median(xa.map((s) => s.cpuSeconds ?? 0)) * 1000) / n, 2),
    };
  }
  const cpu = median(cpuPerRun);
  rows.push({ metric: 'packer CPU per launched run, ms (packer + launcher, startup excluded)', themis: round(cpu, 2), baseline: null, ratio: null, target: '<= 0.5', met: cpu <= 0.5 });
  const store = median(storeOps);
  rows.push({
    metric: "the same runs' file work alone (claim, read, final status, summary, release; no launch), CPU ms per run",
    themis: round(store, 2),
    baseline: null,
    ratio: null,
    target: '-',
    met: null,
  });
  details.storeOpsCpuMsPerRun = storeOps.map((x) => round(x, 3));
  if (twiceCpu.length) {
    const atN = details.marginal.cpuMs[0];
    const slope = (median(twiceCpu) - median(atN)) / n;
    rows.push({ metric: `packer CPU per launched run, ms, marginal (${n} vs ${2 * n} runs, 2 in flight)`, themis: round(slope, 2), baseline: null, ratio: null, target: '-', met: null });
  }
  if (noParallel) details.skipped = `parallel baseline: ${noParallel}`;
  return { rows, details };
}
