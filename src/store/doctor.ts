import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_LEASE_MS, inspectClaim, releaseClaim, tryClaim, type ClaimOptions, type ClaimOwner } from './claim.js';
import { fileServerNow } from './clock.js';
import { listPackers, readStop, removePacker } from './ensemble-state.js';
import { adoptLaunch, journalId, journalPacker, launchedFrom, listJournals, removeJournal, stepRecords } from './journal.js';
import { runPaths, setupPaths } from './layout.js';
import { aliveHere, hostName, samePidSpace } from './proc.js';
import { newStatus, readEnsemble, withHistory, writeStatus, type StatusRecord } from './records.js';
import type { IndexEntry } from './run-index.js';
import { readRunState } from './scan.js';
import { nextRev, SummaryLog } from './summary.js';
import { isCompleted } from '../model/status.js';
import { planRebuild, rebuildSummary, type SummaryRebuild } from './summary-rebuild.js';

/**
 * `themis doctor`: find what crashes, killed allocations and full disks can leave behind, explain
 * each finding, and (with repair) fix what is safe. Every repair is one atomic step taken under
 * the run's claim or on a path nobody else can use any more, and re-checks its finding first, so
 * doctor may itself be killed and simply run again.
 */

export type FindingKind =
  | 'orphan-running'
  | 'stale-claim'
  | 'missing-status'
  | 'unreadable-status'
  | 'missing-run-dir'
  | 'duplicate-id'
  | 'corrupt-index'
  | 'claim-leftover'
  | 'dead-break-mutex'
  | 'dead-packer'
  | 'staging-leftover'
  | 'stopped';

export interface Finding {
  kind: FindingKind;
  /** 'info' findings are states worth knowing (a stop flag), not damage. */
  severity: 'problem' | 'info';
  runId: number | null;
  path: string;
  problem: string;
  /** What --repair does about it; null when it needs a person (the text in `problem` says how). */
  repair: string | null;
  /** After --repair: what happened. */
  outcome?: 'repaired' | 'left' | 'failed';
  note?: string;
}

export interface DoctorReport {
  setupDir: string;
  runsChecked: number;
  findings: Finding[];
  repaired: boolean;
  /** The summary of finished runs, rebuilt from the statuses as doctor left them. */
  summary: SummaryRebuild;
}

export interface DoctorOptions {
  repair?: boolean;
  leaseMs?: number;
  /** Staging dirs younger than this are left alone (a `gen` may be writing them). */
  stagingAgeMs?: number;
}

const LEFTOVER = /^(claim|claim-break)\.(broken|released|dead)-|^\..+\.tmp-/;

function age(p: string, now: number): number | null {
  try {
    return now - fs.statSync(p).mtimeMs;
  } catch {
    return null;
  }
}

