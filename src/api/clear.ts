import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import { DEFAULT_LEASE_MS } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { listPackers } from '../store/ensemble-state.js';
import { runPaths, setupPaths } from '../store/layout.js';
import { readJsonSync } from '../store/atomic.js';
import type { EnsembleRecord } from '../store/records.js';
import { readIndex } from '../store/run-index.js';
import { acquireWriteLock } from '../store/write-lock.js';

export interface ClearOptions {
  /** Clear even while packers look alive (they will fail at their next step). */
  force?: boolean;
}

export interface ClearReport {
  /** Paths removed from the setup directory. */
  removed: string[];
  /** How many run directories lost their `.themis/`. */
  runsCleared: number;
  /** True when the setup directory itself was removed (nothing of the user's was left in it). */
  setupDirRemoved: boolean;
}

/**
 * The entries of the setup directory that themis made: every path `setupPaths` names directly
 * inside it (so a name added to the layout is cleared too), plus leftover temp files.
 */
function themisEntries(setupDir: string): Set<string> {
  const sp = setupPaths(setupDir);
  const names = new Set<string>();
  for (const v of Object.values(sp)) {
    if (typeof v === 'string' && path.dirname(v) === sp.root) names.add(path.basename(v));
  }
  return names;
}

function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch (e) {
    throw new ThemisError('IO', `cannot remove ${p}: ${describeFsError(e)}; fix the permissions and run \`themis clear\` again`, { cause: e });
  }
}

/**
 * Remove an ensemble's own files: ensemble.json first (so it stops "existing" at once), then each
 * run's `.themis/`, then the rest of what themis made in the setup directory. Run directories and
 * user files stay; the setup directory goes only when nothing else is left in it.
 */
export async function clearEnsemble(setupDir: string, options: ClearOptions = {}): Promise<ClearReport> {
  const sp = setupPaths(setupDir);
  const report: ClearReport = { removed: [], runsCleared: 0, setupDirRemoved: false };
  if (!fs.existsSync(sp.root)) return report;
  if (!options.force) {
    const live = listPackers(setupDir, { leaseMs: DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) }).filter((p) => p.alive);
    if (live.length > 0) {
      const who = live.map((p) => `${p.packerId} (host ${p.host}, pid ${p.pid}${p.jobId ? `, job ${p.jobId}` : ''})`).join(', ');
      throw new ThemisError('STATE', `packers are still working on ${sp.root}: ${who}; stop them (or \`themis dequeue\` their runs) first, or pass --force`);
    }
  }
  // Not while `gen --resume` or `add` is writing runs: they would leave half an ensemble behind.
  const release = acquireWriteLock(setupDir, 'clear');
  try {
    removeOurs(setupDir, report);
  } finally {
    release();
  }
  if (fs.readdirSync(sp.root).length === 0) {
    fs.rmdirSync(sp.root);
    report.setupDirRemoved = true;
  }
  return report;
}

function removeOurs(setupDir: string, report: ClearReport): void {
  const sp = setupPaths(setupDir);
  let ens: EnsembleRecord | null = null;
  try {
    ens = readJsonSync<EnsembleRecord>(sp.ensemble);
  } catch {
    // A corrupt ensemble.json must not make the ensemble impossible to clear.
    ens = null;
  }
  // Without a readable root, guess the usual layout: the setup directory sits in the root.
  const root = ens && typeof ens.root === 'string' ? ens.root : path.dirname(sp.root);
  let runDirs: string[] = [];
  try {
    runDirs = readIndex(setupDir, root).map((e) => e.dir);
  } catch {
    runDirs = [];
  }
  if (fs.existsSync(sp.ensemble)) {
    removeTree(sp.ensemble);
    report.removed.push(sp.ensemble);
  }
  for (const dir of runDirs) {
    const meta = runPaths(dir).meta;
    if (fs.existsSync(meta)) {
      removeTree(meta);
      report.runsCleared++;
    }
  }
  const ours = themisEntries(setupDir);
  for (const name of fs.readdirSync(sp.root)) {
    // Temp files of atomic writes that a crash left behind are ours too.
    if (ours.has(name) || (name.endsWith('.lock') && ours.has(name.slice(0, -5))) || /^\..+\.tmp-\d+-[0-9a-f]+(-[0-9a-z]+)?$/.test(name)) {
      const p = path.join(sp.root, name);
      // The write lock is ours too, but we hold it: the caller releases it.
      if (p === sp.writeLock) continue;
      removeTree(p);
      report.removed.push(p);
    }
  }
}
