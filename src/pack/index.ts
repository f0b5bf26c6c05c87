import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThemisError } from '../model/errors.js';
import { submitScriptSync } from '../schedulers/commands.js';
import { readJsonSync, writeJsonAtomicSync } from '../store/atomic.js';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS, dropSharedOwner } from '../store/claim.js';
import { readGeneration, readStop, removePacker, takeOnce, writePackerHeartbeat } from '../store/ensemble-state.js';
import { ENV, setupPaths } from '../store/layout.js';
import { hostName, thisProcess } from '../store/proc.js';
import { readEnsemble } from '../store/records.js';
import { recordJobs } from '../store/jobs.js';
import type { SchedulerName } from '../store/records.js';
import { Hooks, runOnCompletion } from './hooks.js';
import type { LauncherMode } from './launch-policy.js';
import { PackLoop } from './loop.js';
import { DEFAULT_PLAN_OPTIONS } from './plan.js';
import { createPool } from './pool.js';
import { readPlan } from './queue.js';
import { describeResources, discoverResources } from './resources.js';
import type { PackerCounts } from './types.js';

export { LAUNCHER_MODES, type LauncherMode } from './launch-policy.js';

export interface PackerOptions {
  setupDir: string;
  /** This allocation's number (its plan's runs go first); null outside `gen`'s batch scripts. */
  allocation?: number | null;
  nodes?: string | number;
  cores?: number;
  gpus?: number;
  leaseSeconds?: number;
  heartbeatSeconds?: number;
  /** Cap on steps running at once. */
  maxConcurrency?: number;
  launcher?: LauncherMode;
  /** Minutes the allocation lasts from now (overrides what the scheduler says). */
  walltime?: number;
  /** Minutes before the end when no new run starts. */
  earlyStop?: number;
  /** Resubmit `script` up to this many times while queued runs remain at the end. */
  repeats?: number;
  script?: string | null;
  /** Take other allocations' planned runs too (default true; `--no-steal` = false). */
  steal?: boolean;
  /** Bind direct steps to their cores with taskset. */
  bind?: boolean;
  graceSeconds?: number;
  rescanSeconds?: number;
  env?: NodeJS.ProcessEnv;
  /** Where log lines go (default: stderr). */
  log?: (line: string) => void;
  /** Install SIGTERM/SIGINT/SIGUSR1 handlers (default true). */
  handleSignals?: boolean;
  /** Called each heartbeat and whenever a step starts or a run settles, for progress lines. */
  onProgress?: (p: PackerProgress) => void;
}

export interface PackerProgress {
  running: number;
  counts: PackerCounts;
  /** Runs queued or running in the whole ensemble at the packer's last scan (-1 before the first). */
  pending: number;
}

export interface PackerSummary {
  packerId: string;
  host: string;
  pid: number;
  jobId: string | null;
  allocation: number | null;
  resources: string;
  startedAt: string;
  endedAt: string;
  /** Why the packer stopped, in words. */
  reason: string;
  exitCode: number;
  signal: string | null;
  counts: PackerCounts;
  blocked: { id: number; reason: string }[];
  ensembleComplete: boolean;
  resubmitted: { jobId: string | null; at: string; repeat: number } | null;
  /** Steps started through the scheduler's launcher (srun …) rather than directly. */
  schedulerSteps: number;
}

/** Exit codes of `themis-pack` (documented in the README). */
export const PACK_EXIT = { ok: 0, error: 1, usage: 2, blocked: 3, stopped: 4 } as const;

/** The packer's clock: THEMIS_CLOCK_OFFSET_MS (ISO time or epoch ms) says what "now" is at start. */
function makeClock(env: NodeJS.ProcessEnv): () => number {
  const raw = env[ENV.clock];
  if (!raw) return () => Date.now();
  const target = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(target)) throw new ThemisError('USAGE', `${ENV.clock}=${raw}: give an ISO time or epoch milliseconds`);
  const offset = target - Date.now();
  return () => Date.now() + offset;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** prepEnsemble once per ensemble: the first packer runs it, the others wait until it is done. */
