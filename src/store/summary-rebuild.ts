import fs from 'node:fs';
import path from 'node:path';
import { deadHere, hostName } from './proc.js';
import type { RunState } from './scan.js';
import { ONE_OFF_SUFFIX, parseSummaryFile, SummaryEntries, summaryDir, writeBase } from './summary.js';

/**
 * `themis doctor`'s rebuild of the summary of finished runs from a full scan, in two halves around
 * that scan. What each file is must be judged *before* the scan: a one-off writer's file that had
 * its last line then describes changes the scan sees, so it can be folded into the base; one
 * still being written may announce a change the scan missed, so it is kept.
 */

export interface RebuildPlan {
  setupDir: string;
  createdAt: string;
  /** Files to remove once the base is written. */
  removable: string[];
  /** Damaged files whose writer is gone: moved aside (`.damaged-<name>`), kept for a person to read. */
  quarantine: string[];
  /** Damaged files whose writer may still be writing: kept, and the summary stays unusable until it ends. */
  kept: { name: string; problem: string }[];
}

export interface SummaryRebuild {
  /** Runs written into the base. */
  runs: number;
  /** Summary files folded into the base and removed. */
  removed: number;
  /** Damaged files moved aside, and damaged files left because their writer may live. */
  quarantined: string[];
  kept: { name: string; problem: string }[];
}

/** A one-off file names its writer: `<command>-<host>-<pid>-<random>.once.log`. */
function writerGone(name: string, file: string): boolean {
  const m = /^[a-z]+-(.+)-(\d+)-[0-9a-f]{6}\.once\.log$/.exec(name);
  if (m && m[1] === hostName()) return deadHere({ host: m[1], pid: Number(m[2]), pidStart: null });
  // Elsewhere we cannot ask: a file untouched for an hour belongs to no running command (they sync every entry).
  try {
    return Date.now() - fs.statSync(file).mtimeMs > 3_600_000;
  } catch {
    return true;
  }
}

export function planRebuild(setupDir: string, createdAt: string, ids: ReadonlySet<number>, livePackers: ReadonlySet<string>): RebuildPlan {
  const dir = summaryDir(setupDir);
  const plan: RebuildPlan = { setupDir, createdAt, removable: [], quarantine: [], kept: [] };
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.log') && !n.startsWith('.') && n !== 'base.log');
  } catch {
    return plan;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    let verdict: string | 'done' | null;
    try {
      verdict = parseSummaryFile(file, fs.readFileSync(file, 'utf8'), createdAt, (id) => ids.has(id), new SummaryEntries());
    } catch {
      continue; // removed meanwhile
    }
    const oneOff = name.endsWith(ONE_OFF_SUFFIX);
    if (!oneOff) {
      // A packer's file holds only final entries: dropping one only uncovers runs, so a damaged file
      // or one of a packer that is gone simply goes.
      if (verdict !== null && verdict !== 'done') plan.removable.push(name);
      else if (!livePackers.has(name.slice(0, -'.log'.length))) plan.removable.push(name);
    } else if (verdict === 'done') plan.removable.push(name);
    else if (verdict !== null) {
      if (writerGone(name, file)) plan.quarantine.push(name);
      else plan.kept.push({ name, problem: verdict });
    }
  }
  return plan;
}

/** Write the base from `runs` (scanned after `plan` was made), then tidy up as planned. */
export function rebuildSummary(plan: RebuildPlan, runs: readonly RunState[]): SummaryRebuild {
  const base: Parameters<typeof writeBase>[2][number][] = [];
  for (const r of runs) {
    // An unreadable status stays out of the base: it covers nothing, so it is read (and reported) each time.
    if (r.status === null) continue;
    base.push({ id: r.id, rev: r.status.rev ?? 0, status: r.status.status, step: r.status.step, reason: r.status.reason });
  }
  const removed = writeBase(plan.setupDir, plan.createdAt, base, plan.removable);
  const dir = summaryDir(plan.setupDir);
  const quarantined: string[] = [];
  for (const name of plan.quarantine) {
    try {
      fs.renameSync(path.join(dir, name), path.join(dir, `.damaged-${name}`));
      quarantined.push(name);
    } catch {
      /* gone already */
    }
  }
  return { runs: base.length, removed: removed.length, quarantined, kept: plan.kept };
}
