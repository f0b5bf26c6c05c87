import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPaths } from '../../src/store/layout.js';
import { makeTempDir } from '../helpers/cli.js';
import { LEDGER_APP, allFiles, bump, checkConsistency, flushFigures, genLedgerEnsemble, newFigures, readLedger, recordTrial, startPacker, themis } from './helpers.js';

/**
 * Path escapes and planted symlinks: sample values that try to leave the ensemble through
 * run-directory names, symlinks planted where themis writes, and the modes of everything themis
 * creates under a given umask.
 */

const figures = newFigures();
afterAll(() => flushFigures('paths', figures));

describe('path escapes through samples', () => {
  const escapes = ['..', '.', '', '../outside', '/etc', 'a/../../b', '../../../../tmp/x', 'x/..', '\u0000nul'];
  it.each(escapes.map((v) => [JSON.stringify(v), v]))('run-dir name from sample value %s: refused (exit 2, run and value named), nothing created', (_, v) => {
    const root = makeTempDir('themis-escape-');
    fs.writeFileSync(path.join(root, 's.csv'), `label\n"${v.replace(/"/g, '""')}"\nok\n`);
    bump(figures.badInputsByKind, 'path escape via run-dir sample value');
    figures.badInputs++;
    const g = themis(['gen', LEDGER_APP, 's.csv', '--no-batch-script', '--scheduler', 'local', '--run-dir-names', 'runs/{label}'], root);
    expect(g.code, g.stderr).toBe(2);
    expect(g.stderr).toMatch(/run 1|samples?\.csv|s\.csv/);
    expect(g.stderr).not.toMatch(/unexpected error/);
    expect(fs.readdirSync(root).sort()).toEqual(['s.csv']);
    expect(fs.existsSync(path.join(path.dirname(root), 'outside'))).toBe(false);
  });
});

