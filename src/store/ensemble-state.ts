import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import { writeFileAtomicSync, writeJsonAtomicSync } from './atomic.js';
import type { ClaimOptions } from './claim.js';
import { setupPaths } from './layout.js';
import { deadHere } from './proc.js';

/**
 * Ensemble-wide flags in the setup directory's `state/` (and `packers/`), shared by every packer
 * in every allocation. Each is a file or directory whose creation or removal is one atomic step,
 * so packers agree without talking to each other.
 */

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function ensureDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new ThemisError('IO', `cannot create ${dir}: ${describeFsError(e)}`, { cause: e });
  }
}

function unlinkQuiet(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw new ThemisError('IO', `cannot remove ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

// --- failed markers: one file per failed run, so every packer counts the same set ---

export function markFailed(setupDir: string, runId: number): void {
  const p = setupPaths(setupDir);
  ensureDir(p.failedDir);
  writeFileAtomicSync(p.failedMarker(runId), new Date().toISOString() + '\n');
}

export function clearFailed(setupDir: string, ids: number[]): void {
  const p = setupPaths(setupDir);
  for (const id of ids) unlinkQuiet(p.failedMarker(id));
}

export function failedCount(setupDir: string): number {
  try {
    return fs.readdirSync(setupPaths(setupDir).failedDir).filter((n) => /^\d+$/.test(n)).length;
  } catch (e) {
    if (errno(e) === 'ENOENT') return 0;
    throw new ThemisError('IO', `cannot list ${setupPaths(setupDir).failedDir}: ${describeFsError(e)}`, { cause: e });
  }
}

// --- dequeue requests of running runs: one file per run, listed by packers each heartbeat ---

export function markDequeueRequest(setupDir: string, runId: number): void {
  const p = setupPaths(setupDir);
  ensureDir(p.dequeueDir);
  writeFileAtomicSync(p.dequeueMarker(runId), new Date().toISOString() + '\n');
}

export function clearDequeueRequest(setupDir: string, runId: number): void {
  unlinkQuiet(setupPaths(setupDir).dequeueMarker(runId));
}

/** The runs asked to stop (one directory listing, whatever the number of runs). */
export function listDequeueRequests(setupDir: string): Set<number> {
  try {
    return new Set(
      fs
        .readdirSync(setupPaths(setupDir).dequeueDir)
        .filter((n) => /^\d+$/.test(n))
        .map(Number),
    );
  } catch (e) {
    if (errno(e) === 'ENOENT') return new Set();
    throw new ThemisError('IO', `cannot list ${setupPaths(setupDir).dequeueDir}: ${describeFsError(e)}`, { cause: e });
  }
}

// --- the stop flag: packers start no new run while it exists ---

export interface StopRecord {
  reason: string;
  by: string;
  at: string;
  kind: 'max-failed-runs' | 'stop-ensemble';
}

export function readStop(setupDir: string): StopRecord | null {
  const file = setupPaths(setupDir).stopFile;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw new ThemisError('IO', `cannot read ${file}: ${describeFsError(e)}`, { cause: e });
  }
  try {
    const rec = JSON.parse(text) as StopRecord;
    if (rec && typeof rec.reason === 'string') return rec;
  } catch {
    /* fall through */
  }
  // A stop file exists but cannot be read: still a stop (starting runs is the unsafe choice).
  return { reason: `${file} exists but is unreadable; remove it to let packers start runs`, by: 'unknown', at: '', kind: 'stop-ensemble' };
}

export function setStop(setupDir: string, rec: Omit<StopRecord, 'at'>): void {
  const p = setupPaths(setupDir);
  ensureDir(p.stateDir);
  writeJsonAtomicSync(p.stopFile, { ...rec, at: new Date().toISOString() });
}

export function clearStop(setupDir: string): void {
  unlinkQuiet(setupPaths(setupDir).stopFile);
}

// --- generation: bumped by add/requeue so post-ensemble hooks run again for the new work ---

export function readGeneration(setupDir: string): number {
  const file = setupPaths(setupDir).generationFile;
  try {
    const g = (JSON.parse(fs.readFileSync(file, 'utf8')) as { generation?: unknown }).generation;
    return typeof g === 'number' && Number.isInteger(g) && g >= 0 ? g : 0;
  } catch {
    return 0;
  }
}

/**
 * Read, add one, write atomically. Two concurrent bumps may both write n+1; that is fine: the
 * generation only has to change (post-ensemble runs once per generation), never go back.
 */
export function bumpGeneration(setupDir: string): number {
  const p = setupPaths(setupDir);
  ensureDir(p.stateDir);
  const next = readGeneration(setupDir) + 1;
  writeJsonAtomicSync(p.generationFile, { generation: next, at: new Date().toISOString() });
  return next;
}

// --- once-markers ---

/** mkdir-based: true for exactly one caller ever (until the marker is removed), across hosts. */
export function takeOnce(markerPath: string): boolean {
  ensureDir(path.dirname(markerPath));
  try {
    fs.mkdirSync(markerPath);
    return true;
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    throw new ThemisError('IO', `cannot create ${markerPath}: ${describeFsError(e)}`, { cause: e });
  }
}

// --- packer heartbeat files ---

export interface PackerInfo {
  packerId: string;
  host: string;
  pid: number;
  pidStart: string | null;
  jobId: string | null;
  allocation: number | null;
  startedAt: string;
  heartbeatAt: string;
  running: number[];
  /** Nodes of its allocation it places no more steps on (their launcher died twice or did not start). */
  nodesDown?: string[];
  note?: string;
  /** The packer's pid namespace (its pid is judged only from inside it). */
  pidNs?: string | null;
}

/** Rewrite `packers/<id>.json` (a new file each time: its mtime is the file server's heartbeat). */
export function writePackerHeartbeat(setupDir: string, info: PackerInfo): void {
  const p = setupPaths(setupDir);
  ensureDir(p.packersDir);
  writeJsonAtomicSync(p.packerFile(info.packerId), info);
}

export function removePacker(setupDir: string, packerId: string): void {
  unlinkQuiet(setupPaths(setupDir).packerFile(packerId));
}

/** Every packer heartbeat file; `alive` = fresh within the lease and, on this host, its pid lives. */
export function listPackers(setupDir: string, opts: ClaimOptions): (PackerInfo & { ageMs: number; alive: boolean })[] {
  const dir = setupPaths(setupDir).packersDir;
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
  } catch (e) {
    if (errno(e) === 'ENOENT') return [];
    throw new ThemisError('IO', `cannot list ${dir}: ${describeFsError(e)}`, { cause: e });
  }
  const now = opts.now();
  const out: (PackerInfo & { ageMs: number; alive: boolean })[] = [];
  for (const name of names.sort()) {
    const file = path.join(dir, name);
    let info: PackerInfo;
    let mtime: number;
    try {
      // One descriptor for both: on NFS, open() revalidates the attributes, so mtime is current.
      const fd = fs.openSync(file, 'r');
      try {
        mtime = fs.fstatSync(fd).mtimeMs;
        info = JSON.parse(fs.readFileSync(fd, 'utf8')) as PackerInfo;
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      continue; // removed meanwhile, or torn by a foreign writer: not a live packer we can describe
    }
    if (!info || typeof info.packerId !== 'string') continue;
    const ageMs = now - mtime;
    const alive = ageMs <= opts.leaseMs && !deadHere(info);
    out.push({ ...info, running: Array.isArray(info.running) ? info.running : [], ageMs, alive });
  }
  return out;
}
