import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, THEMIS_BIN } from '../helpers/cli.js';

/**
 * Build dist/ once if it is missing or older than src/ (tsc emits even when someone else's file
 * has type errors, so its exit status is ignored).
 */
export function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...fs.readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs)));
  if (fs.existsSync(THEMIS_BIN) && fs.statSync(THEMIS_BIN).mtimeMs >= newest(path.join(PROJECT_ROOT, 'src'))) return;
  try {
    execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', PROJECT_ROOT], { stdio: 'ignore' });
  } catch {
    /* type errors elsewhere still emit */
  }
  execFileSync(process.execPath, [path.join(PROJECT_ROOT, 'scripts/postbuild.mjs')], { cwd: PROJECT_ROOT });
}