function secs(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function who(o: ClaimOwner | null): string {
  return o ? `packer ${o.packerId} (host ${o.host}, pid ${o.pid}${o.jobId ? `, job ${o.jobId}` : ''})` : 'a claimer whose owner record is unreadable';
}

interface StepProc {
  host: string;
  pid: number;
  pidStart: string | null;
  pidNs?: string | null;
}

function liveHere(p: StepProc | null): boolean {
  return p !== null && aliveHere(p);
}

/** Look at one run; push its findings. `journals` collects the packers whose journal a running status points into. */
function checkRun(setupDir: string, id: number, dir: string, opts: ClaimOptions, findings: Finding[], journals: Set<string>): void {
  const state = readRunState({ id, dir });
  const rp = runPaths(dir);
  if (state.status === null) {
    if (!fs.existsSync(dir)) {
      findings.push({
        kind: 'missing-run-dir',
        severity: 'problem',
        runId: id,
        path: dir,
        problem: `${state.problem}; the index still lists it. \`themis gen --resume\` renders missing run directories`,
        repair: null,
      });
      return;
    }
    if (!fs.existsSync(rp.status) && fs.existsSync(rp.run)) {
      findings.push({
        kind: 'missing-status',
        severity: 'problem',
        runId: id,
        path: rp.status,
        problem: `${rp.status} is missing`,
        repair: "write a fresh `queued` status (step 0) under the run's claim",
      });
    } else {
      findings.push({
        kind: 'unreadable-status',
        severity: 'problem',
        runId: id,
        path: rp.status,
        problem: `${state.problem}. Look at it; to run the run again from step 0, move it aside (\`mv ${rp.status} ${rp.status}.bad\`) and run \`themis doctor --repair\``,
        repair: null,
      });
    }
  }
  let names: string[];
  try {
    names = fs.readdirSync(rp.meta);
  } catch {
    return;
  }
  const now = opts.now();
  if (state.status?.status === 'running' && state.status.launch) journals.add(journalId(state.status.launch.packer, state.status.launch.node));
  const claim = names.includes('claim') ? inspectClaim(dir, opts) : null;
  if (state.status?.status === 'running' && (claim === null || claim.stale)) {
    const s = state.status;
    const gone = claim === null ? 'no packer holds it (no claim)' : `its claim is stale: ${claim.why}`;
    const rec = stepRecords(setupDir, dir, s);
    const proc = rec.start;
    let repair: string | null;
    let extra = '';
    if (rec.exit === null && liveHere(proc)) {
      repair = null;
      extra = `; its step still runs here (pid ${proc!.pid}): the next packer on ${hostName()} stops it and takes the run back, or \`kill ${proc!.pid}\` and run doctor again`;
    } else if (rec.exit !== null) {
      repair = `break the dead claim; the step's exit was recorded, so the next packer finishes its bookkeeping instead of running it again`;
    } else {
      repair = `put the run back to \`queued\` at step ${s.step} (an interruption uses no restart)`;
    }
    findings.push({ kind: 'orphan-running', severity: 'problem', runId: id, path: dir, problem: `run is \`running\` but ${gone}${extra}`, repair });
  } else if (claim?.stale) {
    findings.push({
      kind: 'stale-claim',
      severity: 'problem',
      runId: id,
      path: rp.claim,
      problem: `stale claim: ${claim.why}`,
      repair: "break it (recorded in the run's history); packers would break it too, when they reach this run",
    });
  }
  for (const name of names) {
    const p = path.join(rp.meta, name);
    const a = age(p, now);
    if (a === null || a <= opts.leaseMs) continue;
    if (name === 'claim-break') {
      findings.push({
        kind: 'dead-break-mutex',
        severity: 'problem',
        runId: id,
        path: p,
        problem: `claim-break mutex is ${secs(a)} old: the packer breaking this run's claim died`,
        repair: 'remove it',
      });
    } else if (LEFTOVER.test(name)) {
      findings.push({
        kind: 'claim-leftover',
        severity: 'problem',
        runId: id,
        path: p,
        problem: `leftover of a process killed while releasing, breaking or writing (${secs(a)} old)`,
        repair: 'remove it',
      });
    }
  }
}

/**
 * The index as readIndex reads it, except that a corrupt line becomes a finding instead of an
 * error (readIndex's own error sends the user here, so doctor must get past it).
 */
function readIndexLeniently(setupDir: string, root: string, findings: Finding[]): IndexEntry[] {
  const { indexDir } = setupPaths(setupDir);
  let names: string[];
  try {
    names = fs
      .readdirSync(indexDir)
      .filter((n) => /^\d{6}\.jsonl$/.test(n))
      .sort();
  } catch {
    return [];
  }
  const out: IndexEntry[] = [];
  for (const name of names) {
    const file = path.join(indexDir, name);
    fs.readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line === '') return;
        let e: { id?: unknown; dir?: unknown } | null = null;
        try {
          e = JSON.parse(line) as { id?: unknown; dir?: unknown };
        } catch {
          e = null;
        }
        if (e && typeof e.id === 'number' && Number.isInteger(e.id) && e.id > 0 && typeof e.dir === 'string') {
          out.push({ id: e.id, dir: path.resolve(root, e.dir) });
          return;
        }
        findings.push({
          kind: 'corrupt-index',
          severity: 'problem',
          runId: null,
          path: `${file}:${i + 1}`,
          problem: `${file}:${i + 1}: corrupt index line ${JSON.stringify(line.slice(0, 80))}; every command that reads the index stops here. Expected {"id":N,"dir":"runs/N"}: fix the line by hand (the run directory's .themis/run.json has its id), or delete it to forget that run`,
          repair: null,
        });
      });
  }
  return out;
}

