import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const THEMIS_BIN = path.join(PROJECT_ROOT, 'dist/bin/themis.js');
export const PACK_BIN = path.join(PROJECT_ROOT, 'dist/bin/themis-pack.js');
export const FIXTURES = path.join(PROJECT_ROOT, 'fixtures');

/** A fresh temporary directory, removed by the returned cleanup. */
export function makeTempDir(prefix = 'themis-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** In a describe block (or a file): a maker of fresh temporary directories, each removed after its test. */
export function tempDirs(prefix = 'themis-test-'): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const t of made.splice(0)) fs.rmSync(t, { recursive: true, force: true });
  });
  return () => {
    const t = makeTempDir(prefix);
    made.push(t);
    return t;
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built `themis` binary as a subprocess (what a user runs). */
export function runThemis(args: string[], options: SpawnSyncOptions & { cwd: string }): CliResult {
  const r = spawnSync(process.execPath, [THEMIS_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', ...(options.env ?? {}) },
    ...options,
  });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Run the built `themis-pack` binary as a subprocess. */
export function runPack(args: string[], options: SpawnSyncOptions & { cwd: string }): CliResult {
  const r = spawnSync(process.execPath, [PACK_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', ...(options.env ?? {}) },
    ...options,
  });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Every file under dir (relative paths, sorted), for "nothing left on disk" assertions. */
export function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory() && !e.isSymbolicLink()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** Write an executable script (for fake applications). */
export function writeScript(file: string, body: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, body.startsWith('#!') ? body : `#!/bin/sh\n${body}`, { mode: 0o755 });
  return file;
}
