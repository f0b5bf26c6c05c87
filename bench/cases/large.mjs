// launch, large queue: the launch rate (/bin/true, 2 in flight) with the big ensemble queued (100k
// runs) against the same ensemble shape with 1k queued, alternating. The small run drains its
// queue; the large run gets SIGTERM after as long as the small run took, and its rate counts the
// runs that succeeded by then (startup scan included in both). Also records the packer's peak RSS
// for the memory case.
import path from 'node:path';
import { median, round, snapshot, themisRun } from '../lib.mjs';
import { genInputs, genInto } from './gen.mjs';

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
    const s = await themisRun(dir, ['--cores', String(cores)]);
    if (s.summary.counts.successful !== small) throw new Error(`small queue: ${s.summary.counts.successful} of ${small} successful`);
    rs.push({ seconds: s.seconds, rate: small / s.seconds });
    let termAt = null;
    const l = await themisRun(big.dir, ['--cores', String(cores)], {
      onSample: (elapsed, _p, child) => {
        if (termAt === null && elapsed >= s.seconds * 1000) {
          termAt = elapsed / 1000;
          child.kill('SIGTERM');
        }
      },
    });
    const done = l.summary.counts.successful;
    rl.push({ seconds: termAt ?? l.seconds, successful: done, rate: done / (termAt ?? l.seconds), packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB });
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
      small: rs.map((x) => ({ seconds: round(x.seconds), rate: round(x.rate, 1) })),
      large: rl.map((x) => ({ seconds: round(x.seconds), successful: x.successful, rate: round(x.rate, 1), packerHwmMB: round(x.packerHwmMB, 1), launcherHwmMB: round(x.launcherHwmMB, 1) })),
    },
  };
}
