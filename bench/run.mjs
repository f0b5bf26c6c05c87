#!/usr/bin/env node
// The bench suite: every case of issue 6, each a ratio against a baseline run beside it on this
// machine (alternating, median of repetitions), printed as a table and written as JSON.
//
//   npm run bench                      # full sizes (about 15-20 minutes here)
//   npm run bench -- --quick           # small sizes, under 2 minutes (what CI runs)
//   npm run bench -- --case launch     # one case (repeat --case, or a comma list, for several)
//   npm run bench -- --cores 4         # in-flight cores where a case allows (launch, large, packing, srun, metaops)
//   npm run bench -- --runs N          # size of the big ensembles (gen, large, memory, status, summary; default 100000)
//   npm run bench -- --out FILE        # JSON elsewhere than bench/results/latest.json; --keep keeps the work dir
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, THEMIS, machine, rm, settle } from './lib.mjs';
import { genInputs, genInto } from './cases/gen.mjs';

export const CASES = ['gen', 'launch', 'large', 'memory', 'status', 'packing', 'idle', 'srun', 'scale', 'metaops', 'summary'];

function parseArgs(argv) {
  const o = { quick: false, cases: [], cores: null, out: null, keep: false, runs: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--case') o.cases.push(...val().split(','));
    else if (a === '--cores') o.cores = Number(val());
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--runs') o.runs = Number(val());
    else if (a === '--help' || a === '-h') {
      console.log(
        fs
          .readFileSync(new URL(import.meta.url), 'utf8')
          .split('\n')
          .slice(1, 11)
          .join('\n')
          .replace(/^\/\/ ?/gm, ''),
      );
      process.exit(0);
    } else throw new Error(`unknown option ${a} (see --help)`);
  }
  for (const c of o.cases) if (!CASES.includes(c)) throw new Error(`unknown case ${c}; cases: ${CASES.join(', ')}`);
  if (o.runs !== null && !(Number.isInteger(o.runs) && o.runs > 0)) throw new Error('--runs takes a whole number > 0');
  if (o.cores !== null && !(Number.isInteger(o.cores) && o.cores > 0)) throw new Error('--cores takes a whole number > 0');
  return o;
}

function fmt(v) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'NO';
  return String(v);
}

function printTable(rows) {
  const head = ['case', 'what (themis vs baseline)', 'themis', 'baseline', 'ratio', 'target', 'met?'];
  const body = rows.map((r) => [r.case, r.metric, fmt(r.themis), fmt(r.baseline), fmt(r.ratio), fmt(r.target), r.skipped ? 'skipped' : fmt(r.met)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const b of body) console.log(line(b));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(THEMIS)) {
    console.error(`no ${THEMIS}: run \`npm run build\` first`);
    process.exit(2);
  }
  const selected = opts.cases.length ? CASES.filter((c) => opts.cases.includes(c)) : CASES;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'themis-bench-'));
  // Interrupted (Ctrl-C, a timeout): do not leave a 100k-run tree behind.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      if (!opts.keep) {
        process.stderr.write(`bench: ${sig}: removing ${work}\n`);
        rm(work);
      }
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  const bigRuns = opts.runs ?? (opts.quick ? 2000 : 100_000);
  let big = null;
  const ctx = {
    quick: opts.quick,
    cores: opts.cores,
    /** --runs when given (null otherwise): cases with a big ensemble of their own size it by this too. */
    runs: opts.runs,
    work,
    shared: {},
    /** The suite's big ensemble (the gen case's tree), generated once and reused. */
    big() {
      if (!big) {
        const inputs = genInputs(path.join(work, 'big-inputs'), bigRuns);
        const dir = path.join(work, 'big');
        log(`generating the shared ${bigRuns}-run ensemble`);
        settle();
        big = { dir, inputs, runs: bigRuns, gen: genInto(inputs, dir) };
      }
      return big;
    },
  };
  const t0 = Date.now();
  const log = (l) => process.stderr.write(`bench: ${l}\n`);
  const result = {
    mode: opts.quick ? 'quick' : 'full',
    machine: machine(),
    commit: gitHead(),
    cases: {},
  };
  let failed = 0;
  for (const name of selected) {
    const before = machine();
    log(`${name} (load ${before.loadavg.join(' ')})`);
    const c0 = Date.now();
    let entry;
    try {
      const mod = await import(`./cases/${name}.mjs`);
      const r = await mod.run(ctx);
      entry = r.skipped ? { status: 'skipped', reason: r.skipped, rows: [] } : { status: 'ok', rows: r.rows, details: r.details };
    } catch (e) {
      failed++;
      entry = { status: 'error', error: String(e?.stack ?? e), rows: [] };
      log(`${name} failed: ${e?.message ?? e}`);
    }
    entry.seconds = Math.round((Date.now() - c0) / 100) / 10;
    entry.machineBefore = before;
    entry.machineAfter = machine();
    result.cases[name] = entry;
  }
  result.seconds = Math.round((Date.now() - t0) / 100) / 10;
  result.machineAfter = machine();
  const rows = [];
  for (const [name, c] of Object.entries(result.cases)) {
    if (c.status === 'ok') for (const r of c.rows) rows.push({ case: name, ...r });
    else rows.push({ case: name, metric: c.status === 'skipped' ? c.reason : `ERROR: ${c.error.split('\n')[0]}`, skipped: c.status === 'skipped', met: c.status === 'skipped' ? null : false });
  }
  result.table = rows;
  console.log(
    `\nthemis bench (${result.mode}), ${result.machine.cores} cores, load average ${result.machine.loadavg.join(' ')} at start, ${result.machineAfter.loadavg.join(' ')} at end; ${result.seconds} s`,
  );
  printTable(rows);
  const out = opts.out ?? path.join(ROOT, 'bench/results/latest.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  // The documented figures: the last full run of every case.
  if (!opts.quick && !opts.out && opts.runs === null && opts.cores === null && selected.length === CASES.length) fs.copyFileSync(out, path.join(ROOT, 'bench/results/full.json'));
  console.log(`written ${path.relative(process.cwd(), out) || out}`);
  if (opts.keep) console.log(`kept ${work}`);
  else rm(work);
  process.exitCode = failed ? 1 : 0;
}

function gitHead() {
  try {
    const head = fs.readFileSync(path.join(ROOT, '.git/HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const loose = path.join(ROOT, '.git', ref);
    if (fs.existsSync(loose)) return fs.readFileSync(loose, 'utf8').trim();
    const packed = fs
      .readFileSync(path.join(ROOT, '.git/packed-refs'), 'utf8')
      .split('\n')
      .find((l) => l.endsWith(` ${ref}`));
    return packed?.split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

main().catch((e) => {
  console.error(`bench: ${e?.message ?? e}`);
  process.exit(2);
});
