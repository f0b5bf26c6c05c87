// summary (issue 14, "Kind to Lustre and GPFS"): on an ensemble whose runs are 99% finished, how
// many run status files `themis status` and one packer rescan still open (counted with strace, so
// the same on any machine), and `themis status` against `themis status --full` (which reads every
// run) in wall time. The 99% are finished by themis itself (`themis run`), so whatever it records
// when a run ends (a summary of finished runs, say) is written as it would be; the 1% queued are
// added afterwards with `themis add`.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { THEMIS, countStatuses, ensureStrace, median, round, settle, timed, writeCsv } from '../lib.mjs';
import { countStraceFile } from '../strace-count.mjs';
import { genInputs, genInto } from './gen.mjs';

export const TARGET_OPEN_SHARE = 0.03;
export const TARGET_FULL_RATIO = 10;
const STATUS_FILE = /(^|\/)\.themis\/status\.json$/;

/**
 * The 99%-finished ensemble, built once per bench run (ctx.shared.finished) and reused: `themis gen`
 * (the gen case's inputs) of 99% of N runs, `themis run` of all of them, then `themis add` of the
 * remaining 1%, left queued. N = --runs, else 100,000 (5,000 with --quick).
 */
export function finishedTree(ctx, log = () => {}) {
  if (ctx.shared.finished) return ctx.shared.finished;
  const runs = ctx.runs ?? (ctx.quick ? 5000 : 100_000);
  const queued = Math.max(1, Math.round(runs / 100));
  const done = runs - queued;
  const base = fs.realpathSync(ctx.work);
  const inputs = genInputs(path.join(base, 'finished-inputs'), done);
  const dir = path.join(base, 'finished');
  log(`summary: generating ${done} runs, running them, adding ${queued} queued`);
  settle();
  const gen = genInto(inputs, dir);
  const cores = ctx.cores ?? 2;
  const ran = timed([process.execPath, THEMIS, 'run', '--json', '--cores', String(cores)], { cwd: dir });
  const started = JSON.parse(ran.stdout).counts?.started ?? null;
  const header = fs.readFileSync(path.join(inputs, 'samples.csv'), 'utf8').split('\n', 1)[0].split(',');
  const more = path.join(inputs, 'queued.csv');
  writeCsv(more, header, queued, (r) => header.map((_, i) => (((done + r) * 7919 + i * 104729) % 100000) / 1000));
  const add = timed([process.execPath, THEMIS, 'add', more, '--json'], { cwd: dir });
  const counts = countStatuses(path.join(dir, 'runs'));
  if (counts.successful !== done || counts.queued !== queued) throw new Error(`the 99%-finished ensemble: expected ${done} successful and ${queued} queued, found ${JSON.stringify(counts)}`);
  settle();
  ctx.shared.finished = {
    dir,
    runs,
    done,
    queued,
    counts,
    build: { genSeconds: round(gen.seconds, 1), runSeconds: round(ran.seconds, 1), started, cores, addSeconds: round(add.seconds, 2) },
  };
  return ctx.shared.finished;
}

/** Opens of run status files (and every open under the ensemble, by pattern) while `argv` runs under strace. */
function countOpens(tree, argv, trace) {
  const t = timed(['strace', '-f', '-qq', '-y', '-e', 'trace=open,openat,openat2,creat', '-o', trace, ...argv], { cwd: tree.dir });
  const count = countStraceFile(trace, { root: tree.dir, cwd: tree.dir });
  fs.rmSync(trace, { force: true });
  const statusOpens = count.patterns.filter((p) => p.class === 'open' && !p.paths.startsWith('.themis_setup/') && STATUS_FILE.test(p.paths)).reduce((a, p) => a + p.count, 0);
  return {
    statusOpens,
    share: statusOpens / tree.runs,
    seconds: round(t.seconds, 2),
    stdout: t.stdout,
    opensUnderRoot: count.total,
    patterns: count.patterns.slice(0, 30).map((p) => ({ count: p.count, op: p.key })),
  };
}

const pct = (x) => round(100 * x, 2);