/**
 * A journal nobody can need: its packer has no live heartbeat, and the journal was not written
 * for a lease (a dead packer's launcher journals the exits of the steps it stops for a while).
 */
function journalUnused(setupDir: string, packerId: string, opts: ClaimOptions, packers = listPackers(setupDir, opts)): boolean {
  const owner = journalPacker(packerId);
  if (packers.some((p) => p.packerId === owner && p.alive)) return false;
  const a = age(setupPaths(setupDir).packerJournal(packerId), opts.now());
  return a !== null && a > opts.leaseMs;
}

/** Why journal `id` must stay (a run may still be settled from it), or null when nothing needs it. */
function journalNeeded(setupDir: string, id: string, dirs: ReadonlyMap<number, string>): string | null {
  for (const { runId, rev } of launchedFrom(setupDir, id)) {
    const dir = dirs.get(runId);
    const st = dir === undefined ? null : readRunState({ id: runId, dir }).status;
    if (st === null || isCompleted(st.status)) continue;
    if ((st.rev ?? 0) === rev || (st.launch && journalId(st.launch.packer, st.launch.node) === id)) {
      return `run ${runId} may still be settled from it (its status is at the revision a launch in it was made from, or names it)`;
    }
  }
  return null;
}

/** Check an ensemble; with `repair`, fix what is safe. */
export function runDoctor(setupDir: string, options: DoctorOptions = {}): DoctorReport {
  const ens = readEnsemble(setupDir);
  const opts: ClaimOptions = { leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) };
  const findings: Finding[] = [];
  const journals = new Set<string>();
  const sp = setupPaths(setupDir);
  const entries = readIndexLeniently(setupDir, ens.root, findings);
  // Judged before the runs are read (see summary-rebuild.ts).
  const livePackers = new Set(
    listPackers(setupDir, opts)
      .filter((p) => p.alive)
      .map((p) => p.packerId),
  );
  const rebuildPlan = planRebuild(setupDir, ens.createdAt, new Set(entries.map((e) => e.id)), livePackers);
  const seen = new Map<number, string>();
  for (const e of entries) {
    const first = seen.get(e.id);
    if (first !== undefined) {
      findings.push({
        kind: 'duplicate-id',
        severity: 'problem',
        runId: e.id,
        path: sp.indexDir,
        problem: `run id ${e.id} is listed twice in ${sp.indexDir} (${first} and ${e.dir}); only the first is used. Remove the later line by hand`,
        repair: null,
      });
      continue;
    }
    seen.set(e.id, e.dir);
    checkRun(setupDir, e.id, e.dir, opts, findings, journals);
  }
  const packers = listPackers(setupDir, opts);
  for (const p of packers) {
    if (p.alive) continue;
    findings.push({
      kind: 'dead-packer',
      severity: 'problem',
      runId: null,
      path: sp.packerFile(p.packerId),
      problem: `packer ${p.packerId} (host ${p.host}, pid ${p.pid}${p.jobId ? `, job ${p.jobId}` : ''}) is gone: last heartbeat ${secs(p.ageMs)} ago${samePidSpace(p.host, p.pidNs) ? ', and its process is dead' : ''}`,
      repair: 'remove its heartbeat file (its runs are handled by the findings above)',
    });
  }
  for (const id of listJournals(setupDir)) {
    if (journals.has(id) || !journalUnused(setupDir, id, opts, packers) || journalNeeded(setupDir, id, seen) !== null) continue;
    findings.push({
      kind: 'dead-packer',
      severity: 'problem',
      runId: null,
      path: sp.packerJournal(id),
      problem: `journal of packer ${id}, which is gone, and no \`running\` run refers to it any more`,
      repair: 'remove it',
    });
  }
  const stagingAge = options.stagingAgeMs ?? 3_600_000;
  const parent = path.dirname(sp.stagingPrefix);
  const prefix = path.basename(sp.stagingPrefix);
  let siblings: string[] = [];
  try {
    siblings = fs.readdirSync(parent).filter((n) => n.startsWith(prefix));
  } catch {
    /* parent unreadable: nothing to report here */
  }
  for (const name of siblings) {
    const p = path.join(parent, name);
    const a = age(p, Date.now()) ?? 0;
    const young = a < stagingAge;
    findings.push({
      kind: 'staging-leftover',
      severity: 'problem',
      runId: null,
      path: p,
      problem: `staging directory of an interrupted \`themis gen\`/\`add\` (${secs(a)} old); nothing in it is part of the ensemble${young ? '; it is recent, so a gen may still be writing it: run doctor again later' : ''}`,
      repair: young ? null : 'remove it (only when no gen/add holds write.lock)',
    });
  }
  const stop = readStop(setupDir);
  if (stop) {
    findings.push({
      kind: 'stopped',
      severity: 'info',
      runId: null,
      path: sp.stopFile,
      problem: `packers start no new runs: ${stop.reason} (by ${stop.by}${stop.at ? ` at ${stop.at}` : ''}). ${stop.kind === 'max-failed-runs' ? '`themis requeue --status failed` clears it' : `remove ${sp.stopFile} to clear it`}`,
      repair: null,
    });
  }
  let repaired = false;
  if (options.repair) {
    const summary = SummaryLog.oneOff(setupDir, 'doctor', ens.createdAt);
    try {
      for (const f of findings) if (f.repair !== null) applyRepair(setupDir, f, opts, stagingAge, summary, seen);
    } finally {
      summary.close(true);
    }
    repaired = true;
  }
  const runs = [...seen].map(([id, dir]) => readRunState({ id, dir }));
  const report: DoctorReport = { setupDir: sp.root, runsChecked: seen.size, findings, repaired, summary: rebuildSummary(rebuildPlan, runs) };
  return report;
}

