import fs from 'node:fs';
import { ThemisError } from '../model/errors.js';
import { isCompleted } from '../model/status.js';
import { writeFileAtomicSync } from './atomic.js';
import { DEFAULT_LEASE_MS, inspectClaim, releaseClaim, tryClaim, type Claim, type ClaimOptions, type ClaimOwner } from './claim.js';
import { fileServerNow } from './clock.js';
import { bumpGeneration, clearDequeueRequest, clearFailed, clearStop, markDequeueRequest, readStop } from './ensemble-state.js';
import { runPaths } from './layout.js';
import { adoptLaunch, stepRecords } from './journal.js';
import { aliveHere, hostName } from './proc.js';
import { readEnsemble, withHistory, writeStatus, type StatusRecord } from './records.js';
import { readIndex } from './run-index.js';
import { nextRev, SummaryLog } from './summary.js';
import { readRunState } from './scan.js';

/**
 * requeue and dequeue, safe while packers run: every status write happens while holding the run's
 * claim, exactly as a packer does. A run a live packer holds is never written here: dequeue leaves
 * `dequeue.request` for its holder instead.
 */

export interface OpReport {
  changed: number[];
  /** dequeue asked of a running run: its packer stops it within one heartbeat. */
  pending: number[];
  skipped: { id: number; reason: string }[];
  unknown: number[];
}

export interface RunOpOptions {
  /** Lease used to judge claims (default 60 s, the packer's default). */
  leaseMs?: number;
}

function describeOwner(o: ClaimOwner | null): string {
  if (!o) return 'a claimer whose owner record is unreadable (an old-style claim directory without owner.json)';
  return `packer ${o.packerId} (host ${o.host}, pid ${o.pid}${o.jobId ? `, job ${o.jobId}` : ''})`;
}

function brokenDetail(o: ClaimOwner): string {
  return `stale claim of ${describeOwner(o)} broken by ${hostName()} pid ${process.pid}`;
}

interface Ctx {
  setupDir: string;
  dirs: Map<number, string>;
  opts: ClaimOptions;
  who: { jobId: null; packerId: string };
  report: OpReport;
}

function context(setupDir: string, ids: number[], o: RunOpOptions): Ctx {
  const ens = readEnsemble(setupDir);
  const dirs = new Map(readIndex(setupDir, ens.root).map((e) => [e.id, e.dir] as const));
  const report: OpReport = { changed: [], pending: [], skipped: [], unknown: [] };
  for (const id of new Set(ids)) if (!dirs.has(id)) report.unknown.push(id);
  return {
    setupDir,
    dirs,
    opts: { leaseMs: o.leaseMs ?? DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) },
    who: { jobId: null, packerId: `cli-${hostName()}-${process.pid}` },
    report,
  };
}

/** Claim, re-read the status under the claim, let `fn` decide, always release. */
function underClaim(ctx: Ctx, id: number, dir: string, fn: (status: StatusRecord, claim: Claim, broken: ClaimOwner | null) => void): boolean {
  const got = tryClaim(dir, ctx.who, ctx.opts);
  if (!got) return false;
  try {
    const state = readRunState({ id, dir });
    if (state.status === null) {
      ctx.report.skipped.push({ id, reason: `${state.problem}` });
      return true;
    }
    let status = state.status;
    if (got.broken) {
      // Its packer may have launched the step before writing `running`: then it is a running run.
      status = withHistory(adoptLaunch(ctx.setupDir, status), 'claim broken', brokenDetail(got.broken));
    }
    fn(status, got.claim, got.broken);
  } finally {
    releaseClaim(got.claim);
  }
  return true;
}

function heldReason(dir: string, ctx: Ctx, what: string): string {
  const c = inspectClaim(dir, ctx.opts);
  return `${what}, but claimed by ${describeOwner(c?.owner ?? null)}; retry when it is released`;
}

/**
 * Put completed runs back in the queue. Soft: resume at the step where the run stopped (a
 * successful run, having no such step, starts again at 0). Hard: step 0. Resets the restart
 * budget, clears the runs' failed markers and a stop left by max_failed_runs.
 */
