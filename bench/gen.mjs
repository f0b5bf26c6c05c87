#!/usr/bin/env node
// Benchmark: `themis gen` of N runs (each: a parsed 2 KB deck with 20 tokens, one copied file, one
// symlink) against `tar -x` of the identical tree. Runs alternate (gen, tar, gen, tar, …); the
// median of 3 each is reported with peak RSS. Target: gen <= 2x tar time, peak RSS < 300 MB.
// Usage: node bench/gen.mjs [--runs N] [--repeats 3] [--keep]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'dist/bin/themis.js');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? dflt : process.argv[i + 1];
};
const runs = Number(arg('--runs', '100000'));
const repeats = Number(arg('--repeats', '3'));
const keep = process.argv.includes('--keep');
if (!fs.existsSync(BIN)) {
  console.error(`no ${BIN}: run \`npm run build\` first`);
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'themis-bench-gen-'));
const inputs = path.join(work, 'inputs');
fs.mkdirSync(inputs);
const keys = Array.from({ length: 20 }, (_, i) => `p${i}`);
// A 2 KB deck: 20 token lines padded with comment text.
let deck = '';
for (const k of keys) deck += `${k} = %%${k}%%   # ${'parameter description '.repeat(4)}\n`;
while (deck.length < 2048) deck += '# filler line to make the deck about two kilobytes long\n';
fs.writeFileSync(path.join(inputs, 'deck.in'), deck);
fs.writeFileSync(path.join(inputs, 'mesh.dat'), 'x'.repeat(1024));
fs.writeFileSync(path.join(inputs, 'table.dat'), 'y'.repeat(4096));
{
  const fd = fs.openSync(path.join(inputs, 'samples.csv'), 'w');
  fs.writeSync(fd, keys.join(',') + '\n');
  let chunk = '';
  for (let r = 1; r <= runs; r++) {
    chunk += keys.map((_, i) => ((r * 7919 + i * 104729) % 100000) / 1000).join(',') + '\n';
    if (chunk.length > 1 << 20) {
      fs.writeSync(fd, chunk);
      chunk = '';
    }
  }
  fs.writeSync(fd, chunk);
  fs.closeSync(fd);
}

/** Run a command under /usr/bin/time -v when available: wall seconds and peak RSS (MB). */
function measure(argv, cwd) {
  const haveTime = fs.existsSync('/usr/bin/time');
  const cmd = haveTime ? ['/usr/bin/time', '-v', ...argv] : argv;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true' }, maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) {
    console.error(`failed: ${argv.join(' ')}\n${r.stderr}`);
    process.exit(1);
  }
  const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr ?? '');
  return { seconds, rssMB: m ? Number(m[1]) / 1024 : null };
}

function genArgv() {
  return [
    process.execPath, BIN, 'gen', '/bin/true', path.join(inputs, 'samples.csv'), '--no-batch-script', '--scheduler', 'local',
    '--parse', path.join(inputs, 'deck.in'), '--copy', path.join(inputs, 'mesh.dat'), '--symlink', path.join(inputs, 'table.dat'),
  ];
}

const rm = (p) => fs.rmSync(p, { recursive: true, force: true });

// One gen to build the reference tree, archived for tar.
const ref = path.join(work, 'ref');
fs.mkdirSync(ref);
measure(genArgv(), ref);
const tarFile = path.join(work, 'tree.tar');
const tc = spawnSync('tar', ['-cf', tarFile, '-C', ref, '.']);
if (tc.status !== 0) throw new Error(`tar -c failed: ${tc.stderr}`);
rm(ref);

const gen = [];
const tar = [];
for (let i = 0; i < repeats; i++) {
  const g = path.join(work, `gen-${i}`);
  fs.mkdirSync(g);
  gen.push(measure(genArgv(), g));
  rm(g);
  const t = path.join(work, `tar-${i}`);
  fs.mkdirSync(t);
  tar.push(measure(['tar', '-xf', tarFile, '-C', t], t));
  rm(t);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const result = {
  runs,
  repeats,
  genSeconds: median(gen.map((x) => x.seconds)),
  tarSeconds: median(tar.map((x) => x.seconds)),
  genPeakRssMB: Math.max(...gen.map((x) => x.rssMB ?? 0)) || null,
  tarPeakRssMB: Math.max(...tar.map((x) => x.rssMB ?? 0)) || null,
  samples: { gen, tar },
  node: process.version,
  at: new Date().toISOString(),
};
result.ratio = result.genSeconds / result.tarSeconds;
result.pass = result.ratio <= 2 && (result.genPeakRssMB === null || result.genPeakRssMB < 300);

const row = (name, s, rss) => `${name.padEnd(12)} ${s.toFixed(2).padStart(9)} s ${rss === null ? '        ?' : rss.toFixed(0).padStart(9)} MB`;
console.log(`themis gen vs tar -x, ${runs} runs (median of ${repeats}, alternating)`);
console.log(`${'what'.padEnd(12)} ${'time'.padStart(11)} ${'peak RSS'.padStart(12)}`);
console.log(row('themis gen', result.genSeconds, result.genPeakRssMB));
console.log(row('tar -x', result.tarSeconds, result.tarPeakRssMB));
console.log(`ratio ${result.ratio.toFixed(2)} (target <= 2.00), peak RSS target < 300 MB: ${result.pass ? 'PASS' : 'FAIL'}`);

const outDir = path.join(ROOT, 'bench', 'results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'gen.json'), JSON.stringify(result, null, 2) + '\n');
if (!keep) rm(work);
else console.log(`kept ${work}`);
