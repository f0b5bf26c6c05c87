import fs from 'node:fs';
import { readJsonSync } from '../store/atomic.js';
import { runPaths, setupPaths } from '../store/layout.js';
import { readRunRecord, type RunRecord } from '../store/records.js';
import { readEnsemble, readStatus, withHistory, writeStatus } from '../store/records.js';
import { holdsClaim, releaseClaim, tryClaim, type ClaimOptions, type OwnerInput } from '../store/claim.js';
import { peekStatusesParallel, scanWorkersFor } from '../store/parallel-read.js';
import { peekStatus } from '../store/peek.js';
import { readIndexTable, type IndexEntry } from '../store/run-index.js';
import { readSummary } from '../store/summary.js';
import { resourcesOf, type StepResources } from '../model/resources.js';

/** A run the packer may claim: queued, or `running` with a claim that looks abandoned. */
export interface Candidate {
  id: number;
  /** = id: a loaded candidate is its own QueueItem for the packing decision (no copy per decision). */
  runId: number;
  dir: string;
  /** The step its status says it is at (the run is re-read under the claim before it starts). */
  step: number;
  orphan: boolean;
  since: number;
  passedOver: number;
  /** Loaded when the run comes near the front of the queue (run.json is not read for all runs). */
  record?: RunRecord;
  need?: StepResources;
  gone?: boolean;
}

/** A candidate whose run record was read: the packing decision's QueueItem, as it is. */
export type LoadedCandidate = Candidate & { need: StepResources };

export interface QueueScan {
  candidates: Candidate[];
  /** Runs still queued or running anywhere (0 = the ensemble has nothing left to do). */
  pending: number;
  queued: number;
  /** Runs held by a packer that has missed heartbeats: they may become stale soon. */
  suspects: number;
  problems: { id: number; problem: string }[];
  /** Threads that read the status files (1: read here). */
  workers: number;
  /** Runs the summary of finished runs answered for (their status files were not read). */
  covered: number;
  /** Why the summary could not be trusted (every status file was read); null when it was. */
  summaryProblem: string | null;
}

/** The run ids planned for an allocation (`batch/plan-<k>.json`), or [] without a plan. */
export function readPlan(setupDir: string, allocation: number | null): number[] {
  if (allocation === null) return [];
  const plan = readJsonSync<{ runIds?: number[] }>(setupPaths(setupDir).planFile(allocation));
  return Array.isArray(plan?.runIds) ? plan.runIds : [];
}

/**
 * Read every run's status and order what can be started: this allocation's planned runs first (in
 * plan order), then every other run in id order unless `steal` is off. `skip` holds runs this
 * packer has in hand or has found blocked. `claimState` judges a `running` run's claim.
 */
export async function scanQueue(
  setupDir: string,
  opts: { plan: number[]; steal: boolean; skip: ReadonlySet<number>; now: number; claimState: (dir: string) => 'stale' | 'live' | 'suspect' },
): Promise<QueueScan> {
  const planned = new Map(opts.plan.map((id, i) => [id, i]));
  const mine: Candidate[] = [];
  const others: Candidate[] = [];
  const problems: QueueScan['problems'] = [];
  let pending = 0;
  let queued = 0;
  let suspects = 0;
  const ensemble = readEnsemble(setupDir);
  const root = ensemble.root;
  const table = readIndexTable(setupDir, root);
  // Finished runs are not read again: the summary says they cannot have changed.
  const summary = readSummary(setupDir, ensemble.createdAt, table.known);
  const covered = summary.ok ? summary.covered : null;
  const entries: IndexEntry[] = [];
  for (let i = 0; i < table.count; i++) if (!covered?.has(table.ids[i]!)) entries.push(table.entryAt(i));
  // On a network file system a large ensemble's status files are read by threads, each open a
  // round trip to the server (as `themis status` reads them); here the loop only judges them.
  const workers = scanWorkersFor(entries.length, root);
  const peeked = workers > 1 ? await peekStatusesParallel(entries, workers) : null;
  for (let i = 0; i < entries.length; i++) {
    // Yield between slices so heartbeats and step exits are handled during a long scan.
    if (i > 0 && i % 500 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const r = peeked ? peeked[i]! : peekStatus(entries[i]!);
    if ('problem' in r) {
      problems.push({ id: r.id, problem: r.problem });
      continue;
    }
    const s = r.status;
    if (s !== 'queued' && s !== 'running') continue;
    pending++;
    if (s === 'queued') queued++;
    if (opts.skip.has(r.id)) continue;
    const inPlan = planned.has(r.id);
    if (!inPlan && !opts.steal) continue;
    // A running run is someone else's unless its claim is stale (checked only for these few).
    if (s === 'running') {
      const state = opts.claimState(r.dir);
      if (state === 'suspect') suspects++;
      if (state !== 'stale') continue;
    }
    const c: Candidate = { id: r.id, runId: r.id, dir: r.dir, step: r.step, orphan: s === 'running', since: opts.now, passedOver: 0 };
    (inPlan ? mine : others).push(c);
  }
  mine.sort((a, b) => planned.get(a.id)! - planned.get(b.id)!);
  return {
    candidates: mine.concat(others),
    pending,
    queued,
    suspects,
    problems,
    workers,
    covered: table.count - entries.length,
    summaryProblem: summary.ok ? null : summary.problem,
  };
}

/** Fill in a candidate's run record and the needs of its current step; false when unreadable. */
export function loadCandidate(c: Candidate): c is LoadedCandidate {
  if (c.need) return true;
  try {
    c.record = readRunRecord(c.dir);
  } catch {
    return false;
  }
  const step = c.record.steps[Math.min(c.step, c.record.steps.length - 1)];
  if (!step) return false;
  c.need = resourcesOf(step);
  return true;
}

/** Does the run ask to be stopped (`themis dequeue` of a running run)? */
export function dequeueRequested(dir: string): boolean {
  return fs.existsSync(runPaths(dir).dequeueRequest);
}

/** Write why a run cannot start into its status (under its claim), so `themis status` shows it. */
export function noteBlocked(dir: string, reason: string, who: OwnerInput, opts: ClaimOptions): void {
  const r = tryClaim(dir, who, opts);
  if (!r) return;
  try {
    const s = readStatus(dir);
    if (s && s.status === 'queued' && s.reason !== `blocked: ${reason}` && holdsClaim(r.claim)) {
      writeStatus(dir, withHistory({ ...s, reason: `blocked: ${reason}` }, 'blocked', reason));
    }
  } finally {
    releaseClaim(r.claim);
  }
}
