import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { makeTempDir } from './cli.js';

/**
 * Small tmpfs mounts for full-disk tests (root only). `tmpfsUnavailable` says why they cannot run
 * here (null: they can); `mountTmpfs` mounts one on a fresh temp dir, `umountAll` removes them all.
 */

export function tmpfsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root (mounting a tmpfs needs root)';
  const probe = makeTempDir('themis-tmpfs-probe-');
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { encoding: 'utf8' });
  if (m.status !== 0) return `mount -t tmpfs failed: ${(m.stderr || m.error?.message || '').trim()}`;
  spawnSync('umount', [probe]);
  fs.rmdirSync(probe);
  return null;
}

const mounts: string[] = [];

export function mountTmpfs(size: string, prefix = 'themis-full-'): string {
  const dir = makeTempDir(prefix);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount: ${m.stderr}`);
  mounts.push(dir);
  return dir;
}

export function umountAll(): void {
  for (const d of mounts.splice(0)) {
    spawnSync('umount', ['-l', d]);
    fs.rmSync(d, { recursive: true, force: true });
  }
}
