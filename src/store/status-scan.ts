import { FORMAT_VERSION } from './layout.js';
import { readRunStatesParallel, scanWorkersFor } from './parallel-read.js';
import { readEnsemble, type EnsembleRecord, type StatusRecord } from './records.js';
import { readIndex, readIndexTable, type IndexEntry } from './run-index.js';
import type { RunState } from './scan.js';
import { CoveredRuns, readSummary, type SummaryEntry } from './summary.js';

/**
 * Every run's status for the commands that only need statuses (`themis status`, `progress`,
 * `countByStatus`/`filterByStatus`): the summary of finished runs answers for the runs it covers,
 * and only the others' status files are read. `full` reads every status file, as does a summary
 * that cannot be trusted (the answer says why).
 */

export interface SummaryUse {
  /** False when every status file was read (`full`, or a summary that cannot be trusted). */
  used: boolean;
  /** Runs answered from the summary, and runs whose status file was read. */
  covered: number;
  read: number;
  /** Summary files read. */
  files: number;
  /** Why the summary was not used although asked for; null when it was (or `full`). */
  problem: string | null;
}

export interface StatusScan {
  ensemble: EnsembleRecord;
  /** In index order; a run answered from the summary has `fromSummary` set and a status with no history. */
  runs: RunState[];
  summary: SummaryUse;
}

/** A final status as the summary states it: what status reports read (status, step, reason). */
function summarized(id: number, f: NonNullable<SummaryEntry['final']>): StatusRecord {
  return {
    format: FORMAT_VERSION,
    id,
    status: f.status,
    step: f.step,
    attempt: 0,
    restarts: 0,
    exitCode: null,
    signal: null,
    reason: f.reason,
    startedAt: null,
    endedAt: null,
    host: null,
    jobId: null,
    history: [],
  };
}

/** Which runs of `entries` the summary covers; null (and why) when it cannot be trusted. */
export function coveredRuns(setupDir: string, ensemble: EnsembleRecord, entries: readonly IndexEntry[]) {
  let max = 0;
  for (const e of entries) if (e.id > max) max = e.id;
  const known = new Uint8Array(max + 1);
  for (const e of entries) if (e.id >= 0) known[e.id] = 1;
  return readSummary(setupDir, ensemble.createdAt, known);
}

/**
 * As scanStatuses, without an object per covered run: what the status report needs of a 100,000-run
 * ensemble that is mostly finished (the covered runs' counts and final statuses, the others'
 * records). `read` is in index order.
 */
export interface CompactStatusScan {
  ensemble: EnsembleRecord;
  total: number;
  read: RunState[];
  /** Covered runs (all in the index: a summary naming another run is not trusted), with what the summary says of them. */
  covered: CoveredRuns;
  summary: SummaryUse;
}

const NONE_COVERED = new CoveredRuns(new Int32Array(0), [], [0]);

export async function scanStatusesCompact(setupDir: string, opts: { full?: boolean; workers?: number } = {}): Promise<CompactStatusScan> {
  const ensemble = readEnsemble(setupDir);
  const table = readIndexTable(setupDir, ensemble.root);
  const sum = opts.full ? null : readSummary(setupDir, ensemble.createdAt, table.known);
  const covered = sum?.ok ? sum.covered : NONE_COVERED;
  const toRead: IndexEntry[] = covered.uncoveredIn(table.ids).map((i) => table.entryAt(i));
  const read = await readRunStatesParallel(toRead, opts.workers ?? scanWorkersFor(toRead.length, ensemble.root));
  return {
    ensemble,
    total: table.count,
    read,
    covered,
    summary: { used: sum?.ok === true, covered: table.count - toRead.length, read: toRead.length, files: sum?.files ?? 0, problem: sum && !sum.ok ? sum.problem : null },
  };
}

export async function scanStatuses(setupDir: string, opts: { full?: boolean; ids?: Iterable<number>; workers?: number } = {}): Promise<StatusScan> {
  const ensemble = readEnsemble(setupDir);
  const all = readIndex(setupDir, ensemble.root);
  let entries = all;
  if (opts.ids !== undefined) {
    const want = new Set(opts.ids);
    entries = all.filter((e) => want.has(e.id));
  }
  const read = opts.full ? null : coveredRuns(setupDir, ensemble, all);
  const covered = read?.ok ? read.covered : null;
  const runs = new Array<RunState>(entries.length);
  const toRead: IndexEntry[] = [];
  const slots: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const f = covered?.get(e.id);
    if (f !== undefined) runs[i] = { id: e.id, dir: e.dir, status: summarized(e.id, f), problem: null, fromSummary: true };
    else {
      toRead.push(e);
      slots.push(i);
    }
  }
  const states = await readRunStatesParallel(toRead, opts.workers ?? scanWorkersFor(toRead.length, ensemble.root));
  for (let k = 0; k < states.length; k++) runs[slots[k]!] = states[k]!;
  return {
    ensemble,
    runs,
    summary: {
      used: covered !== null,
      covered: entries.length - toRead.length,
      read: toRead.length,
      files: read?.files ?? 0,
      problem: read && !read.ok ? read.problem : null,
    },
  };
}
