// status: `themis status --json` on the big ensemble (mixed statuses) against a plain shell scan
// that reads every status file (`find runs -name status.json -exec cat {} +`), alternating.
import fs from 'node:fs';
import path from 'node:path';
import { THEMIS, countStatuses, median, round, settle, timed } from '../lib.mjs';

const MIX = ['successful', 'successful', 'successful', 'successful', 'failed', 'killed', 'aborted', 'queued', 'queued', 'queued'];

/** Give the big ensemble's runs mixed statuses (once per bench run; bench data, written directly). */
function mixStatuses(runsDir) {
  for (const name of fs.readdirSync(runsDir)) {
    const file = path.join(runsDir, name, '.themis/status.json');
    let s;
    try {
      s = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    if (s.status !== 'queued') continue;
    const want = MIX[Number(name) % MIX.length];
    if (want === 'queued') continue;
    const at = new Date().toISOString();
    s.status = want;
    s.exitCode = want === 'successful' ? 0 : 1;
    s.startedAt = at;
    s.endedAt = at;
    s.reason = want === 'successful' ? null : `bench: ${want}`;
    s.history = [...s.history, { at, event: want }];
    fs.writeFileSync(file, JSON.stringify(s) + '\n');
  }
}

export async function run(ctx) {
  const repeats = ctx.quick ? 1 : 3;
  const big = ctx.big();
  const runsDir = path.join(big.dir, 'runs');
  if (!ctx.shared.mixed) {
    mixStatuses(runsDir);
    ctx.shared.mixed = true;
  }
  const counts = countStatuses(runsDir);
  settle();
  const th = [];
  const sh = [];
  for (let i = 0; i < repeats; i++) {
    th.push(timed(`${process.execPath} ${THEMIS} status --json > /dev/null`, { shell: true, cwd: big.dir }));
    sh.push(timed('find runs -name status.json -exec cat {} + > /dev/null', { shell: true, cwd: big.dir }));
  }
  const t = median(th.map((x) => x.seconds));
  const b = median(sh.map((x) => x.seconds));
  return {
    rows: [{ metric: `status --json on ${big.runs} runs, s (vs find -exec cat)`, themis: round(t), baseline: round(b), ratio: round(t / b, 2), target: '<= 1.00', met: t / b <= 1 }],
    details: {
      counts,
      themis: th.map((x) => ({ seconds: round(x.seconds), rssMB: round(x.rssMB, 1), cpuSeconds: x.cpuSeconds })),
      find: sh.map((x) => ({ seconds: round(x.seconds), cpuSeconds: x.cpuSeconds })),
    },
  };
}
