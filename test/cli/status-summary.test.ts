import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Themis } from '../../src/api/themis.js';
import { summaryDir } from '../../src/store/summary.js';
import { PACK_BIN, makeTempDir, runThemis, writeScript } from '../helpers/cli.js';

/**
 * The summary of finished runs, through the real CLI: `themis status` answers from it and reads
 * only the runs it does not cover, and always says what `themis status --full` says, whatever
 * happened to the summary.
 */

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

/** An ensemble of n runs: run i exits with code (i % 4 === 0 ? 1 : 0), so a quarter fail. */
function genEnsemble(n: number): string {
  const root = makeTempDir('themis-summary-cli-');
  temps.push(root);
  writeScript(path.join(root, 'app.sh'), '#!/bin/sh\nexit %%code%%\n');
  const rows = Array.from({ length: n }, (_, i) => `${i + 1},${(i + 1) % 4 === 0 ? 1 : 0}`);
  fs.writeFileSync(path.join(root, 's.csv'), `i,code\n${rows.join('\n')}\n`);
  const g = runThemis(['gen', './app.sh', 's.csv', '--scheduler', 'local'], { cwd: root });
  expect(g.code, g.stderr).toBe(0);
  return root;
}

function themis(root: string, ...args: string[]) {
  const r = runThemis(args, { cwd: root });
  expect(r.code, `themis ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

function report(root: string, full = false) {
  return JSON.parse(themis(root, 'status', '--json', '--no-allocations', ...(full ? ['--full'] : [])).stdout) as {
    counts: Record<string, number>;
    unreadableCount: number;
    summary: { used: boolean; covered: number; read: number; problem: string | null } | null;
  };
}

/** Each run's status, step and reason, as the API reads them (with the summary, or every file). */
async function perRun(root: string, full: boolean) {
  const { runs } = await Themis.open(path.join(root, '.themis_setup')).scanStatuses({ full });
  return runs.map((r) => (r.status ? `${r.id} ${r.status.status} ${r.status.step} ${r.status.reason}` : `${r.id} unreadable`));
}

/** status (from the summary) says exactly what status --full says, in counts and run by run. */
async function expectSameAsFull(root: string) {
  const quick = report(root);
  const full = report(root, true);
  expect(quick.counts).toEqual(full.counts);
  expect(quick.unreadableCount).toBe(full.unreadableCount);
  expect(await perRun(root, false)).toEqual(await perRun(root, true));
  expect(themis(root, 'status', 'failed', 'killed').stdout).toBe(themis(root, 'status', 'failed', 'killed', '--full').stdout);
  expect(full.summary?.used).toBe(false);
  return quick;
}

function summaryFiles(root: string): string[] {
  return fs.readdirSync(summaryDir(path.join(root, '.themis_setup'))).sort();
}

describe('themis status and the summary of finished runs (real CLI)', () => {
  it('after a run, every finished run is answered from the summary: no status file read', async () => {
    const root = genEnsemble(24);
    themis(root, 'run', '--cores', '2');
    const r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 18, failed: 6 });
    expect(r.summary).toMatchObject({ used: true, covered: 24, read: 0, problem: null });
    expect(JSON.parse(themis(root, 'progress', '--json').stdout)).toMatchObject({ completed: 24, total: 24 });
  }, 60_000);

  it('requeue makes its runs uncovered first; after they run again they are covered again', async () => {
    const root = genEnsemble(24);
    themis(root, 'run', '--cores', '2');
    themis(root, 'requeue', '--status', 'failed');
    let r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 18, queued: 6, failed: 0 });
    expect(r.summary).toMatchObject({ used: true, covered: 18, read: 6 });
    themis(root, 'requeue', '--hard', '1-3');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 15, queued: 9 });
    themis(root, 'run', '--cores', '2');
    r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 24, read: 0 });
  }, 60_000);

  it('added runs are read until they finish; dequeued runs are right either way', async () => {
    const root = genEnsemble(8);
    themis(root, 'run', '--cores', '2');
    fs.writeFileSync(path.join(root, 'more.csv'), 'i,code\n9,0\n10,1\n11,0\n');
    themis(root, 'add', 'more.csv');
    let r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 8, read: 3 });
    themis(root, 'dequeue', '10');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ queued: 2, killed: 1 });
    themis(root, 'run', '--cores', '2');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 8, failed: 2, killed: 1 });
  }, 60_000);

  it('a damaged summary file: status reads every run, says why, and answers right; doctor rebuilds it', async () => {
    const root = genEnsemble(12);
    themis(root, 'run', '--cores', '2');
    const dir = summaryDir(path.join(root, '.themis_setup'));
    const log = summaryFiles(root).find((n) => n.endsWith('.log'))!;
    const file = path.join(dir, log);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines[2] = lines[2]!.replace(/\tsuccessful\t|\tfailed\t/, '\tkilled\t'); // a flipped status: its check no longer matches
    fs.writeFileSync(file, lines.join('\n'));
    const r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: false, read: 12 });
    expect(r.summary!.problem).toContain(log);
    expect(themis(root, 'status', '--no-allocations').stdout).toMatch(/summary of finished runs cannot be trusted .*`themis doctor` rebuilds it/);
    const d = runThemis(['doctor'], { cwd: root });
    expect(d.stdout).toMatch(/summary of finished runs: rebuilt from the 12 readable statuses/);
    expect(summaryFiles(root)).toEqual(['base.log']);
    expect((await expectSameAsFull(root)).summary).toMatchObject({ used: true, covered: 12, read: 0 });
  }, 60_000);

  it('a truncated summary file (cut mid-line, as by a kill -9 during the write) covers less, and is no damage', async () => {
    const root = genEnsemble(12);
    themis(root, 'run', '--cores', '2');
    const file = path.join(summaryDir(path.join(root, '.themis_setup')), summaryFiles(root)[0]!);
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.slice(0, text.length - 7));
    const r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 11, read: 1, problem: null });
  }, 60_000);

  it('a summary from an older format is not trusted (every run read) until doctor replaces it', async () => {
    const root = genEnsemble(6);
    themis(root, 'run', '--cores', '2');
    const dir = summaryDir(path.join(root, '.themis_setup'));
    for (const n of fs.readdirSync(dir)) fs.rmSync(path.join(dir, n));
    fs.writeFileSync(path.join(dir, 'old.log'), 'themis-summary\t0\tsome-date\t12345678\nF 1 successful\n');
    let r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: false, read: 6 });
    runThemis(['doctor'], { cwd: root });
    r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 6, read: 0 });
  }, 60_000);

  it('kill -9 of a packer while runs finish: status still equals status --full, and nothing is covered that is not final', async () => {
    const root = genEnsemble(400);
    const child = spawn(process.execPath, [PACK_BIN, '--setup-dir', path.join(root, '.themis_setup'), '--cores', '2'], { cwd: root, stdio: 'ignore' });
    const dir = summaryDir(path.join(root, '.themis_setup'));
    // Kill it while it is writing its summary: once some runs are in it, not all.
    const until = Date.now() + 20_000;
    for (;;) {
      const n = fs.existsSync(dir) ? fs.readdirSync(dir).reduce((k, f) => k + fs.readFileSync(path.join(dir, f), 'utf8').split('\n').length, 0) : 0;
      if (n > 40 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const r = await expectSameAsFull(root);
    expect(r.summary!.used).toBe(true);
    expect(r.summary!.covered).toBeGreaterThan(0);
    expect(r.counts.successful + r.counts.failed).toBeLessThan(400);
  }, 60_000);
});
