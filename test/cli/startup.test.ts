import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACK_BIN, PROJECT_ROOT, THEMIS_BIN, makeTempDir, runThemis } from '../helpers/cli.js';

/**
 * Startup cost: a command loads only the modules it uses. A recorder preloaded with --import
 * lists every module the process loaded (ES modules through a load hook, CommonJS from the
 * require cache) so these tests can say what must not be on a path.
 */
let dir: string;
beforeAll(() => {
  dir = makeTempDir('themis-startup-');
  const hooks = path.join(dir, 'hooks.mjs');
  fs.writeFileSync(
    hooks,
    `import fs from 'node:fs';
export async function load(url, context, next) {
  fs.appendFileSync(process.env.THEMIS_LOADED_OUT, url + '\\n');
  return next(url, context);
}
`,
  );
  fs.writeFileSync(
    path.join(dir, 'recorder.mjs'),
    `import fs from 'node:fs';
import { createRequire, register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)});
process.on('exit', () => {
  const cjs = Object.keys(createRequire(import.meta.url).cache).map((f) => 'file://' + f + '\\n');
  fs.appendFileSync(process.env.THEMIS_LOADED_OUT, cjs.join(''));
});
`,
  );
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Run a bin with the recorder; the modules it loaded: dist files as `dist/...`, packages by name. */
function loaded(bin: string, args: string[], cwd: string): { code: number | null; dist: string[]; packages: string[] } {
  const out = path.join(dir, `loaded-${Math.random().toString(36).slice(2)}.txt`);
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(dir, 'recorder.mjs')).href, bin, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', THEMIS_LOADED_OUT: out },
  });
  const files = fs
    .readFileSync(out, 'utf8')
    .split('\n')
    .filter((u) => u.startsWith('file://'));
  const distRoot = pathToFileURL(path.join(PROJECT_ROOT, 'dist')).href + '/';
  const dist = new Set<string>();
  const packages = new Set<string>();
  const addPackage = (u: string): void => {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    if (m) packages.add(m[1]!);
  };
  for (const u of files) {
    const rel = u.startsWith(distRoot) ? `dist/${u.slice(distRoot.length)}` : null;
    // The bundled CLI (scripts/bundle.mjs): a loaded chunk stands for the modules esbuild put in
    // it, each marked by a `// dist/...` or `// node_modules/...` line.
    if (rel && /^dist\/bin\/themis(-chunk-[^/]*)?\.js$/.test(rel) && BUNDLED) {
      for (const m of fs.readFileSync(new URL(u), 'utf8').matchAll(/^\/\/ ((?:dist|node_modules)\/\S+\.[cm]?js)$/gm)) {
        if (m[1]!.startsWith('dist/')) dist.add(m[1]!);
        else addPackage(m[1]!);
      }
      continue;
    }
    if (rel) dist.add(rel);
    addPackage(u);
  }
  return { code: r.status, dist: [...dist].sort(), packages: [...packages].sort() };
}

/** Whether dist/bin/themis.js is the bundle (a build with esbuild) or tsc's module. */
const BUNDLED = fs.readFileSync(THEMIS_BIN, 'utf8').includes('\n// dist/bin/themis.js\n');

const HEAVY = ['csv-parse', 'execa', 'fast-glob', 'handlebars', 'shell-quote', 'yaml'];

describe('startup: each command loads only what it uses', () => {
  it('`themis --help` lists every command without loading any command module', () => {
    const r = loaded(THEMIS_BIN, ['--help'], dir);
    expect(r.code).toBe(0);
    expect(r.dist).toEqual(['dist/bin/themis.js', 'dist/cli/commands.js', 'dist/cli/main.js', 'dist/cli/output.js', ...(BUNDLED ? ['dist/cli/text-width.js'] : []), 'dist/model/errors.js']);
    expect(r.packages.filter((p) => HEAVY.includes(p))).toEqual([]);
  });

  it('`themis status` starts without yargs (src/cli/direct.ts); `themis status --help` still uses it', () => {
    const cwd = makeTempDir('themis-startup-status-');
    try {
      fs.writeFileSync(path.join(cwd, 's.csv'), 'x\n1\n');
      expect(runThemis(['gen', '/bin/true', 's.csv', '--no-batch-script', '--scheduler', 'local'], { cwd }).code).toBe(0);
      const status = loaded(THEMIS_BIN, ['status', '--json'], cwd);
      expect(status.code).toBe(0);
      expect(status.dist).toContain('dist/cli/status.js');
      expect(status.dist).not.toContain('dist/cli/main.js');
      expect(status.packages).not.toContain('yargs');
      const help = loaded(THEMIS_BIN, ['status', '--help'], cwd);
      expect(help.code).toBe(0);
      expect(help.packages).toContain('yargs');
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('`themis run` and `themis-pack` load the packer, not templates, samples parsing, exports or the API', () => {
    const cwd = makeTempDir('themis-startup-run-');
    try {
      fs.writeFileSync(path.join(cwd, 's.csv'), 'x\n1\n');
      expect(runThemis(['gen', '/bin/true', 's.csv', '--no-batch-script', '--scheduler', 'local'], { cwd }).code).toBe(0);
      const run = loaded(THEMIS_BIN, ['run'], cwd);
      expect(run.code).toBe(0);
      expect(run.dist).toContain('dist/pack/run-packer.js');
      expect(runThemis(['requeue', '1'], { cwd }).code).toBe(0);
      const pack = loaded(PACK_BIN, [], cwd);
      expect(pack.code).toBe(0);
      for (const r of [run, pack]) {
        expect(r.packages.filter((p) => HEAVY.includes(p))).toEqual([]);
        expect(r.dist.filter((f) => f.startsWith('dist/api/') || (f.startsWith('dist/render/') && f !== 'dist/render/quote.js'))).toEqual([]);
        expect(
          r.dist.filter(
            (f) => f.startsWith('dist/cli/') && !['dist/cli/main.js', 'dist/cli/commands.js', 'dist/cli/output.js', 'dist/cli/text-width.js', 'dist/cli/run.js', 'dist/cli/pack.js'].includes(f),
          ),
        ).toEqual([]);
      }
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});