const DOCTOR = { jobId: null, packerId: `doctor-${hostName()}-${process.pid}` };

function applyRepair(setupDir: string, f: Finding, opts: ClaimOptions, stagingAge: number, summary: SummaryLog, dirs: ReadonlyMap<number, string>): void {
  try {
    const note = repairOne(setupDir, f, opts, stagingAge, summary, dirs);
    f.outcome = note === null ? 'repaired' : 'left';
    if (note !== null) f.note = note;
  } catch (e) {
    f.outcome = 'failed';
    f.note = (e as Error).message;
  }
}

/** Returns null when repaired, else why it was left. */
function repairOne(setupDir: string, f: Finding, opts: ClaimOptions, stagingAge: number, summary: SummaryLog, dirs: ReadonlyMap<number, string>): string | null {
  switch (f.kind) {
    case 'orphan-running':
    case 'stale-claim':
    case 'missing-status':
      return repairRun(setupDir, f, opts, summary);
    case 'claim-leftover':
    case 'dead-break-mutex': {
      const a = age(f.path, opts.now());
      if (a === null) return null;
      if (a <= opts.leaseMs) return 'it changed meanwhile: someone is using it';
      const aside = `${f.path}.doctor-${process.pid}`;
      fs.renameSync(f.path, aside);
      fs.rmSync(aside, { recursive: true, force: true });
      return null;
    }
    case 'dead-packer': {
      if (f.path.endsWith('.journal')) {
        const id = path.basename(f.path, '.journal');
        if (!journalUnused(setupDir, id, opts)) return 'its packer is alive, or its launcher wrote to it meanwhile';
        // A run still at the status revision a launch in it was made from may be adopted from it
        // (its packer died before writing `running`), and a repair above may just have made a
        // status name it: both keep it.
        const needed = journalNeeded(setupDir, id, dirs);
        if (needed !== null) return needed;
        removeJournal(setupDir, id);
        return null;
      }
      const id = path.basename(f.path, '.json');
      if (listPackers(setupDir, opts).some((p) => p.packerId === id && p.alive)) return 'it sent a heartbeat meanwhile';
      removePacker(setupDir, id);
      return null;
    }
    case 'staging-leftover': {
      if (fs.existsSync(setupPaths(setupDir).writeLock)) return 'a gen/add holds write.lock right now';
      if ((age(f.path, Date.now()) ?? stagingAge) < stagingAge) return 'it changed meanwhile';
      const aside = `${f.path}.doctor-${process.pid}`;
      fs.renameSync(f.path, aside);
      fs.rmSync(aside, { recursive: true, force: true });
      return null;
    }
    default:
      return 'needs a person';
  }
}

