// launch, large queue: the launch rate (/bin/true, 2 in flight) with the big ensemble queued (100k
// runs) against the same ensemble shape with 1k queued, alternating. The small run drains its
// queue; the large run gets SIGTERM after as long as the small run took. Each rate is the runs that
// succeeded over the time from the packer's start to the end of the last of them (from the status
// files; startup scan included, shutdown excluded on both sides). Also records the packer's peak
// RSS for the memory case.
import fs from 'node:fs';
import path from 'node:path';
import { median, round, settle, snapshot, themisRun } from '../lib.mjs';
import { genInputs, genInto } from './gen.mjs';

/** Runs that succeeded since `sinceMs` (epoch) and when the last of them ended, from status files. */
function succeededSince(runsDir, sinceMs) {
  let count = 0;
  let last = sinceMs;
  for (const id of fs.readdirSync(runsDir)) {
    let s;
    try {
      s = JSON.parse(fs.readFileSync(path.join(runsDir, id, '.themis/status.json'), 'utf8'));
    } catch {
      continue;
    }
    if (s.status !== 'successful' || !s.endedAt) continue;
    const end = Date.parse(s.endedAt);
    if (end < sinceMs) continue;
    count++;
    last = Math.max(last, end);
  }
  return { count, seconds: (last - sinceMs) / 1000 };
}

export async function run(ctx) {
  const small = ctx.quick ? 200 : 1000;
  const repeats = ctx.quick ? 1 : 3;
  const cores = ctx.cores ?? 2;
  const big = ctx.big();
  const inputs = genInputs(path.join(ctx.work, 'large-small-inputs'), small);
  const dir = path.join(ctx.work, 'large-small');
  genInto(inputs, dir);
  const restore = snapshot(dir);
  const rs = [];
  const rl = [];
  for (let i = 0; i < repeats; i++) {
    restore();
    // Both rates: runs succeeded / (end of the last of them - packer start), from the status files,
    // so neither side counts its shutdown.
    const t0s = Date.now();
    const s = await themisRun(dir, ['--cores', String(cores)]);
    if (s.summary.counts.successful !== small) throw new Error(`small queue: ${s.summary.counts.successful} of ${small} successful`);
    const ss = succeededSince(path.join(dir, 'runs'), t0s);
    rs.push({ seconds: ss.seconds, wall: s.seconds, rate: ss.count / ss.seconds });
    settle();
    let termAt = null;
    const t0l = Date.now();
    const l = await themisRun(big.dir, ['--cores', String(cores)], {
      onSample: (elapsed, _p, child) => {
        if (termAt === null && elapsed >= s.seconds * 1000) {
          termAt = elapsed / 1000;
          child.kill('SIGTERM');
        }
      },
    });
    const done = l.summary.counts.successful;
    const sl = succeededSince(path.join(big.dir, 'runs'), t0l);
    rl.push({ seconds: sl.seconds, termAt, successful: sl.count, rate: sl.count / sl.seconds, packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB });
    ctx.shared.memory ??= [];
    ctx.shared.memory.push({ queued: big.runs - (ctx.shared.consumed ?? 0), packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB, seconds: l.seconds });
    ctx.shared.consumed = (ctx.shared.consumed ?? 0) + done;
  }
  const a = median(rs.map((x) => x.rate));
  const b = median(rl.map((x) => x.rate));
  return {
    rows: [
      { metric: `launch rate with ${big.runs} queued vs ${small} queued, runs/s`, themis: round(b, 1), baseline: round(a, 1), ratio: round(b / a, 2), target: '>= 0.80', met: b / a >= 0.8 },
    ],
    details: {
      cores,
      small: rs.map((x) => ({ seconds: round(x.seconds), wall: round(x.wall), rate: round(x.rate, 1) })),
      large: rl.map((x) => ({ seconds: round(x.seconds), sigtermAt: round(x.termAt), successful: x.successful, rate: round(x.rate, 1), packerHwmMB: round(x.packerHwmMB, 1), launcherHwmMB: round(x.launcherHwmMB, 1) })),
    },
  };
}