describe('symlinks planted where themis writes', () => {
  it('status.json, run.log and claim/ replaced by links elsewhere: the targets are never written through', async () => {
    const e = genLedgerEnsemble(6, 0.05);
    const outside = makeTempDir('themis-victim-');
    const victim = path.join(outside, 'victim.txt');
    fs.writeFileSync(victim, 'precious\n');
    const victimDir = path.join(outside, 'dir');
    fs.mkdirSync(victimDir);
    // run 2: status.json is a link to the victim file
    fs.rmSync(runPaths(e.runDir(2)).status);
    fs.symlinkSync(victim, runPaths(e.runDir(2)).status);
    // run 3: run.log (the empty one gen leaves) is a link to the victim file (the app's output would land in it)
    fs.rmSync(path.join(e.runDir(3), 'run.log'), { force: true });
    fs.symlinkSync(victim, path.join(e.runDir(3), 'run.log'));
    // run 4: claim/ is a link to a directory elsewhere (old, so it looks stale)
    fs.symlinkSync(victimDir, runPaths(e.runDir(4)).claim);
    const old = new Date(Date.now() - 3_600_000);
    fs.utimesSync(victimDir, old, old);
    fs.lutimesSync(runPaths(e.runDir(4)).claim, old, old);
    bump(figures.faults, 'symlink planted: status.json');
    bump(figures.faults, 'symlink planted: run.log');
    bump(figures.faults, 'symlink planted: claim/');
    const p = await startPacker(e.setupDir, { args: ['--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--rescan', '1'] }).done;
    expect(p.stderr).not.toMatch(/unexpected error/);
    const p2 = await startPacker(e.setupDir, { args: ['--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--rescan', '1'] }).done;
    expect(p2.stderr).not.toMatch(/unexpected error/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(fs.readdirSync(victimDir)).toEqual([]);
    // run 2 is reported (its status is not a themis record), not run through the link
    expect(p.stderr).toContain(runPaths(e.runDir(2)).status);
    for (const id of [1, 3, 4, 5, 6]) expect(JSON.parse(fs.readFileSync(runPaths(e.runDir(id)).status, 'utf8')).status, `run ${id}`).toBe('successful');
    expect(readLedger(e.ledger).ends.get(2)).toBeUndefined();
    figures.trials++;
    figures.runsChecked += 6;
  }, 60_000);

  it("a run's .themis replaced by a link to another directory: not followed", async () => {
    const e = genLedgerEnsemble(3, 0.05);
    const outside = makeTempDir('themis-victim-meta-');
    const target = path.join(outside, 'meta');
    fs.cpSync(runPaths(e.runDir(2)).meta, target, { recursive: true });
    fs.rmSync(runPaths(e.runDir(2)).meta, { recursive: true });
    fs.symlinkSync(target, runPaths(e.runDir(2)).meta);
    const before = fs.readdirSync(target).sort();
    bump(figures.faults, 'symlink planted: .themis');
    const p = await startPacker(e.setupDir).done;
    expect(p.stderr).not.toMatch(/unexpected error/);
    const after = fs.readdirSync(target).sort();
    // Refused, not followed (fixed: the packer used to claim and run it inside the link's target).
    expect(after).toEqual(before);
    expect(readLedger(e.ledger).ends.has(2)).toBe(false);
    expect(p.stderr).toContain(`${runPaths(e.runDir(2)).meta} is a symbolic link`);
    for (const id of [1, 3]) expect(JSON.parse(fs.readFileSync(runPaths(e.runDir(id)).status, 'utf8')).status).toBe('successful');
    figures.trials++;
    figures.runsChecked += 3;
  }, 60_000);
});

describe('file modes follow the umask', () => {
  it.each(['022', '077', '002'])(
    'umask %s: every file and directory themis creates (gen, pack, locks, logs) is within the umask, none world-writable',
    async (mask) => {
      const root = makeTempDir('themis-umask-');
      const samples = path.join(root, 's.csv');
      fs.writeFileSync(samples, 'x\n1\n2\n3\n');
      const ledger = path.join(root, 'ledger');
      const sh = (cmd: string) => spawnSync('sh', ['-c', `umask ${mask}; ${cmd}`], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
      const node = JSON.stringify(process.execPath);
      const bin = JSON.stringify(path.resolve('dist/bin/themis.js'));
      // World-writable sources to parse and copy: their copies must still follow the umask.
      const src = makeTempDir('themis-umask-src-');
      fs.writeFileSync(path.join(src, 'deck.in'), 'x=%%x%%\n', { mode: 0o666 });
      fs.writeFileSync(path.join(src, 'data.bin'), Buffer.alloc(2_000_000, 7), { mode: 0o666 });
      fs.writeFileSync(path.join(src, 'small.txt'), 'small\n', { mode: 0o777 });
      for (const f of ['deck.in', 'data.bin', 'small.txt']) fs.chmodSync(path.join(src, f), f === 'small.txt' ? 0o777 : 0o666);
      const g = sh(
        `${node} ${bin} gen ${JSON.stringify(LEDGER_APP)} s.csv --no-batch-script -a "${ledger} 0.3" --scheduler local --parse ${src}/deck.in --copy ${src}/data.bin --copy ${src}/small.txt`,
      );
      expect(g.status, g.stderr).toBe(0);
      // Look at the claims and heartbeat files while the packer holds them, then at the rest.
      const p = startPacker(path.join(root, '.themis_setup'), { shell: `umask ${mask}` });
      const seen = new Map<string, number>();
      const t0 = Date.now();
      while (p.child.exitCode === null && Date.now() - t0 < 20_000) {
        for (const f of allFiles(root)) {
          try {
            seen.set(f, fs.lstatSync(f).mode);
          } catch {
            /* gone meanwhile */
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await p.done;
      expect(r.code, r.stderr).toBe(0);
      for (const f of allFiles(root)) seen.set(f, fs.lstatSync(f).mode);
      const m = parseInt(mask, 8);
      const bad: string[] = [];
      let claims = 0;
      for (const [f, mode] of seen) {
        if ((mode & fs.constants.S_IFMT) === fs.constants.S_IFLNK) continue;
        if (f === ledger || f === samples || path.basename(f) === 'packers.err') continue;
        if (f.includes(`${path.sep}claim`)) claims++;
        if ((mode & 0o777 & m) !== 0 || (mode & 0o002) !== 0) bad.push(`${path.relative(root, f)} ${(mode & 0o777).toString(8)}`);
      }
      bump(figures.faults, `umask ${mask}`);
      expect(bad).toEqual([]);
      expect(claims, 'claims were observed while held').toBeGreaterThan(0);
      const c = checkConsistency(path.join(root, '.themis_setup'), { ledger, expectDone: [1, 2, 3] });
      recordTrial(figures, c);
      expect(c.problems).toEqual([]);
    },
    60_000,
  );
});
