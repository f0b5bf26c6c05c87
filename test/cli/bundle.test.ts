import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, THEMIS_BIN, makeTempDir, runThemis } from '../helpers/cli.js';

/**
 * The built `themis` is one esbuild bundle with a chunk per command (scripts/bundle.mjs). These run
 * it as users do and check what the bundle could break: files found from the module's own place
 * (templates, workers, the launcher), and the help layout it measures with its own width function.
 */
const dir = makeTempDir('themis-bundle-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the bundled CLI (dist/bin/themis.js)', () => {
  it('is the bundle, its chunks beside it', () => {
    const text = fs.readFileSync(THEMIS_BIN, 'utf8');
    expect(text).toContain('\n// dist/bin/themis.js\n');
    const chunks = fs.readdirSync(path.dirname(THEMIS_BIN)).filter((f) => f.startsWith('themis-chunk-'));
    expect(chunks.length).toBeGreaterThan(0);
    const named = [...text.matchAll(/(?:from |import\()"\.\/(themis-chunk-[\w-]+\.js)"/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    for (const chunk of named) expect(chunks).toContain(chunk);
  });

  it('generates from the templates, runs, and reads status files in threads (THEMIS_SCAN_WORKERS) as it does alone', () => {
    fs.writeFileSync(path.join(dir, 's.csv'), `x\n${Array.from({ length: 12 }, (_, i) => i).join('\n')}\n`);
    fs.writeFileSync(path.join(dir, 'app.sh'), '#!/bin/sh\necho x=%%x%%\n', { mode: 0o755 });
    const gen = runThemis(['gen', './app.sh', 's.csv', '--scheduler', 'slurm', '--json'], { cwd: dir });
    expect(gen.code, gen.stderr).toBe(0);
    expect(fs.readdirSync(path.join(dir, '.themis_setup', 'batch')).some((f) => f.endsWith('.sh'))).toBe(true);
    // gen's index batch has its range stamp (src/store/run-index.ts), and index/ holds only batches.
    expect(fs.readdirSync(path.join(dir, '.themis_setup', 'index'))).toEqual(['000001.jsonl']);
    expect(JSON.parse(fs.readFileSync(path.join(dir, '.themis_setup', 'state', 'index-stamps', '000001.range'), 'utf8'))).toMatchObject({ first: 1, count: 12, prefix: 'runs/' });
    const run = runThemis(['run', '--cores', '2', '--json'], { cwd: dir, env: { ...process.env, CI: 'true' } });
    expect(run.code, run.stderr).toBe(0);
    const alone = JSON.parse(runThemis(['status', '--full', '--json', '--no-allocations'], { cwd: dir }).stdout);
    const threads = runThemis(['status', '--full', '--json', '--no-allocations'], { cwd: dir, env: { ...process.env, THEMIS_SCAN_WORKERS: '3' } });
    expect(threads.code, threads.stderr).toBe(0);
    expect(threads.stderr).not.toContain('scan threads did not run');
    expect(alone.counts.successful).toBe(12);
    expect(JSON.parse(threads.stdout).counts).toEqual(alone.counts);
    expect(fs.readFileSync(path.join(dir, 'runs', '7', 'run.log'), 'utf8')).toContain('x=6');
    // The exporters' threads (run.json and result.json beside each status).
    const csv = runThemis(['write', 'csv'], { cwd: dir, env: { ...process.env, THEMIS_SCAN_WORKERS: '3' } });
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stderr).not.toContain('scan threads did not run');
    expect(csv.stdout.trim().split('\n')).toHaveLength(13);
  });

  it('lists no directory above the one it is run in (yargs looks for its package.json from the bundle, not the cwd)', () => {
    const cwd = path.join(dir, 'deep', 'er');
    fs.mkdirSync(cwd, { recursive: true });
    const out = path.join(dir, 'readdirs.txt');
    const recorder = path.join(dir, 'readdir-recorder.mjs');
    fs.writeFileSync(
      recorder,
      `import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const real = fs.readdirSync;
fs.readdirSync = function (p, ...rest) {
  fs.appendFileSync(${JSON.stringify(out)}, String(p) + '\\n');
  return real.call(this, p, ...rest);
};
syncBuiltinESMExports();
`,
    );
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(recorder).href, THEMIS_BIN, 'status', '--setup-dir', path.join(dir, '.themis_setup'), '--no-allocations'], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    });
    expect(r.status, r.stderr).toBe(0);
    const listed = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((p) => path.resolve(cwd, p));
    expect(listed).toContain(path.join(dir, '.themis_setup', 'index'));
    const above = listed.filter((p) => cwd.startsWith(`${p}/`) && !p.startsWith(PROJECT_ROOT));
    expect(above).toEqual([]);
  });

  it('a second postbuild (no tsc before it) keeps the bundle and its chunks whole', () => {
    const tree = path.join(dir, 'rebuild');
    const bin = path.join(tree, 'dist', 'bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.mkdirSync(path.join(tree, 'src', 'bin'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'src', 'bin', 'themis.ts'), '');
    const here = path.dirname(THEMIS_BIN);
    for (const f of fs.readdirSync(here)) if (f === 'themis.js' || f.startsWith('themis-chunk-')) fs.copyFileSync(path.join(here, f), path.join(bin, f));
    const before = fs.readdirSync(bin).sort();
    const r = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts', 'postbuild.mjs')], { cwd: tree, encoding: 'utf8', env: { ...process.env, CC: '/nonexistent/cc' } });
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readdirSync(bin).sort()).toEqual(before);
    const help = spawnSync(process.execPath, [path.join(bin, 'themis.js'), '--help'], { cwd: tree, encoding: 'utf8' });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('themis status');
  });

  it('lays out --help in columns (its width function in place of string-width)', () => {
    const r = runThemis(['status', '--help'], { cwd: dir, env: { ...process.env, COLUMNS: '100' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {6}--full +read every run's status file/m);
    expect(r.stdout).toMatch(/\[boolean\] \[default: false\]$/m);
  });
});
