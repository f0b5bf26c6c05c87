// gen: `themis gen` of N runs (each: a parsed 2 KB deck with 20 tokens, one copied file, one
// symlink) against `tar -x` of the identical tree (and `cp -a` of it), alternating; peak RSS of gen.
// The first gen is also the suite's big shared ensemble (ctx.big), reused by later cases.
import fs from 'node:fs';
import path from 'node:path';
import { THEMIS, median, rm, round, settle, timed, writeCsv } from '../lib.mjs';

const KEYS = Array.from({ length: 20 }, (_, i) => `p${i}`);

/** The inputs of the gen case: deck, copied and symlinked files, N samples. */
export function genInputs(dir, runs) {
  fs.mkdirSync(dir, { recursive: true });
  let deck = '';
  for (const k of KEYS) deck += `${k} = %%${k}%%   # ${'parameter description '.repeat(4)}\n`;
  while (deck.length < 2048) deck += '# filler line to make the deck about two kilobytes long\n';
  fs.writeFileSync(path.join(dir, 'deck.in'), deck);
  fs.writeFileSync(path.join(dir, 'mesh.dat'), 'x'.repeat(1024));
  fs.writeFileSync(path.join(dir, 'table.dat'), 'y'.repeat(4096));
  writeCsv(path.join(dir, 'samples.csv'), KEYS, runs, (r) => KEYS.map((_, i) => ((r * 7919 + i * 104729) % 100000) / 1000));
  return dir;
}

export function genArgv(inputs) {
  return [
    process.execPath,
    THEMIS,
    'gen',
    '/bin/true',
    path.join(inputs, 'samples.csv'),
    '--no-batch-script',
    '--scheduler',
    'local',
    '--parse',
    path.join(inputs, 'deck.in'),
    '--copy',
    path.join(inputs, 'mesh.dat'),
    '--symlink',
    path.join(inputs, 'table.dat'),
  ];
}

/** Generate the gen case's ensemble in `dir` (which must not exist); timing and peak RSS. */
export function genInto(inputs, dir) {
  fs.mkdirSync(dir, { recursive: true });
  return timed(genArgv(inputs), { cwd: dir });
}

export async function run(ctx) {
  // At 100k runs one gen and one tar take 2-5 minutes each here: one pair in the full suite
  // (`--runs` below 50k gives two pairs).
  const repeats = ctx.big().runs >= 50_000 || ctx.quick ? 1 : 2;
  const big = ctx.big(); // the first gen sample
  const runs = big.runs;
  const gen = [big.gen];
  const tar = [];
  const cp = [];
  const tarFile = path.join(ctx.work, 'gen-tree.tar');
  timed(['tar', '-cf', tarFile, '-C', big.dir, '.']);
  settle();
  for (let i = 0; i < repeats; i++) {
    const t = path.join(ctx.work, `tar-${i}`);
    fs.mkdirSync(t);
    tar.push(timed(['tar', '-xf', tarFile, '-C', t]));
    rm(t);
    settle();
    // A second, plain baseline: copying the identical tree (GNU tar defers every symlink it
    // extracts, which grows faster than linearly with 100k symlinks here).
    cp.push(timed(['cp', '-a', big.dir, t]));
    rm(t);
    settle();
    if (i + 1 < repeats) {
      const g = path.join(ctx.work, `gen-${i}`);
      gen.push(genInto(big.inputs, g));
      rm(g);
      settle();
    }
  }
  rm(tarFile);
  const g = median(gen.map((x) => x.seconds));
  const t = median(tar.map((x) => x.seconds));
  const c = median(cp.map((x) => x.seconds));
  const rss = Math.max(...gen.map((x) => x.rssMB ?? 0)) || null;
  const ratio = g / t;
  return {
    rows: [
      { metric: `gen ${runs} runs, s (vs tar -x)`, themis: round(g), baseline: round(t), ratio: round(ratio, 2), target: '<= 2.00', met: ratio <= 2 },
      { metric: `gen ${runs} runs, s (vs cp -a of the same tree)`, themis: round(g), baseline: round(c), ratio: round(g / c, 2), target: '-', met: null },
      { metric: 'gen peak RSS, MB', themis: round(rss, 0), baseline: null, ratio: null, target: '< 300', met: rss === null ? null : rss < 300 },
    ],
    details: {
      runs,
      repeats: gen.length,
      gen: gen.map((x) => ({ seconds: round(x.seconds), rssMB: round(x.rssMB, 1), cpuSeconds: x.cpuSeconds })),
      tar: tar.map((x) => ({ seconds: round(x.seconds), rssMB: round(x.rssMB, 1), cpuSeconds: x.cpuSeconds })),
      cp: cp.map((x) => ({ seconds: round(x.seconds), cpuSeconds: x.cpuSeconds })),
    },
  };
}