export async function run(ctx) {
  const log = (l) => process.stderr.write(`bench: ${l}\n`);
  const tree = finishedTree(ctx, log);
  const rows = [];
  const details = { runs: tree.runs, finished: tree.done, queued: tree.queued, counts: tree.counts, build: tree.build };
  const noStrace = ensureStrace();
  if (noStrace) {
    rows.push({ metric: `status.json opens by themis status / packer rescan: skipped: ${noStrace}`, skipped: true, met: null });
  } else {
    const status = countOpens(tree, [process.execPath, THEMIS, 'status', '--json'], path.join(ctx.work, 'summary-status.trace'));
    // The packer's rescan, alone: one scanQueue() as the packer calls it when it looks for work again.
    const script = path.join(ctx.work, 'summary-rescan.mjs');
    fs.writeFileSync(
      script,
      `import { scanQueue } from ${JSON.stringify(path.join(path.dirname(THEMIS), '../pack/queue.js'))};\n` +
        `const s = await scanQueue(process.argv[2], { plan: [], steal: true, skip: new Set(), now: Date.now(), claimState: () => 'live' });\n` +
        `console.log(JSON.stringify({ candidates: s.candidates.length, pending: s.pending, queued: s.queued, problems: s.problems.length, workers: s.workers }));\n`,
    );
    const rescan = countOpens(tree, [process.execPath, script, path.join(tree.dir, '.themis_setup')], path.join(ctx.work, 'summary-rescan.trace'));
    const scan = JSON.parse(rescan.stdout);
    if (scan.queued !== tree.queued) throw new Error(`the rescan found ${scan.queued} queued runs, not ${tree.queued}: ${rescan.stdout}`);
    delete status.stdout;
    delete rescan.stdout;
    rows.push({
      metric: `status.json files opened by themis status, % of ${tree.runs} runs (99% finished)`,
      themis: pct(status.share),
      baseline: null,
      ratio: null,
      target: `<= ${pct(TARGET_OPEN_SHARE)}`,
      met: status.share <= TARGET_OPEN_SHARE,
    });
    rows.push({
      metric: `status.json files opened by one packer rescan (scanQueue), % of ${tree.runs} runs`,
      themis: pct(rescan.share),
      baseline: null,
      ratio: null,
      target: `<= ${pct(TARGET_OPEN_SHARE)}`,
      met: rescan.share <= TARGET_OPEN_SHARE,
    });
    details.opens = {
      command: 'strace -f -qq -y -e trace=open,openat,openat2,creat; opens of runs/*/.themis/status.json (failed opens too) over all runs',
      status,
      rescan: { ...rescan, scan },
    };
  }
  const help = spawnSync(process.execPath, [THEMIS, 'status', '--help'], { encoding: 'utf8' });
  if (!/--full\b/.test(help.stdout ?? '')) {
    rows.push({ metric: 'themis status vs status --full: skipped: status --full not available', skipped: true, met: null });
  } else {
    settle();
    const quick = [];
    const full = [];
    for (let i = 0; i < 3; i++) {
      quick.push(timed(`${process.execPath} ${THEMIS} status --json > /dev/null`, { shell: true, cwd: tree.dir }));
      full.push(timed(`${process.execPath} ${THEMIS} status --full --json > /dev/null`, { shell: true, cwd: tree.dir }));
    }
    const q = median(quick.map((x) => x.seconds));
    const f = median(full.map((x) => x.seconds));
    rows.push({
      metric: `themis status vs status --full on ${tree.runs} runs (99% finished), s`,
      themis: round(q),
      baseline: round(f),
      ratio: round(f / q, 2),
      target: `>= ${TARGET_FULL_RATIO}`,
      met: f / q >= TARGET_FULL_RATIO,
    });
    details.full = {
      status: quick.map((x) => ({ seconds: round(x.seconds), cpuSeconds: x.cpuSeconds, rssMB: round(x.rssMB, 1) })),
      statusFull: full.map((x) => ({ seconds: round(x.seconds), cpuSeconds: x.cpuSeconds, rssMB: round(x.rssMB, 1) })),
    };
  }
  return { rows, details };
}