async function prepEnsemble(setupDir: string, hooks: Hooks, log: (l: string) => void): Promise<void> {
  if (!hooks.has('prepEnsemble')) return;
  const p = setupPaths(setupDir);
  if (fs.existsSync(p.prepEnsembleDone)) return;
  if (takeOnce(p.prepEnsembleLock)) {
    try {
      await hooks.call('prepEnsemble', null);
    } catch (e) {
      fs.rmSync(p.prepEnsembleLock, { recursive: true, force: true });
      throw new ThemisError('INPUT', `prepEnsemble failed: ${(e as Error)?.message ?? e}; fix the interface and start the packer again`, { cause: e });
    }
    takeOnce(p.prepEnsembleDone);
    return;
  }
  log('waiting for another packer to finish prepEnsemble');
  while (!fs.existsSync(p.prepEnsembleDone)) {
    if (!fs.existsSync(p.prepEnsembleLock)) return prepEnsemble(setupDir, hooks, log);
    await sleep(250);
  }
}

/** Resubmit the batch script when the allocation ended with work left (`--repeats`). */
function resubmit(setupDir: string, allocation: number | null, script: string, repeats: number, scheduler: string, log: (l: string) => void): PackerSummary['resubmitted'] {
  const file = path.join(setupPaths(setupDir).stateDir, `repeats-${allocation ?? 0}.json`);
  const rec = readJsonSync<{ used: number; submissions: { at: string; jobId: string | null }[] }>(file) ?? { used: 0, submissions: [] };
  if (rec.used >= repeats) {
    log(`queued runs remain but all ${repeats} repeats are used; not resubmitting`);
    return null;
  }
  let jobId: string | null;
  try {
    // Local: the script starts in the background (its pid is the job id), with no output kept.
    jobId = submitScriptSync(scheduler as SchedulerName, script, {
      cwd: path.dirname(script),
      what: 'the resubmission',
      fix: 'the runs left stay queued: fix what it names, then submit again (`themis submit`)',
    }).jobId;
  } catch (e) {
    if (!(e instanceof ThemisError)) throw e;
    log(`resubmitting ${script} failed: ${e.message}`);
    return null;
  }
  return record(jobId);

  function record(jobId: string | null): PackerSummary['resubmitted'] {
    const at = new Date().toISOString();
    rec.used++;
    rec.submissions.push({ at, jobId });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeJsonAtomicSync(file, rec);
    // Also in jobs.json, so `themis status` shows the resubmitted allocation beside the others.
    if (jobId) recordJobs(setupDir, [{ allocation: allocation ?? 0, jobId, scheduler: scheduler as SchedulerName, submittedAt: at, script, by: 'repeat' }]);
    log(`resubmitted ${script} (repeat ${rec.used} of ${repeats})${jobId ? `: job ${jobId}` : ''}`);
    return { jobId, at, repeat: rec.used };
  }
}

/**
 * Run a packer in this process until nothing is left that it can run, it is signalled, or its
 * allocation ends. See the README's "themis-pack" section for the policy.
 */
