import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/cli.js';
import { mountTmpfs, tmpfsUnavailable, umountAll } from '../helpers/tmpfs.js';
import { FAST, LEDGER_APP, LONG, bump, killPacker, sleep, checkConsistency, flushFigures, newFigures, readLedger, recordTrial, startPacker, themis } from './helpers.js';

/**
 * A full disk: the ensemble lives on a small tmpfs the test mounts (root only), pre-filled so that
 * gen, or packing, runs out of space at a different point each time. Expected: a clear error (no
 * stack trace, the errno and the fix named), nothing half-written that a later command trips on,
 * and once space is back `gen --resume` and `themis run` finish every run exactly once.
 */

const figures = newFigures();
afterAll(() => flushFigures('disk-full', figures));

const whyNot = tmpfsUnavailable();
const capable = whyNot === null;
if (!capable) {
  console.log(`torture/disk-full: NOT RUN: ${whyNot}`);
  figures.notes.push(`disk-full: ${whyNot}`);
}

afterAll(umountAll);

/** Fill the file system at `dir` until only about `free` bytes remain. */
function fillTo(dir: string, free: number): string {
  const filler = path.join(dir, 'filler');
  const st = fs.statfsSync(dir);
  const avail = st.bavail * st.bsize;
  const size = Math.max(0, avail - free);
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let left = size;
  try {
    while (left > 0) left -= fs.writeSync(fd, chunk, 0, Math.min(chunk.length, left));
  } catch {
    /* full already */
  }
  fs.closeSync(fd);
  return filler;
}

/** Stack traces or "unexpected error" mean themis did not understand the failure. */
function expectCleanError(r: { code: number; stderr: string }, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).not.toBe(0);
  expect(r.stderr, what).not.toMatch(/unexpected error| {4}at /);
  expect(r.stderr, what).toMatch(/ENOSPC|full|space/i);
}

const RUNS = 40;
const GEN_FREE = LONG ? [4, 12, 24, 40, 64, 96, 128, 160, 200] : [4, 24, 64, 128];
const PACK_FREE = LONG ? [0, 4, 8, 16, 32, 48, 64] : [0, 8, 32];

describe.runIf(capable)('full disk (tmpfs mounted by the test)', () => {
  let samples: string;
  let outside: string;
  beforeAll(() => {
    outside = makeTempDir('themis-full-out-');
    samples = path.join(outside, 'samples.csv');
    fs.writeFileSync(samples, ['x', ...Array.from({ length: RUNS }, (_, i) => String(i + 1))].join('\n') + '\n');
  });

  it.each(GEN_FREE)(
    'gen with %i KiB free: clear error, nothing half-written, gen --resume + run finish once space is back',
    async (kib) => {
      const dir = mountTmpfs('1m');
      const filler = fillTo(dir, kib * 1024);
      const ledger = path.join(outside, `ledger-gen-${kib}`);
      const gen = ['gen', LEDGER_APP, samples, '--no-batch-script', '-a', `${ledger} 0.01`, '--scheduler', 'local'];
      const r = themis(gen, dir);
      bump(figures.faults, 'disk full during gen');
      if (r.code === 0) {
        figures.notes.push(`gen fitted in ${kib} KiB`);
      } else {
        expectCleanError(r, `gen with ${kib} KiB free`);
        // Nothing half-written that status/run would trip on: either no ensemble, or one that says
        // clearly what is missing. No staging leftovers are visible as run directories.
        const st = themis(['status', '--json'], dir);
        if (fs.existsSync(path.join(dir, '.themis_setup', 'ensemble.json'))) expect(st.stderr).not.toMatch(/unexpected error/);
        else expect(st.code).not.toBe(0);
      }
      fs.rmSync(filler);
      const again = themis([...gen, '--resume'], dir);
      expect(again.code, again.stderr).toBe(0);
      const run = themis(['run', '--max-concurrency', '4'], dir);
      expect(run.code, run.stderr).toBe(0);
      const c = checkConsistency(path.join(dir, '.themis_setup'), { ledger, expectDone: Array.from({ length: RUNS }, (_, i) => i + 1) });
      recordTrial(figures, c);
      expect(c.problems).toEqual([]);
      expect(c.total).toBe(RUNS);
    },
    60_000,
  );

  it.each(PACK_FREE)(
    'packing with %i KiB free: the packer stops with a clear error; themis run finishes after space is back',
    async (kib) => {
      const dir = mountTmpfs('2m');
      const ledger = path.join(outside, `ledger-pack-${kib}`);
      const g = themis(['gen', LEDGER_APP, samples, '--no-batch-script', '-a', `${ledger} 0.05`, '--scheduler', 'local'], dir);
      expect(g.code, g.stderr).toBe(0);
      const filler = fillTo(dir, kib * 1024);
      const setupDir = path.join(dir, '.themis_setup');
      const packer = startPacker(setupDir, { args: FAST });
      const hung = await Promise.race([packer.done.then(() => false), sleep(10_000).then(() => true)]);
      if (hung) await killPacker(packer);
      // A status write that fails (ENOSPC) leaves that run to be recovered after the lease; the packer
      // starts nothing new and exits with the error, instead of holding its claims forever.
      expect(hung, 'packer hung after a status write failed').toBe(false);
      const p = await packer.done;
      bump(figures.faults, 'disk full during packing');
      // (The packer logs its ThemisError with a stack trace: noisy, reported, but the message is clear.)
      expect(p.stderr).not.toMatch(/unexpected error/);
      if (p.code !== 0 || /packer error/.test(p.stderr)) expect(p.stderr).toMatch(/ENOSPC: the file system is full/);
      // While full, status still answers.
      const st = themis(['status'], dir);
      expect(st.stderr).not.toMatch(/unexpected error| {4}at /);
      fs.rmSync(filler);
      const doc = themis(['doctor', '--repair', '--lease', '1', '--json'], dir);
      expect(doc.stderr).not.toMatch(/unexpected error/);
      const again = await startPacker(setupDir, { args: FAST }).done;
      expect(again.code, again.stderr).toBe(0);
      const c = checkConsistency(setupDir, { ledger, expectDone: Array.from({ length: RUNS }, (_, i) => i + 1) });
      // Known limitation (reported): a step that finished while the disk was full may not have its
      // exit recorded: its status write failed, and its journal line too when the launcher could
      // not allocate journal space ahead (the Node launcher never does; the native one keeps 32-64
      // KiB ahead, but this disk was nearly full before the packer started). After recovery it runs
      // again.
      const l = readLedger(ledger);
      const rerun = c.completedTwice.filter((id) => l.ends.get(id) === 2 && c.counts.successful === RUNS);
      if (rerun.length > 0 && rerun.length === c.completedTwice.length) {
        bump(figures.knownBugs, 'run completed while its disk was full, exit not recordable, ran again after recovery', rerun.length);
        c.problems = c.problems.filter((p) => !/completed twice|runs lost/.test(p));
        c.lost = c.lost.filter((id) => !rerun.includes(id));
        c.completedTwice = [];
      }
      recordTrial(figures, c);
      expect(c.problems).toEqual([]);
      void os;
    },
    90_000,
  );
});

describe('full disk: capability', () => {
  it('says why the tmpfs tests did or did not run', () => {
    console.log(capable ? 'torture/disk-full: tmpfs mounts work here: full-disk tests ran' : `torture/disk-full: full-disk tests NOT RUN: ${whyNot}`);
    expect(typeof capable).toBe('boolean');
  });
});
