import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { holdsClaim, releaseClaim, tryClaim, type ClaimOptions, type OwnerInput } from '../store/claim.js';
import { clearDequeueRequest, failedCount, markFailed, readStop, setStop } from '../store/ensemble-state.js';
import { adoptLaunch } from '../store/journal.js';
import { RUN_LOG, runPaths } from '../store/layout.js';
import { readStatus, writeResult, writeStatus, type StatusRecord } from '../store/records.js';
import type { SummaryLog } from '../store/summary.js';
import { isCompleted } from '../model/status.js';
import type { Effect, EffectOf, PackerEvent } from './events.js';
import type { Hooks } from './hooks.js';
import type { Launchers } from './node-launchers.js';
import { spawnRequest, type LaunchSetup } from './launch-policy.js';
import { settleOrphan } from './orphan.js';
import type { PoolState } from './pool.js';
import { dequeueRequested, noteBlocked } from './queue.js';

/** What carrying out effects needs: the files' owners, and the loop for what only it can do. */
export interface Shell {
  readonly setupDir: string;
  readonly who: OwnerInput;
  readonly claimOpts: ClaimOptions;
  readonly graceMs: number;
  readonly launch: LaunchSetup;
  readonly hooks: Hooks;
  readonly launchers: Launchers;
  readonly pool: PoolState;
  /** This packer's summary file: a line per run that reaches a final status. */
  readonly summary: SummaryLog;
  /** Was the run asked to stop (`themis dequeue`) at the last heartbeat's listing? */
  dequeueAsked(runId: number): boolean;
  log(line: string): void;
  /** Hand an answer to the core now (a synchronous effect's) or when it comes (an asynchronous one's). */
  dispatch(ev: PackerEvent): void;
  /** The packer gave up on an error it cannot hand to a run. */
  fatal(e: unknown): void;
  // What the loop owns: decisions, scans, timers, the end.
  decideNow(): void;
  decideSoon(): void;
  rescan(): void;
  lookForWork(windowWasFull: boolean): void;
  later(ms: number, ev: PackerEvent): void;
  changed(): void;
  finish(reason: string, keepJournal: boolean): void;
}

/**
 * Carry out one effect against claims, records, the launcher and hooks. Thin on purpose: every
 * decision is the core's (`transitions.ts`); an effect that learns something (a claim taken, a
 * status written or refused, a hook's value) hands it back as an event.
 */
