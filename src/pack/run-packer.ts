import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ThemisError } from '../model/errors.js';
import type { NodeInfo, SchedulerAdapter } from '../schedulers/adapter.js';
import { readSchedulerOutput } from '../schedulers/commands.js';
import { getAdapter } from '../schedulers/index.js';
import { writeJsonAtomicSync } from '../store/atomic.js';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS, dropSharedOwner } from '../store/claim.js';
import { readStop, removePacker, writePackerHeartbeat } from '../store/ensemble-state.js';
import { ENV, setupPaths } from '../store/layout.js';
import { hostName, thisProcess } from '../store/proc.js';
import { readEnsemble } from '../store/records.js';
import { completeEnsemble, prepEnsemble } from './ensemble-hooks.js';
import { endOfWork, exitCodeOf, type PackerEnd } from './exit-policy.js';
import { Hooks, type ThemisOpener } from './hooks.js';
import type { LaunchSetup, LauncherMode } from './launch-policy.js';
import { PackLoop } from './loop.js';
import { DEFAULT_PLAN_OPTIONS } from './plan.js';
import { createPool } from './pool.js';
import { readPlan } from './queue.js';
import { describeResources, discoverResources } from './resources.js';
import { resubmit, type Resubmission } from './resubmit.js';
import { describeStop, type StopCause } from './state.js';
import { STOP_SIGNALS } from './stop-signals.js';
import type { PackerConfig, PackerCounts } from './types.js';

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
  /** Install handlers for the stop signals (`STOP_SIGNALS`: SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGXCPU, SIGHUP; default true). */
  handleSignals?: boolean;
  /** Called each heartbeat and whenever a step starts or a run settles, for progress lines. */
  onProgress?: (p: PackerProgress) => void;
  /** Opens the `Themis` handle the interface's hooks get (`ctx.themis`); without it they get null. */
  openThemis?: ThemisOpener;
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
  /** The allocation's nodes as the packer used them (absent in summaries of older themis versions). */
  nodes?: NodeInfo[];
  startedAt: string;
  endedAt: string;
  /** Why the packer stopped, in words. */
  reason: string;
  exitCode: number;
  signal: string | null;
  counts: PackerCounts;
  blocked: { id: number; reason: string }[];
  ensembleComplete: boolean;
  resubmitted: Resubmission | null;
  /** Steps started through the scheduler's launcher (srun …) rather than by a node's launcher. */
  schedulerSteps: number;
  /** Launchers started on other nodes of the allocation (one job step each). */
  nodeLaunchers: number;
  /** Job steps the packer created in all, and the allocation's limit (null: none known). */
  jobSteps: { used: number; limit: number | null };
  /** Nodes it stopped placing steps on (their launcher died twice, or could not start). */
  nodesDown: string[];
}

/** The packer's clock: THEMIS_CLOCK_OFFSET_MS (ISO time or epoch ms) says what "now" is at start. */
function makeClock(env: NodeJS.ProcessEnv): () => number {
  const raw = env[ENV.clock];
  if (!raw) return () => Date.now();
  const target = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(target)) throw new ThemisError('USAGE', `${ENV.clock}=${raw}: give an ISO time or epoch milliseconds`);
  const offset = target - Date.now();
  return () => Date.now() + offset;
}

