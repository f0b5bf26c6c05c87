// idle: the packer's CPU (packer + launcher child, from /proc) while its only 2 runs sleep; the
// window starts once both steps run and ends before they exit, so startup and shutdown are excluded.
import fs from 'node:fs';
import path from 'node:path';
import { genEnsemble, round, themisRun, writeCsv } from '../lib.mjs';

export async function run(ctx) {
  const seconds = ctx.quick ? 4 : 20;
  const csv = path.join(ctx.work, 'idle.csv');
  writeCsv(csv, ['x'], 2, (i) => [i]);
  const dir = path.join(ctx.work, 'idle');
  genEnsemble(dir, '/bin/sleep', csv, ['--args', String(seconds)]);
  // Both steps run once both statuses are `running` and the packer's journal has their starts.
  const bothStarted = () => {
    try {
      return [1, 2].every((id) => {
        const s = JSON.parse(fs.readFileSync(path.join(dir, 'runs', String(id), '.themis/status.json'), 'utf8'));
        if (s.status !== 'running' || !s.launch) return false;
        const journal = fs.readFileSync(path.join(dir, '.themis_setup', 'packers', `${s.launch.packer}.journal`), 'utf8');
        return journal.includes(`\nS ${s.launch.key} `) || journal.startsWith(`S ${s.launch.key} `);
      });
    } catch {
      return false;
    }
  };
  let from = null;
  let to = null;
  const r = await themisRun(dir, ['--cores', '2'], {
    intervalMs: 100,
    onSample: (t, p) => {
      if (from === null) {
        if (bothStarted()) from = { t, cpuMs: p.cpuMs };
      } else if (t - from.t <= (seconds - 1) * 1000) to = { t, cpuMs: p.cpuMs };
    },
  });
  if (r.summary.counts.successful !== 2) throw new Error(`idle: ${r.summary.counts.successful} of 2 successful`);
  if (!from || !to) throw new Error('idle: never saw both steps running');
  const pct = ((to.cpuMs - from.cpuMs) / (to.t - from.t)) * 100;
  return {
    rows: [{ metric: `packer CPU while 2 runs sleep ${seconds} s, % of a core`, themis: round(pct, 2), baseline: null, ratio: null, target: '< 2', met: pct < 2 }],
    details: { windowSeconds: round((to.t - from.t) / 1000, 2), windowCpuMs: round(to.cpuMs - from.cpuMs, 0), totalCpuMs: round(r.self.cpuMs + r.helpers.cpuMs, 0), wall: round(r.seconds, 2) },
  };
}
