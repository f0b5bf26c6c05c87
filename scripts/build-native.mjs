// Build the native launcher (src/native/spawner.c -> dist/native/themis-spawner) on this machine,
// check that it starts here, and record the outcome in dist/native/build.json so `themis --version`
// and the packer can say which launcher steps start through, and why. Run by npm as the package's
// `install` script (so a binary is never shipped, only built where it runs) and by `npm run build`
// (scripts/postbuild.mjs). Without a working C compiler it removes any old binary and the packer
// uses the Node launcher (dist/pack/launcher-child.js): it works the same, it only forks slower.
// It never fails the install: `node scripts/build-native.mjs` tries again later.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Read by src/pack/native-binary.ts: the same name and format. */
export const BUILD_RECORD = 'dist/native/build.json';
const BINARY = 'dist/native/themis-spawner';
const SOURCE = 'src/native/spawner.c';

/** The last lines of a compiler's complaint, on one line. */
function tail(text) {
  return (text || '').trim().split('\n').slice(-3).join(' ').trim();
}

/** Does the binary start here and say it is ready (`R <pid>`), then exit when its stdin closes? */
function startsHere(file) {
  const r = spawnSync(file, [], { input: '', encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `it does not start here: ${r.error.message}`;
  if (!/^R \d+/.test(r.stdout)) return `it does not start here (${r.signal ?? `exit ${r.status}`}${tail(r.stderr) ? `: ${tail(r.stderr)}` : ''})`;
  return null;
}

/**
 * Compile with $CC, else the first of cc, gcc, clang found on PATH. Returns what happened:
 * `{ built, compiler, why }` (`why`: null when built, else the reason in words).
 */
function compile(root, env) {
  const source = path.join(root, SOURCE);
  const out = path.join(root, BINARY);
  const tmp = `${out}.tmp`;
  if (!existsSync(source)) return { built: false, compiler: null, why: `${SOURCE} is missing` };
  const compilers = env.CC ? [env.CC] : ['cc', 'gcc', 'clang'];
  let failure = null;
  for (const cc of compilers) {
    const r = spawnSync(cc, ['-O2', '-o', tmp, source], { encoding: 'utf8', env, timeout: 120_000 });
    if (r.error && r.error.code === 'ENOENT') continue;
    let problem = null;
    if (r.error) problem = `${cc}: ${r.error.message}`;
    else if (r.status !== 0) problem = `${cc} failed: ${tail(r.stderr) || `exit ${r.status ?? r.signal}`}`;
    else {
      const start = startsHere(tmp);
      if (start) problem = `${cc} built it but ${start}`;
    }
    if (problem === null) {
      renameSync(tmp, out);
      return { built: true, compiler: cc, why: null };
    }
    rmSync(tmp, { force: true });
    // A compiler that is there but fails: say so, after trying the others.
    failure ??= { compiler: cc, why: problem };
  }
  rmSync(out, { force: true });
  if (failure) return { built: false, ...failure };
  const why = env.CC ? `CC=${env.CC} not found` : `no C compiler found: none of ${compilers.join(', ')} on PATH`;
  return { built: false, compiler: null, why };
}

/**
 * Build the native launcher under `root` (the package directory) and write its record.
 * `how` says who asked: `install` (npm) or `build` (npm run build). Returns the record and the
 * one line that says which launcher is in use and why.
 */
export function buildNativeLauncher(root, { how = 'install', env = process.env } = {}) {
  mkdirSync(path.join(root, 'dist/native'), { recursive: true });
  const result = compile(root, env);
  const record = {
    format: 1,
    launcher: result.built ? 'native' : 'node',
    compiler: result.compiler,
    why: result.why,
    how,
    platform: process.platform,
    arch: process.arch,
    at: new Date().toISOString(),
  };
  const file = path.join(root, BUILD_RECORD);
  writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
  const line = result.built
    ? `native launcher built with ${result.compiler} (${BINARY}): steps start through it`
    : `native launcher not built (${result.why}); the Node launcher will be used (it works the same, it forks slower; ` + `with a C compiler: node ${path.join(root, 'scripts/build-native.mjs')})`;
  return { record, line };
}

// Run as a script (npm's `install`): one line on stderr, never a failed install.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  try {
    const { line } = buildNativeLauncher(root, { how: 'install' });
    process.stderr.write(`themis-hpc: ${line}\n`);
  } catch (e) {
    process.stderr.write(`themis-hpc: native launcher not built (${e.message}); the Node launcher will be used\n`);
  }
}
