// launch, large queue: launching /bin/true runs (2 in flight) with the big ensemble queued (100k
// runs) against the same ensemble shape with 1k queued, alternating. Both sides launch the same
// number of runs: the small run drains its queue; the large run gets SIGTERM once as many runs have
// succeeded. From the status files: the steady launch rate (runs / first start to last end; the
// target) and the startup (packer start to first step start, mostly the scan of every status file).
// Also records the packer's peak RSS for the memory case.
import fs from 'node:fs';
import path from 'node:path';
import { median, round, settle, snapshot, themisRun } from '../lib.mjs';
import { genInputs, genInto } from './gen.mjs';

function readStatus(runsDir, id) {
  try {
    return JSON.parse(fs.readFileSync(path.join(runsDir, String(id), '.themis/status.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** Ids of queued runs in id order (the order a packer without a plan takes them). */
function queuedIds(runsDir) {
  const ids = fs
    .readdirSync(runsDir)
    .map(Number)
    .filter((id) => Number.isInteger(id))
    .sort((a, b) => a - b);
  return ids.filter((id) => readStatus(runsDir, id)?.status === 'queued');
}

/** Of `ids`, the runs that succeeded since `t0` (epoch ms): count, first start, last end. */
function timeline(runsDir, ids, t0) {
  let count = 0;
  let first = Infinity;
  let last = 0;
  for (const id of ids) {
    const s = readStatus(runsDir, id);
    if (s?.status !== 'successful' || !s.endedAt || Date.parse(s.endedAt) < t0) continue;
    count++;
    first = Math.min(first, Date.parse(s.startedAt));
    last = Math.max(last, Date.parse(s.endedAt));
  }
  return { count, startup: (first - t0) / 1000, span: (last - first) / 1000, rate: count / ((last - first) / 1000), total: count / ((last - t0) / 1000) };
}

export async function run(ctx) {
  const small = ctx.quick ? 200 : 1000;
  const repeats = ctx.quick ? 1 : 3;
  const cores = ctx.cores ?? 2;
  const big = ctx.big();
  const bigRuns = path.join(big.dir, 'runs');
  const inputs = genInputs(path.join(ctx.work, 'large-small-inputs'), small);
  const dir = path.join(ctx.work, 'large-small');
  genInto(inputs, dir);
  const restore = snapshot(dir);
  const smallIds = Array.from({ length: small }, (_, i) => i + 1);
  const queue = queuedIds(bigRuns);
  const rs = [];
  const rl = [];
  for (let i = 0; i < repeats; i++) {
    restore();
    const t0s = Date.now();
    const s = await themisRun(dir, ['--cores', String(cores)]);
    if (s.summary.counts.successful !== small) throw new Error(`small queue: ${s.summary.counts.successful} of ${small} successful`);
    rs.push({ ...timeline(path.join(dir, 'runs'), smallIds, t0s), wall: s.seconds });
    // The large run: the next `small` queued ids; stop once the last of them has succeeded.
    const mine = queue.splice(0, small + 2 * cores);
    const watch = mine.slice(small - 1, small);
    settle();
    let termAt = null;
    const t0l = Date.now();
    const l = await themisRun(big.dir, ['--cores', String(cores)], {
      onSample: (elapsed, _p, child) => {
        if (termAt === null && watch.every((id) => readStatus(bigRuns, id)?.status === 'successful')) {
          termAt = elapsed / 1000;
          child.kill('SIGTERM');
        }
      },
    });
    rl.push({ ...timeline(bigRuns, mine, t0l), wall: l.seconds, termAt, packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB });
    ctx.shared.memory ??= [];
    ctx.shared.memory.push({ queued: queue.length + mine.length, packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB, seconds: l.seconds });
    // Runs the SIGTERM put back (or never started) stay at the front for the next repetition.
    queue.unshift(...mine.filter((id) => readStatus(bigRuns, id)?.status === 'queued'));
  }
  const a = median(rs.map((x) => x.rate));
  const b = median(rl.map((x) => x.rate));
  const sa = median(rs.map((x) => x.startup));
  const sb = median(rl.map((x) => x.startup));
  const ta = median(rs.map((x) => x.total));
  const tb = median(rl.map((x) => x.total));
  const fmt = (x) => ({
    succeeded: x.count,
    startup: round(x.startup),
    span: round(x.span),
    rate: round(x.rate, 1),
    rateWithStartup: round(x.total, 1),
    wall: round(x.wall),
    ...(x.termAt !== undefined ? { sigtermAt: round(x.termAt), packerHwmMB: round(x.packerHwmMB, 1), launcherHwmMB: round(x.launcherHwmMB, 1) } : {}),
  });
  return {
    rows: [
      { metric: `steady launch rate, ${big.runs} vs ${small} queued, runs/s`, themis: round(b, 1), baseline: round(a, 1), ratio: round(b / a, 2), target: '>= 0.80', met: b / a >= 0.8 },
      { metric: `same, startup included (${small} runs launched), runs/s`, themis: round(tb, 1), baseline: round(ta, 1), ratio: round(tb / ta, 2), target: '-', met: null },
      { metric: `startup to first step, ${big.runs} vs ${small} queued, s`, themis: round(sb, 2), baseline: round(sa, 2), ratio: null, target: '-', met: null },
    ],
    details: { cores, launched: small, small: rs.map(fmt), large: rl.map(fmt) },
  };
}