/** The most job steps this allocation may create, as the scheduler is configured (or its default). */
function jobStepLimit(adapter: SchedulerAdapter | null): number | null {
  if (!adapter?.stepLimitCommand || !adapter.parseStepLimit) return null;
  const out = readSchedulerOutput(adapter.stepLimitCommand);
  return (out !== null ? adapter.parseStepLimit(out) : null) ?? adapter.defaultStepLimit ?? null;
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
  const packerId = `${hostName()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const heartbeatMs = Math.max(50, (opts.heartbeatSeconds ?? DEFAULT_HEARTBEAT_MS / 1000) * 1000);
  // A lease of fewer than three heartbeats would let one slow heartbeat lose every claim.
  const leaseMs = Math.max(heartbeatMs * 3, (opts.leaseSeconds ?? DEFAULT_LEASE_MS / 1000) * 1000);
  const hooks = await Hooks.load(ens.interface, setupDir, `packer ${hostName()}:${process.pid}`, opts.openThemis ?? null);
  // This node: as Slurm names it (emulated nodes share one host name), else by its host name.
  const here = [env.SLURMD_NODENAME, os.hostname(), os.hostname().split('.')[0]].filter((n): n is string => !!n);
  const ownIndex = Math.max(0, here.map((h) => info.nodes.findIndex((n) => n.name === h)).find((i) => i >= 0) ?? 0);
  const adapter = info.scheduler === 'local' ? null : getAdapter(info.scheduler, { lsfFlavor: info.lsfFlavor });
  const mode = opts.launcher ?? 'auto';
  const launch: LaunchSetup = {
    mode,
    scheduler: info.scheduler,
    jobId: info.jobId,
    ownNode: ownIndex,
    bind: opts.bind ?? false,
    nodeLaunchers: mode === 'auto' && info.nodes.length > 1 && typeof adapter?.nodeLauncher === 'function',
    lsfFlavor: info.lsfFlavor,
  };
  const stepLimit = info.jobId !== null ? jobStepLimit(adapter) : null;
  let loop: PackLoop | null = null;
  const cfg: PackerConfig = {
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
  const progress = () => {
    if (loop) opts.onProgress?.({ running: loop.state.held.size, counts: loop.state.counts, pending: loop.state.scan.pending });
  };
  const packerInfo = () => ({
    packerId,
    ...thisProcess(),
    jobId: info.jobId,
    allocation,
    startedAt,
    heartbeatAt: new Date().toISOString(),
    running: loop ? [...loop.state.held.keys()] : [],
    nodesDown: loop ? [...loop.state.pool.down].map((i) => loop!.state.pool.nodes[i]!.name) : [],
  });
  log(`packer ${packerId} on ${describeResources(info)}${info.jobId ? `, job ${info.jobId}` : ''}`);

  // A stop that comes before the loop exists (prepEnsemble calling stopEnsemble()) is its first.
  let earlyStop: StopCause | null = null;
  hooks.onStop = (reason) => {
    const cause: StopCause = { kind: 'stop-flag', reason };
    if (loop) loop.stopStartingRuns(cause);
    else earlyStop ??= cause;
  };
  let firstSignal: string | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (loop) loop.signal(sig);
    else firstSignal ??= sig;
  };
  if (opts.handleSignals !== false) for (const s of STOP_SIGNALS) process.on(s, onSignal);
  const timers: NodeJS.Timeout[] = [];
  try {
    const stop = readStop(setupDir);
    if (stop) earlyStop = { kind: 'stop-flag', reason: stop.reason, hint: `remove ${setupPaths(setupDir).stopFile} or requeue to go on` };
    else await prepEnsemble(setupDir, hooks, log);
    // The end is a real moment (real start + --walltime, or the scheduler's end time), compared
    // with the packer's clock: a clock override (tests) then brings the end closer, as intended.
    const ends = [opts.walltime && opts.walltime > 0 ? Date.now() + opts.walltime * 60_000 : null, info.endsAt].filter((t): t is number => t !== null);
    const walltimeEnd = ends.length > 0 ? Math.min(...ends) : null;
    const earlyMinutes = opts.earlyStop ?? 0;
    const stopAt = walltimeEnd === null ? Infinity : walltimeEnd - earlyMinutes * 60_000 - now();
    const initialStop: StopCause | null = walltimeEnd !== null && stopAt <= 0 ? { kind: 'walltime', endsAt: walltimeEnd, earlyStopMinutes: earlyMinutes, noTimeLeft: true } : earlyStop;
    const core = {
      packerId,
      jobId: info.jobId,
      host: hostName(),
      maxRestarts: ens.maxRestarts,
      abortOn: ens.abortOn,
      maxFailedRuns: ens.maxFailedRuns,
      hasPrepRun: hooks.has('prepRun'),
      hasPostRun: hooks.has('postRun'),
      planOptions: cfg.planOptions,
      heartbeatMs,
      launch,
      stepLimit,
    };
    const l = new PackLoop(cfg, core, hooks, createPool(info.nodes), launch, initialStop, adapter);
    loop = l;
    if (walltimeEnd !== null) {
      const endAt = walltimeEnd - cfg.graceMs - 2000 - now();
      timers.push(setTimeout(() => l.stopStartingRuns({ kind: 'walltime', endsAt: walltimeEnd, earlyStopMinutes: earlyMinutes }), Math.max(0, stopAt)));
      timers.push(setTimeout(() => l.interrupt({ kind: 'walltime', endsAt: walltimeEnd, earlyStopMinutes: null }), Math.max(0, endAt)));
    }
    writePackerHeartbeat(setupDir, packerInfo());
    if (initialStop) log(`starting no runs: ${describeStop(initialStop)}`);
    if (firstSignal) l.signal(firstSignal);
    await l.start();
    const reason = await l.done;
    log(`done: ${reason}`);
    const s = l.state;
    const end: PackerEnd = { interrupted: s.interrupted, stopStarting: s.stopStarting, error: s.error, signal: s.signal, pending: s.scan.pending, blocked: s.blocked.size };
    const { ensembleComplete, timeUp } = endOfWork(end);
    if (ensembleComplete) await completeEnsemble(setupDir, hooks, ens.onCompletion, log);
    let resubmitted: Resubmission | null = null;
    if (timeUp && end.pending > 0 && (opts.repeats ?? 0) > 0 && opts.script) {
      resubmitted = resubmit(setupDir, allocation, opts.script, opts.repeats!, info.scheduler, log);
    }
    const summary: PackerSummary = {
      packerId,
      host: hostName(),
      pid: process.pid,
      jobId: info.jobId,
      allocation,
      resources: describeResources(info),
      nodes: info.nodes,
      startedAt,
      endedAt: new Date().toISOString(),
      reason,
      exitCode: exitCodeOf(end, end.pending > 0 && readStop(setupDir) !== null),
      signal: s.signal,
      counts: s.counts,
      blocked: [...s.blocked].map(([id, r]) => ({ id, reason: r })),
      ensembleComplete,
      resubmitted,
      schedulerSteps: s.steps.scheduler,
      nodeLaunchers: s.steps.nodeLaunchers,
      jobSteps: { used: s.steps.used, limit: stepLimit },
      nodesDown: [...s.pool.down].map((i) => s.pool.nodes[i]!.name),
    };
    const p = setupPaths(setupDir);
    fs.mkdirSync(p.logsDir, { recursive: true });
    writeJsonAtomicSync(path.join(p.logsDir, `packer-${packerId}.summary.json`), summary);
    return summary;
  } finally {
    for (const t of timers) clearTimeout(t);
    try {
      removePacker(setupDir, packerId);
    } catch (e) {
      // The work is done and recorded: a heartbeat file that cannot be removed only looks stale later.
      log(`${(e as Error)?.message ?? e}`);
    }
    // Its claims are released by now; any it could not release keep the inode alive and go stale.
    dropSharedOwner({ jobId: info.jobId, packerId, ownerDir: setupPaths(setupDir).packersDir });
    // Last: a second stop signal close behind the first (Flux's SIGHUP after SIGTERM) must not
    // kill the packer while it still cleans up.
    if (opts.handleSignals !== false) for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}