export async function runPacker(opts: PackerOptions): Promise<PackerSummary> {
  const setupDir = path.resolve(opts.setupDir);
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((l: string) => void process.stderr.write(`themis-pack: ${l}\n`));
  const ens = readEnsemble(setupDir);
  const info = discoverResources(env, { nodes: opts.nodes, cores: opts.cores, gpus: opts.gpus }, ens.scheduler);
  const now = makeClock(env);
  const startedAt = new Date().toISOString();
  const allocation = opts.allocation ?? null;
  const heartbeatMs = Math.max(50, (opts.heartbeatSeconds ?? DEFAULT_HEARTBEAT_MS / 1000) * 1000);
  // A lease of fewer than three heartbeats would let one slow heartbeat lose every claim.
  const leaseMs = Math.max(heartbeatMs * 3, (opts.leaseSeconds ?? DEFAULT_LEASE_MS / 1000) * 1000);
  const hooks = await Hooks.load(ens.interface, setupDir, `packer ${hostName()}:${process.pid}`);
  const ownIndex = Math.max(0, info.nodes.findIndex((n) => n.name === os.hostname() || n.name === os.hostname().split('.')[0]));
  const launch = { mode: opts.launcher ?? 'auto', scheduler: info.scheduler, jobId: info.jobId, ownNode: ownIndex, bind: opts.bind ?? false, schedulerSteps: 0 };
  let loop!: PackLoop;
  const cfg = {
    setupDir,
    plan: readPlan(setupDir, allocation),
    steal: opts.steal ?? true,
    jobId: info.jobId,
    leaseMs,
    heartbeatMs,
    rescanMs: Math.max(heartbeatMs, (opts.rescanSeconds ?? 30) * 1000),
    graceMs: (opts.graceSeconds ?? 10) * 1000,
    planOptions: { ...DEFAULT_PLAN_OPTIONS, maxConcurrency: opts.maxConcurrency && opts.maxConcurrency > 0 ? opts.maxConcurrency : Infinity },
    now,
    log,
    onHeartbeat: () => {
      writePackerHeartbeat(setupDir, packerInfo());
      progress();
    },
    onChange: () => progress(),
  };
  const progress = () => opts.onProgress?.({ running: loop.activeCount, counts: loop.counts, pending: loop.pendingAtLastScan });
  loop = new PackLoop(cfg, ens, hooks, createPool(info.nodes), launch);
  hooks.onStop = (reason) => loop.stopStartingRuns(`ensemble stopped: ${reason}`);
  const packerInfo = () => ({
    packerId: loop.packerId,
    ...thisProcess(),
    jobId: info.jobId,
    allocation,
    startedAt,
    heartbeatAt: new Date().toISOString(),
    running: loop.runningIds,
  });
  log(`packer ${loop.packerId} on ${describeResources(info)}${info.jobId ? `, job ${info.jobId}` : ''}`);

  let signal: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    signal ??= sig;
    log(`received ${sig}: stopping every step and putting their runs back in the queue`);
    loop.interrupt(`received ${sig}`);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGUSR1'];
  if (opts.handleSignals !== false) for (const s of signals) process.on(s, onSignal);
  const timers: NodeJS.Timeout[] = [];
  try {
    const stop = readStop(setupDir);
    if (stop) loop.stopStarting = `ensemble stopped: ${stop.reason} (remove ${setupPaths(setupDir).stopFile} or requeue to go on)`;
    else await prepEnsemble(setupDir, hooks, log);
    // The end is a real moment (real start + --walltime, or the scheduler's end time), compared
    // with the packer's clock: a clock override (tests) then brings the end closer, as intended.
    const ends = [opts.walltime && opts.walltime > 0 ? Date.now() + opts.walltime * 60_000 : null, info.endsAt].filter((t): t is number => t !== null);
    const walltimeEnd = ends.length > 0 ? Math.min(...ends) : null;
    if (walltimeEnd !== null) {
      const earlyMs = (opts.earlyStop ?? 0) * 60_000;
      const stopAt = walltimeEnd - earlyMs - now();
      const endAt = walltimeEnd - cfg.graceMs - 2000 - now();
      const why = `allocation ends at ${new Date(walltimeEnd).toISOString()}`;
      timers.push(setTimeout(() => loop.stopStartingRuns(`${why} (early stop ${opts.earlyStop ?? 0} min)`), Math.max(0, stopAt)));
      timers.push(setTimeout(() => loop.interrupt(why), Math.max(0, endAt)));
      if (stopAt <= 0) loop.stopStarting = `${why} (early stop ${opts.earlyStop ?? 0} min): no time to start runs`;
    }
    writePackerHeartbeat(setupDir, packerInfo());
    if (loop.stopStarting) log(`starting no runs: ${loop.stopStarting}`);
    await loop.start();
    const reason = await loop.done;
    log(`done: ${reason}`);
    const pending = loop.pendingAtLastScan;
    const ensembleComplete = !loop.interrupted && !loop.stopStarting && pending === 0;
    if (ensembleComplete) await completeEnsemble(setupDir, hooks, ens.onCompletion, log);
    let resubmitted: PackerSummary['resubmitted'] = null;
    const timeUp = (loop.interrupted ?? loop.stopStarting ?? '').startsWith('allocation ends') || signal !== null;
    if (timeUp && pending > 0 && (opts.repeats ?? 0) > 0 && opts.script) {
      resubmitted = resubmit(setupDir, allocation, opts.script, opts.repeats!, info.scheduler, log);
    }
    const blocked = [...loop.blocked].map(([id, r]) => ({ id, reason: r }));
    let exitCode: number = PACK_EXIT.ok;
    if (loop.error) exitCode = PACK_EXIT.error;
    else if (signal) exitCode = 128 + (os.constants.signals[signal as NodeJS.Signals] ?? 15);
    else if (pending > 0 && readStop(setupDir) !== null) exitCode = PACK_EXIT.stopped;
    else if (blocked.length > 0) exitCode = PACK_EXIT.blocked;
    const summary: PackerSummary = {
      packerId: loop.packerId,
      host: hostName(),
      pid: process.pid,
      jobId: info.jobId,
      allocation,
      resources: describeResources(info),
      startedAt,
      endedAt: new Date().toISOString(),
      reason,
      exitCode,
      signal,
      counts: loop.counts,
      blocked,
      ensembleComplete,
      resubmitted,
      schedulerSteps: launch.schedulerSteps,
    };
    const p = setupPaths(setupDir);
    fs.mkdirSync(p.logsDir, { recursive: true });
    writeJsonAtomicSync(path.join(p.logsDir, `packer-${loop.packerId}.summary.json`), summary);
    return summary;
  } finally {
    for (const t of timers) clearTimeout(t);
    if (opts.handleSignals !== false) for (const s of signals) process.off(s, onSignal);
    try {
      removePacker(setupDir, loop.packerId);
    } catch (e) {
      // The work is done and recorded: a heartbeat file that cannot be removed only looks stale later.
      log(`${(e as Error)?.message ?? e}`);
    }
    // Its claims are released by now; any it could not release keep the inode alive and go stale.
    dropSharedOwner(loop.who);
  }
}

