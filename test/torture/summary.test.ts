import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { PACK_BIN, runThemis } from '../helpers/cli.js';
import { summaryDir } from '../../src/store/summary.js';
import { expectSameAsFull, genEnsemble, summaryFiles, summaryTemps, themis } from '../helpers/summary.js';

afterAll(() => {
  for (const d of summaryTemps) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * The summary of finished runs damaged every way we can think of (a flipped line, a file cut
 * mid-line as by a kill -9 during an append, an older format, a packer killed -9 while appending):
 * `themis status` stays right in every case, saying when it had to read every run, and
 * `themis doctor` makes the summary usable again.
 */
describe('torture: a damaged summary of finished runs never gives a wrong status', () => {
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
    // The runs of the cut line (one run, or a range of them in a compacted file) are read instead.
    expect(r.summary).toMatchObject({ used: true, problem: null });
    expect(r.summary!.covered).toBeLessThan(12);
    expect(r.summary!.covered + r.summary!.read).toBe(12);
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