export function carryOut(e: Effect, sh: Shell): void {
  switch (e.type) {
    case 'log':
      sh.log(e.line);
      return;
    case 'claim':
      claim(e, sh);
      return;
    case 'note-blocked':
      noteBlocked(e.dir, e.reason, sh.who, sh.claimOpts);
      return;
    case 'settle-orphan':
      settleOrphan(sh.setupDir, e.dir, e.status, sh.graceMs).then(
        (outcome) => sh.dispatch({ type: 'orphan-settled', runId: e.runId, outcome, dequeueRequested: dequeueRequested(e.dir) }),
        (err: unknown) => sh.fatal(err),
      );
      return;
    case 'run-hook':
      sh.hooks.call(e.hook, { id: e.runId, record: e.record, dir: e.dir }).then(
        (value) => sh.dispatch({ type: 'hook-done', runId: e.runId, hook: e.hook, ok: true, value }),
        (err: unknown) => sh.dispatch({ type: 'hook-done', runId: e.runId, hook: e.hook, ok: false, message: String((err as Error)?.message ?? err), detail: String((err as Error)?.stack ?? err) }),
      );
      return;
    case 'write-status':
      sh.dispatch(writeHeldStatus(sh, e.runId, e.dir, e.claim, e.status));
      return;
    case 'write-result':
      try {
        writeResult(e.dir, e.value);
      } catch (err) {
        sh.dispatch({ type: 'result-written', runId: e.runId, ok: false, message: `cannot write result.json: ${(err as Error)?.message ?? err}` });
        return;
      }
      sh.dispatch({ type: 'result-written', runId: e.runId, ok: true });
      return;
    case 'append-log':
      try {
        const cwd = path.resolve(e.dir, e.cwd);
        fs.mkdirSync(cwd, { recursive: true });
        fs.appendFileSync(path.join(cwd, RUN_LOG), e.text + '\n');
      } catch {
        /* the status reason still says it */
      }
      return;
    case 'clear-dequeue':
      try {
        fs.unlinkSync(runPaths(e.dir).dequeueRequest);
      } catch {
        /* already gone */
      }
      clearDequeueRequest(sh.setupDir, e.runId);
      return;
    case 'release-claim':
      releaseClaim(e.claim, sh.claimOpts.leaseMs);
      return;
    case 'spawn':
      sh.launchers.spawn(
        e.route,
        spawnRequest(sh.launch, sh.pool, e.slot, { key: e.key, runId: e.runId, runDir: e.dir, setupDir: sh.setupDir, stepIndex: e.stepIndex, attempt: e.attempt, step: e.step, route: e.route }),
      );
      return;
    case 'kill':
      sh.launchers.kill(e.key, e.reason);
      return;
    case 'clean-node':
      sh.launchers.clean(e.node, e.pids);
      return;
    case 'kill-group':
      try {
        process.kill(-e.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      return;
    case 'mark-failed':
      markFailed(sh.setupDir, e.runId);
      if (e.count) sh.dispatch({ type: 'failures-counted', failed: failedCount(sh.setupDir) });
      return;
    case 'set-stop-flag':
      if (!readStop(sh.setupDir)) setStop(sh.setupDir, { reason: e.reason, by: sh.who.packerId, kind: e.kind });
      return;
    case 'write-running-later':
      sh.later(e.ms, { type: 'running-write-due', key: e.key });
      return;
    case 'wait-job-stop':
      sh.later(e.ms, { type: 'job-stop-window-closed', key: e.key });
      return;
    case 'rescan':
      sh.rescan();
      return;
    case 'rescan-later':
      sh.later(e.ms, { type: 'rescan-due', recheck: true });
      return;
    case 'look-for-work':
      sh.lookForWork(e.windowWasFull);
      return;
    case 'decide-soon':
      sh.decideSoon();
      return;
    case 'decide-now':
      sh.decideNow();
      return;
    case 'changed':
      sh.changed();
      return;
    case 'finish':
      sh.finish(e.reason, e.keepJournal);
      return;
  }
}

/** Claim the run and read its status under the claim (the scan's view may be old by now). */
function claim(e: EffectOf<'claim'>, sh: Shell): void {
  const c = e.candidate;
  // The queue keeps consumed entries until its next scan (minutes apart with a huge ensemble):
  // the run's record goes with the claim into the held run, or every launched run's stays in memory.
  const record = c.record!;
  c.record = undefined;
  let got: ReturnType<typeof tryClaim>;
  try {
    got = tryClaim(c.dir, sh.who, sh.claimOpts);
  } catch (err) {
    if (!(err instanceof ThemisError)) throw err;
    sh.dispatch({ type: 'claim-failed', candidate: c, slot: e.slot, why: 'refused', message: err.message });
    return;
  }
  if (!got) {
    sh.dispatch({ type: 'claim-failed', candidate: c, slot: e.slot, why: 'contested', message: 'claimed by another packer' });
    return;
  }
  let status: StatusRecord | null = null;
  let statusError: string | null = null;
  try {
    status = readStatus(c.dir);
    // A dead packer may have launched the step before writing its `running` status. The adoption
    // is written at once: should we die too, whoever comes next finds the launch in the status.
    if (got.broken && status?.status === 'queued') {
      const adopted = adoptLaunch(sh.setupDir, status);
      if (adopted !== status) {
        writeStatus(c.dir, adopted);
        status = adopted;
      }
    }
  } catch (err) {
    statusError = (err as Error).message;
  }
  // Only a queued run starts at once; a `running` one is an orphan, checked after it is settled.
  const dequeue = status?.status === 'queued' && sh.dequeueAsked(c.id);
  sh.dispatch({ type: 'claimed', candidate: c, record, slot: e.slot, claim: got.claim, broken: got.broken, status, statusError, dequeueRequested: dequeue });
}

/**
 * Write a held run's status only while its claim is still ours; a final one goes into the summary
 * of finished runs after it is on disk (in that order: an entry must never be ahead of its status).
 */
function writeHeldStatus(sh: Shell, runId: number, dir: string, claim: EffectOf<'write-status'>['claim'], status: StatusRecord): PackerEvent {
  if (!holdsClaim(claim, sh.claimOpts.leaseMs)) return { type: 'status-written', runId, ok: false, why: 'claim-lost', message: 'claim lost' };
  try {
    writeStatus(dir, status);
  } catch (err) {
    return { type: 'status-written', runId, ok: false, why: 'io', message: (err as Error)?.message ?? String(err) };
  }
  if (isCompleted(status.status)) sh.summary.final(runId, status.rev ?? 0, status.status, status.step, status.reason);
  return { type: 'status-written', runId, ok: true };
}
