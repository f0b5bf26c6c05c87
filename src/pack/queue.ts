import fs from 'node:fs';
import { readJsonSync } from '../store/atomic.js';
import { runPaths, setupPaths, statusFileOf } from '../store/layout.js';
import { readRunRecord, type RunRecord } from '../store/records.js';
import { readRunState } from '../store/scan.js';
import { readEnsemble, readStatus, withHistory, writeStatus } from '../store/records.js';
import { holdsClaim, releaseClaim, tryClaim, type ClaimOptions, type OwnerInput } from '../store/claim.js';
import { readIndex, type IndexEntry } from '../store/run-index.js';
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
  const entries = readIndex(setupDir, readEnsemble(setupDir).root);
  for (let i = 0; i < entries.length; i++) {
    // Yield between slices so heartbeats and step exits are handled during a long scan.
    if (i > 0 && i % 500 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const r = peekStatus(entries[i]!);
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
  return { candidates: mine.concat(others), pending, queued, suspects, problems };
}

const STATUS_RE = /^\{\s*"format":\s*1,\s*"id":\s*(\d+),\s*"status":\s*"([a-z]+)",\s*"step":\s*(\d+),/;

/**
 * A run's status and step without parsing its whole record: statuses are written by themis with a
 * fixed key order, so the head of the file says it. Parsing every history of 100,000 runs at
 * each rescan would cost the packer hundreds of MB; anything unexpected takes the full parse.
 */
function peekStatus(entry: IndexEntry): { id: number; dir: string; status: string; step: number } | { id: number; problem: string } {
  let text: string | null = null;
  try {
    text = fs.readFileSync(statusFileOf(entry.dir), 'utf8');
  } catch {
    /* missing or unreadable: the full reader says which */
  }
  if (text !== null) {
    const m = STATUS_RE.exec(text);
    if (m && Number(m[1]) === entry.id) return { id: entry.id, dir: entry.dir, status: m[2]!, step: Number(m[3]) };
  }
  const full = readRunState(entry);
  if (full.status === null) return { id: entry.id, problem: full.problem ?? 'no status' };
  return { id: entry.id, dir: entry.dir, status: full.status.status, step: full.status.step };
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
