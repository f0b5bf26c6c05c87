import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, THEMIS_BIN } from '../helpers/cli.js';

const LOCK = path.join(PROJECT_ROOT, 'dist', '.test-build.lock');

function newest(dir: string): number {
  return Math.max(0, ...fs.readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs)));
}

const stale = () => !fs.existsSync(THEMIS_BIN) || fs.statSync(THEMIS_BIN).mtimeMs < newest(path.join(PROJECT_ROOT, 'src'));

/**
 * Build dist/ if it is missing or older than src/ (`npm test` builds first, so this only matters
 * when a test file is run on its own). Test files run in parallel workers: a mkdir lock keeps two
 * of them from writing dist/ at once. tsc emits even when someone else's file has type errors.
 */
export function ensureBuilt(): void {
  if (!stale()) return;
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch {
      const age = Date.now() - (fs.statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 180_000) fs.rmSync(LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`${LOCK} held for too long; remove it`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
  }
  try {
    if (!stale()) return;
    try {
      execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', PROJECT_ROOT], { stdio: 'ignore' });
    } catch {
      /* type errors elsewhere still emit */
    }
    execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts/postbuild.mjs')], { cwd: PROJECT_ROOT });
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}