function repairRun(setupDir: string, f: Finding, opts: ClaimOptions, summary: SummaryLog): string | null {
  const id = f.runId!;
  const dir = f.kind === 'orphan-running' ? f.path : path.dirname(path.dirname(f.path));
  if (f.kind === 'orphan-running') {
    const s = readRunState({ id, dir }).status;
    if (s?.status === 'running') {
      const rec = stepRecords(setupDir, dir, s);
      if (rec.exit === null && liveHere(rec.start)) return 'its step process is running on this host now';
    }
  }
  const got = tryClaim(dir, DOCTOR, opts);
  if (!got) return 'a live packer holds the run now';
  try {
    const state = readRunState({ id, dir });
    if (f.kind === 'missing-status') {
      if (fs.existsSync(runPaths(dir).status)) return 'a status file appeared meanwhile';
      // The lost status's revision is unknown, and the summary may hold a final entry of it: the
      // new status starts far above any revision a run reaches by counting, and says so first.
      const fresh = withHistory(newStatus(id), 'status rewritten', 'by themis doctor: status.json was missing');
      fresh.rev = Date.now();
      summary.obsolete([{ id, rev: nextRev(fresh) }]);
      writeStatus(dir, fresh);
      return null;
    }
    if (state.status === null) return `status unreadable: ${state.problem}`;
    let s: StatusRecord = state.status;
    if (got.broken) {
      // A step its packer launched before writing `running`: the status names it from now on, so
      // the packer that takes the run over settles it from the journal instead of running it again.
      const adopted = adoptLaunch(setupDir, s);
      if (adopted !== s) {
        const rec = stepRecords(setupDir, dir, adopted);
        if (rec.exit === null && liveHere(rec.start)) {
          writeStatus(dir, withHistory(adopted, 'claim broken', `by themis doctor: stale claim of ${who(got.broken)}; its step still runs`));
          return 'its step process is running on this host now (its status now says so)';
        }
      }
      s = withHistory(adopted, 'claim broken', `by themis doctor: stale claim of ${who(got.broken)}`);
    }
    if (s.status === 'running' && stepRecords(setupDir, dir, s).exit === null) {
      // A new attempt number, as the packer's own recovery does (its next launch gets a new key
      // anyway; the attempt number names the rotated logs).
      s = withHistory({ ...s, status: 'queued', reason: null, attempt: s.attempt + 1, launch: null }, 'requeued', `by themis doctor: its packer was gone; resumes at step ${s.step}`);
    }
    if (s !== state.status) writeStatus(dir, s);
    return null;
  } finally {
    releaseClaim(got.claim);
  }
}
