import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../api/build.js';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';

/**
 * Installed as a user installs it: `npm pack` of this checkout, `npm install -g` of the tarball into
 * a fresh prefix, then an ensemble run end to end from a directory outside the checkout with the
 * installed `themis` and `themis-pack`, and an environment that names nothing of the checkout. Twice,
 * from one tarball, at once: with a C compiler on PATH (the native launcher is built at install and
 * starts the steps) and with none (the Node launcher starts them, and install and --version say so).
 * Dependencies come from the npm registry (the cache first).
 */

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to its end, or kill it after `timeoutMs`: an install that hangs fails the test, not CI. */
function run(cmd: string, args: string[], o: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? -1 : null), stdout, stderr: signal ? `${stderr}\n(killed by ${signal}: took longer than ${o.timeoutMs ?? 60_000} ms)` : stderr });
    });
  });
}

const shown = (r: Result) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** npm's own entry point: the one running this test under `npm test`, else the npm on PATH. */
function npmCli(): string {
  const fromNpm = process.env.npm_execpath;
  if (fromNpm?.endsWith('.js') && fs.existsSync(fromNpm)) return fromNpm;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, 'npm');
    if (fs.existsSync(p)) return fs.realpathSync(p);
  }
  throw new Error('npm not found on PATH');
}

/**
 * The environment of a user who installed the tarball: no npm_* settings of the `npm test` that
 * runs us, no THEMIS_* variables, no PATH entry inside the checkout (npm test adds node_modules/.bin).
 */
function userEnv(pathDirs: string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NPM_|THEMIS_|VITEST|NODE_OPTIONS$|CC$|INIT_CWD$)/.test(k)) continue;
    env[k] = v;
  }
  env.CI = 'true';
  env.PATH = pathDirs.filter((d) => d !== '' && !path.resolve(d).startsWith(PROJECT_ROOT)).join(':');
  return env;
}

/** A bin directory with only what npm, the install script and the test's app need: no cc, gcc or clang. */
function pathWithoutCompiler(dir: string): string {
  fs.mkdirSync(dir);
  for (const tool of ['node', 'sh', 'bash', 'env', 'readlink', 'cat']) {
    const found = (process.env.PATH ?? '')
      .split(':')
      .map((d) => path.join(d, tool))
      .find((p) => fs.existsSync(p));
    if (!found) throw new Error(`${tool} not found on PATH`);
    fs.symlinkSync(tool === 'node' ? process.execPath : fs.realpathSync(found), path.join(dir, tool));
  }
  return dir;
}

interface Installed {
  prefix: string;
  pkgDir: string;
  env: NodeJS.ProcessEnv;
  install: Result;
}

const tmp = makeTempDir('themis-install-');
let tarball = '';
let packedFiles: string[] = [];
const installs: Record<'cc' | 'nocc', Installed> = {} as never;

beforeAll(async () => {
  ensureBuilt();
  // --ignore-scripts: no `prepack` rebuild of dist/ while other test files run from it (npm test built it).
  const pack = await run(process.execPath, [npmCli(), 'pack', '--ignore-scripts', '--json', '--pack-destination', tmp], {
    cwd: PROJECT_ROOT,
    env: userEnv((process.env.PATH ?? '').split(':')),
  });
  expect(pack.code, shown(pack)).toBe(0);
  const report = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  tarball = path.join(tmp, report[0]!.filename);
  packedFiles = report[0]!.files.map((f) => f.path);
  const nocc = pathWithoutCompiler(path.join(tmp, 'bin-without-cc'));
  const setups: [keyof typeof installs, string[]][] = [
    ['cc', (process.env.PATH ?? '').split(':')],
    ['nocc', [nocc]],
  ];
  await Promise.all(
    setups.map(async ([name, dirs]) => {
      const prefix = path.join(tmp, `prefix-${name}`);
      const env = userEnv([path.join(prefix, 'bin'), ...dirs]);
      const elsewhere = path.join(tmp, `cwd-${name}`);
      fs.mkdirSync(elsewhere);
      const install = await run(
        process.execPath,
        // --foreground-scripts: the install script's one line is shown; --allow-scripts: npm 12 runs only allowed ones.
        [npmCli(), 'install', '-g', '--prefix', prefix, tarball, `--allow-scripts=${tarball}`, '--foreground-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=warn'],
        { cwd: elsewhere, env, timeoutMs: 120_000 },
      );
      installs[name] = { prefix, pkgDir: path.join(prefix, 'lib', 'node_modules', 'themis-hpc'), env, install };
    }),
  );
}, 240_000);

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** gen, run, status, write csv with the installed binaries, in a fresh directory outside the checkout; returns what each step's parent process was. */
async function runEnsemble(inst: Installed, name: string): Promise<{ parents: string[]; work: string }> {
  const work = path.join(tmp, `ensemble-${name}`);
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, 'app.sh'), '#!/bin/sh\nset -eu\necho "x=%%x%%" > x.txt\nreadlink /proc/$PPID/exe > parent.txt\n', { mode: 0o755 });
  fs.writeFileSync(path.join(work, 'samples.csv'), 'x\n1\n2\n3\n4\n');
  const themis = (...args: string[]) => run('themis', args, { cwd: work, env: inst.env });
  const gen = await themis('gen', './app.sh', 'samples.csv', '--scheduler', 'local', '--name', 'inst');
  expect(gen.code, shown(gen)).toBe(0);
  const script = fs.readFileSync(path.join(work, '.themis_setup/batch/inst-1.sh'), 'utf8');
  expect(script).toContain(path.join(inst.pkgDir, 'dist/bin/themis-pack.js'));
  expect(script).not.toContain(PROJECT_ROOT);
  const ran = await themis('run', '--max-concurrency', '2');
  expect(ran.code, shown(ran)).toBe(0);
  expect(ran.stderr).not.toMatch(/not found|cannot start/);
  const status = await themis('status', '--json');
  expect(status.code, shown(status)).toBe(0);
  expect(JSON.parse(status.stdout).counts).toMatchObject({ successful: 4, failed: 0, queued: 0 });
  const csv = await themis('write', 'csv', '-o', 'results.csv');
  expect(csv.code, shown(csv)).toBe(0);
  expect(fs.readFileSync(path.join(work, 'results.csv'), 'utf8').trim().split('\n')).toEqual([
    'run_id,status,tasks,cores_per_task,gpus_per_task,x',
    '1,successful,1,1,0,1',
    '2,successful,1,1,0,2',
    '3,successful,1,1,0,3',
    '4,successful,1,1,0,4',
  ]);
  const parents = [1, 2, 3, 4].map((id) => fs.readFileSync(path.join(work, 'runs', String(id), 'parent.txt'), 'utf8').trim());
  return { parents, work };
}