export function requeueRuns(setupDir: string, ids: number[], options: { hard?: boolean } & RunOpOptions = {}): OpReport {
  const ctx = context(setupDir, ids, options);
  const { report } = ctx;
  const candidates: { id: number; dir: string; was: StatusRecord }[] = [];
  const alreadyQueued: number[] = [];
  eachRun(ctx, ids, (id, dir) => {
    const before = readRunState({ id, dir });
    if (before.status === null) {
      report.skipped.push({ id, reason: `${before.problem}` });
    } else if (before.status.status === 'queued') {
      alreadyQueued.push(id);
      report.skipped.push({ id, reason: 'already queued' });
    } else if (!isCompleted(before.status.status)) {
      report.skipped.push({ id, reason: 'running; dequeue it first, or wait for it to end' });
    } else {
      candidates.push({ id, dir, was: before.status });
    }
  });
  // Bump first: if we die half-way, post-ensemble work runs once too often, never once too few.
  if (candidates.length > 0) bumpGeneration(setupDir);
  // The summary of finished runs learns first (synced) that these runs change: a reader must
  // never take a requeued run for finished. One sync for the lot; a run whose revision moved on
  // before we claimed it gets an entry of its own under the claim.
  const summary = SummaryLog.oneOff(setupDir, 'requeue', readEnsemble(setupDir).createdAt);
  summary.obsolete(candidates.map((c) => ({ id: c.id, rev: nextRev(c.was) })));
  let finished = false;
  try {
    const wanted = new Map(candidates.map((c) => [c.id, c.was] as const));
    eachRun(ctx, [...wanted.keys()], (id, dir) => {
      const was = wanted.get(id)!;
      const done = underClaim(ctx, id, dir, (status) => {
        if (!isCompleted(status.status)) {
          report.skipped.push({ id, reason: `became ${status.status} meanwhile` });
          return;
        }
        if ((status.rev ?? 0) !== (was.rev ?? 0)) summary.obsolete([{ id, rev: nextRev(status) }]);
        const step = options.hard || status.status === 'successful' ? 0 : status.step;
        const next: StatusRecord = {
          ...status,
          status: 'queued',
          step,
          attempt: 0,
          restarts: 0,
          exitCode: null,
          signal: null,
          reason: null,
          endedAt: null,
          launch: null,
        };
        const how = options.hard ? 'hard' : 'soft';
        writeStatus(dir, withHistory(next, 'requeued', `${how}, was ${status.status}, resumes at step ${step}`));
        removeQuiet(runPaths(dir).dequeueRequest);
        clearDequeueRequest(ctx.setupDir, id);
        report.changed.push(id);
      });
      if (!done) report.skipped.push({ id, reason: heldReason(dir, ctx, was.status) });
    });
    finished = true;
  } finally {
    summary.close(finished);
  }
  // Markers of runs queued again (now or by an earlier, interrupted requeue) no longer count.
  const requeued = [...report.changed, ...alreadyQueued];
  if (requeued.length > 0) {
    clearFailed(setupDir, requeued);
    if (readStop(setupDir)?.kind === 'max-failed-runs') clearStop(setupDir);
  }
  return report;
}

/** Run `fn` for each known id; a failure (full disk, permissions) is reported for that run, and the rest go on. */
function eachRun(ctx: Ctx, ids: Iterable<number>, fn: (id: number, dir: string) => void): void {
  for (const id of new Set(ids)) {
    const dir = ctx.dirs.get(id);
    if (dir === undefined) continue;
    try {
      fn(id, dir);
    } catch (e) {
      ctx.report.skipped.push({ id, reason: (e as Error).message });
    }
  }
}

function removeQuiet(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    /* not there */
  }
}

function killed(status: StatusRecord, detail: string): StatusRecord {
  const now = new Date().toISOString();
  return withHistory({ ...status, status: 'killed', reason: 'dequeued', endedAt: now, launch: null }, 'dequeued', detail);
}

/** The step process of a `running` status (from its packer's journal), when it lives on this host, has not ended and still runs. */
function liveStepHere(setupDir: string, dir: string, status: StatusRecord): boolean {
  const rec = stepRecords(setupDir, dir, status);
  const p = rec.start;
  return rec.exit === null && p !== null && aliveHere(p);
}