/** postEnsemble, then on_completion, once per generation by whoever sees the ensemble complete. */
async function completeEnsemble(setupDir: string, hooks: Hooks, onCompletion: ReturnType<typeof readEnsemble>['onCompletion'], log: (l: string) => void): Promise<void> {
  const p = setupPaths(setupDir);
  if (!hooks.has('postEnsemble') && !onCompletion) return;
  if (!takeOnce(p.postEnsembleMark(String(readGeneration(setupDir))))) return;
  try {
    await hooks.call('postEnsemble', null);
  } catch (e) {
    log(`postEnsemble failed: ${(e as Error)?.stack ?? e}`);
  }
  if (onCompletion) {
    const code = await runOnCompletion(onCompletion, path.join(p.logsDir, 'on-completion.log'));
    log(`on_completion ${onCompletion.args.join(' ')} exited ${code}`);
  }
}

/** The command line that runs a packer with these options (what batch scripts and `themis run` start). */
export function packerArgs(opts: PackerOptions): string[] {
  const a = ['--setup-dir', path.resolve(opts.setupDir)];
  const num = (flag: string, v: number | undefined | null) => {
    if (v !== undefined && v !== null) a.push(flag, String(v));
  };
  num('--allocation', opts.allocation);
  if (opts.nodes !== undefined) a.push('--nodes', String(opts.nodes));
  num('--cores', opts.cores);
  num('--gpus', opts.gpus);
  num('--lease', opts.leaseSeconds);
  num('--heartbeat', opts.heartbeatSeconds);
  num('--max-concurrency', opts.maxConcurrency);
  if (opts.launcher) a.push('--launcher', opts.launcher);
  num('--walltime', opts.walltime);
  num('--early-stop', opts.earlyStop);
  num('--repeats', opts.repeats);
  if (opts.script) a.push('--script', opts.script);
  if (opts.steal === false) a.push('--no-steal');
  if (opts.bind) a.push('--bind');
  num('--grace', opts.graceSeconds);
  num('--rescan', opts.rescanSeconds);
  return a;
}

/** dist/bin/themis-pack.js next to this module. */
export function packBinary(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const built = path.resolve(here, '../bin/themis-pack.js');
  return fs.existsSync(built) ? built : path.resolve(here, '../../dist/bin/themis-pack.js');
}

/** Start a packer as a child process; its output goes to `logs/packer-<stamp>.log`. */
export function spawnPacker(opts: PackerOptions, how: { detach: boolean }): { pid: number; logFile: string; done: Promise<number> } {
  const p = setupPaths(opts.setupDir);
  fs.mkdirSync(p.logsDir, { recursive: true });
  const logFile = p.packerLog(`${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [packBinary(), ...packerArgs(opts)], {
    stdio: ['ignore', fd, fd],
    // Detached: its own session, so the terminal's Ctrl-C and hang-up do not reach it.
    detached: how.detach,
    env: opts.env ?? process.env,
  });
  fs.closeSync(fd);
  const done = new Promise<number>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0)));
    child.once('error', () => resolve(PACK_EXIT.error));
  });
  if (how.detach) child.unref();
  return { pid: child.pid ?? 0, logFile, done };
}
