// memory: the packer's peak RSS (VmHWM of the packer process; its launcher child apart) with the big
// ensemble queued. Reuses the large-queue case's runs when they happened in this bench run.
import { round, themisRun } from '../lib.mjs';

export async function run(ctx) {
  const big = ctx.big();
  let samples = ctx.shared.memory;
  if (!samples?.length) {
    const stopAfter = ctx.quick ? 5 : 20;
    const l = await themisRun(big.dir, ['--cores', String(ctx.cores ?? 2)], {
      onSample: (elapsed, _p, child) => {
        if (elapsed >= stopAfter * 1000 && !child.killed) child.kill('SIGTERM');
      },
    });
    samples = [{ queued: big.runs, packerHwmMB: l.self.hwmMB, launcherHwmMB: l.helpers.hwmMB, seconds: l.seconds }];
  }
  const peak = Math.max(...samples.map((s) => s.packerHwmMB));
  const launcher = Math.max(...samples.map((s) => s.launcherHwmMB));
  return {
    rows: [{ metric: `packer peak RSS with ${big.runs} queued, MB`, themis: round(peak, 0), baseline: null, ratio: null, target: '< 200', met: peak < 200 }],
    details: {
      launcherPeakRssMB: round(launcher, 1),
      samples: samples.map((s) => ({ ...s, packerHwmMB: round(s.packerHwmMB, 1), launcherHwmMB: round(s.launcherHwmMB, 1), seconds: round(s.seconds) })),
    },
  };
}