function requestDequeue(setupDir: string, id: number, dir: string): void {
  // The packer holding the run lists state/dequeue/ each heartbeat; the file in the run directory
  // is for packers of older themis versions, which looked there.
  markDequeueRequest(setupDir, id);
  writeFileAtomicSync(runPaths(dir).dequeueRequest, JSON.stringify({ at: new Date().toISOString(), by: `${hostName()} pid ${process.pid}` }) + '\n');
}

/**
 * Take runs out of the queue. Queued runs become `killed` at once. Running runs held by a live
 * packer get a `dequeue.request` (reported as pending); their packer stops them within one
 * heartbeat. A running run whose packer is gone is marked killed here, unless its step process
 * still runs on this host, which only the packer protocol may stop.
 */
export function dequeueRuns(setupDir: string, ids: number[], options: RunOpOptions = {}): OpReport {
  const ctx = context(setupDir, ids, options);
  const summary = SummaryLog.oneOff(setupDir, 'dequeue', readEnsemble(setupDir).createdAt);
  try {
    return dequeueEach(ctx, ids, summary);
  } finally {
    summary.close(true);
  }
}

function dequeueEach(ctx: Ctx, ids: number[], summary: SummaryLog): OpReport {
  const { report } = ctx;
  eachRun(ctx, ids, (id, dir) => {
    const before = readRunState({ id, dir });
    if (before.status === null) {
      report.skipped.push({ id, reason: `${before.problem}` });
      return;
    }
    const s = before.status.status;
    if (isCompleted(s)) {
      report.skipped.push({ id, reason: `already ${s}` });
      return;
    }
    if (s === 'running') {
      const c = inspectClaim(dir, ctx.opts);
      if ((c !== null && !c.stale) || liveStepHere(ctx.setupDir, dir, before.status)) {
        requestDequeue(ctx.setupDir, id, dir);
        report.pending.push(id);
        return;
      }
    }
    const done = underClaim(ctx, id, dir, (status, _claim, broken) => {
      if (isCompleted(status.status)) {
        report.skipped.push({ id, reason: `already ${status.status}` });
        return;
      }
      const detail = status.status === 'running' ? `was running under ${broken ? describeOwner(broken) : 'no packer'}, which is gone` : 'was queued';
      const k = killed(status, detail);
      writeStatus(dir, k);
      // Final now: into the summary of finished runs (after the status, never before it).
      summary.final(id, k.rev ?? 0, k.status, k.step, k.reason);
      removeQuiet(runPaths(dir).dequeueRequest);
      clearDequeueRequest(ctx.setupDir, id);
      report.changed.push(id);
    });
    if (!done) {
      // A packer claimed it just now (to start it): it honours the request before or after starting.
      requestDequeue(ctx.setupDir, id, dir);
      report.pending.push(id);
    }
  });
  return report;
}

/**
 * Parse run ids: "1-10,15", "3 4 5", "1,2, 7-9". Returns unique ids in the order given.
 * @example parseIdList('1-3,7') // [1, 2, 3, 7]
 */
export function parseIdList(text: string): number[] {
  const parts = text.split(/[\s,]+/).filter((p) => p !== '');
  if (parts.length === 0) throw new ThemisError('USAGE', `no run ids given (expected a list like "1-10,15")`);
  const seen = new Set<number>();
  const out: number[] = [];
  const add = (n: number) => {
    if (!seen.has(n)) {
      seen.add(n);
      out.push(n);
    }
  };
  for (const part of parts) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new ThemisError('USAGE', `bad run id ${JSON.stringify(part)} in ${JSON.stringify(text)}: use positive integers and ranges like 1-10,15`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || !Number.isSafeInteger(b)) throw new ThemisError('USAGE', `bad run id ${JSON.stringify(part)}: run ids start at 1`);
    if (b < a) throw new ThemisError('USAGE', `bad range ${JSON.stringify(part)}: the end is before the start (write ${b}-${a})`);
    if (b - a > 10_000_000) throw new ThemisError('USAGE', `range ${JSON.stringify(part)} is too large (over 10 million ids)`);
    for (let n = a; n <= b; n++) add(n);
  }
  return out;
}