describe('the npm package', () => {
  it('holds what a user needs and nothing built elsewhere: no native binary, tests, fixtures, bench results or source maps', () => {
    expect(packedFiles).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'dist/bin/themis.js',
        'dist/bin/themis-pack.js',
        'dist/index.d.ts',
        'templates/slurm.sh.hbs',
        'src/native/spawner.c',
        'scripts/build-native.mjs',
      ]),
    );
    const unwanted = packedFiles.filter((f) => /^(test|bench|fixtures|docs|\.ci|dist\/native)\/|\.map$|\.tmp$|\.lock|^src\/(?!native\/spawner\.c$)|^scripts\/(?!build-native\.mjs$)/.test(f));
    expect(unwanted).toEqual([]);
  });

  it('installed with a C compiler on PATH: the native launcher is built at install and starts the steps', async () => {
    const inst = installs.cc;
    expect(inst.install.code, shown(inst.install)).toBe(0);
    expect(inst.install.stdout + inst.install.stderr).toMatch(/themis-hpc: native launcher built with \S+/);
    expect(fs.lstatSync(inst.pkgDir).isSymbolicLink()).toBe(false);
    const spawner = path.join(inst.pkgDir, 'dist/native/themis-spawner');
    expect(fs.existsSync(spawner)).toBe(true);
    const version = await run('themis', ['--version'], { cwd: tmp, env: inst.env });
    expect(version.code, shown(version)).toBe(0);
    expect(version.stdout).toMatch(/^themis-hpc \d+\.\d+\.\d+/);
    expect(version.stdout).toContain(`launcher: native, ${spawner} (built with`);
    const packVersion = await run('themis-pack', ['--version'], { cwd: tmp, env: inst.env });
    expect(packVersion.stdout).toContain('launcher: native');
    const { parents, work } = await runEnsemble(inst, 'cc');
    expect(new Set(parents)).toEqual(new Set([spawner]));

    // Moved (or uninstalled) while a job waits in the queue: its batch script stops with a clear message.
    fs.renameSync(inst.pkgDir, `${inst.pkgDir}.moved`);
    try {
      const stale = await run('bash', [path.join(work, '.themis_setup/batch/inst-1.sh')], { cwd: work, env: inst.env });
      expect(stale.code).toBe(127);
      expect(stale.stderr).toContain(`themis: this batch script runs ${path.join(inst.pkgDir, 'dist/bin/themis-pack.js')}, which no longer exists`);
      expect(stale.stderr).toContain(`rm ${path.join(work, '.themis_setup/batch/inst-1.sh')} && themis --setup-dir ${path.join(work, '.themis_setup')} submit --allocation 1`);
    } finally {
      fs.renameSync(`${inst.pkgDir}.moved`, inst.pkgDir);
    }
  }, 60_000);

  it('installed with no C compiler on PATH: the Node launcher starts the steps, and install and --version say why', async () => {
    const inst = installs.nocc;
    expect(inst.install.code, shown(inst.install)).toBe(0);
    const said = (inst.install.stdout + inst.install.stderr).split('\n').filter((l) => l.startsWith('themis-hpc:'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('native launcher not built (no C compiler found: none of cc, gcc, clang on PATH); the Node launcher will be used');
    expect(fs.existsSync(path.join(inst.pkgDir, 'dist/native/themis-spawner'))).toBe(false);
    const version = await run('themis', ['--version'], { cwd: tmp, env: inst.env });
    expect(version.code, shown(version)).toBe(0);
    expect(version.stdout).toContain('launcher: Node (the native launcher was not built at install: no C compiler found');
    const { parents } = await runEnsemble(inst, 'nocc');
    expect(new Set(parents)).toEqual(new Set([fs.realpathSync(process.execPath)]));
  }, 60_000);
});
