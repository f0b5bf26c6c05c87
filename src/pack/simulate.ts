import { performance } from 'node:perf_hooks';
import { MinHeap } from '../model/heap.js';
import { coresHeld, gpusHeld, resourcesOf, type StepResources } from '../model/resources.js';
import type { NodeInfo } from '../schedulers/adapter.js';
import type { Claim } from '../store/claim.js';
import { FORMAT_VERSION } from '../store/layout.js';
import { newStatus, type RunRecord, type StatusRecord } from '../store/records.js';
import type { Effect, PackerEvent } from './events.js';
import type { ExitRecord } from './launcher-protocol.js';
import { DEFAULT_PLAN_OPTIONS, type PlanOptions } from './plan.js';
import { createPool, type Slot } from './pool.js';
import type { LoadedCandidate } from './queue.js';
import { windowFor } from './run-queue.js';
import { createState, type CoreConfig, type PackerState } from './state.js';
import { transition, type At } from './transitions.js';

/**
 * The packer's own core (`transition()`, the code `themis-pack` runs) driven in virtual time: no
 * files, no processes, no clock. Each simulated packer gets `decide` events with the window its
 * queue would give; claims, status writes and the failure count are answered the way a healthy
 * file system answers them; every `spawn` becomes a `step-exited` after the step's estimated
 * duration. `themis plan` sizes allocations with it; the bench measures the core with it.
 */

/** One step of a simulated run: what it holds, its time limit, and how long it is expected to take. */
export interface SimStep extends StepResources {
  /** The step's own limit in minutes (0 = none): a longer estimate is stopped there, as the launcher would. */
  timeout: number;
  /** Estimated duration, seconds. */
  seconds: number;
}

export interface SimRun {
  id: number;
  steps: readonly SimStep[];
  /** The step it is at (a run that finished some steps before); default 0. */
  step?: number;
}

/** One allocation: its nodes and (optionally) the runs planned for it, which its packer takes first. */
export interface SimAllocation {
  nodes: readonly NodeInfo[];
  plan?: readonly number[];
  /** Also take other allocations' runs (default true, as `themis-pack` without `--no-steal`). */
  steal?: boolean;
}

export interface SimOptions {
  /** Minutes every allocation lasts; null/0 = until its packer is done. */
  walltimeMinutes?: number | null;
  /** Minutes before the end when no run starts (the allocation's `--early-stop`). */
  earlyStopMinutes?: number;
  /** Seconds between SIGTERM and SIGKILL (the packer stops its steps this long plus 2 s before the end). */
  graceSeconds?: number;
  maxRestarts?: number;
  abortOn?: readonly number[];
  maxFailedRuns?: number | null;
  planOptions?: PlanOptions;
  /** Decision window (default: what `themis-pack` uses for the allocation's cores). */
  windowSize?: number;
  heartbeatMs?: number;
  /** Keep every launch (start, end, slot) in the result: off for big simulations. */
  recordLaunches?: boolean;
}

/** Per simulated packer: how it ended and what its core cost. */
export interface SimPackerStats {
  allocation: number;
  nodes: number;
  cores: number;
  gpus: number;
  /** Virtual seconds from its start to its end (capped at the walltime). */
  elapsedSeconds: number;
  reason: string;
  counts: PackerState['counts'];
  /** Steps it launched. */
  launches: number;
  /** `decide` events handed to its core, and the real milliseconds spent in those transitions. */
  decisions: number;
  decideMs: number;
  /** Every event handed to its core, and the real milliseconds spent in `transition()`. */
  events: number;
  transitionMs: number;
  decisionsPerLaunch: number;
  decideMsPerLaunch: number;
  /** Core-seconds its steps held, over cores x elapsed. */
  utilisation: number;
}

export interface SimLaunch {
  runId: number;
  step: number;
  allocation: number;
  /** Virtual seconds. */
  start: number;
  end: number;
  slot: Slot;
  outcome: 'exit' | 'timeout' | 'interrupt';
}

export interface SimResult {
  /** Virtual seconds until the last packer ended (the walltime at most). */
  makespanSeconds: number;
  runs: number;
  /** Runs with a final status (successful, failed, aborted, killed). */
  finished: number;
  successful: number;
  /** Runs left queued (never started, or put back at the walltime). */
  unfinished: number;
  /** Core-seconds held by steps, over the allocations' cores x their elapsed time. */
  utilisation: number;
  coreSeconds: number;
  /** Sum over allocations of nodes x elapsed hours. */
  nodeHours: number;
  /** Runs no allocation can fit, with why. */
  blocked: { id: number; reason: string }[];
  packers: SimPackerStats[];
  launches?: SimLaunch[];
  /** Real milliseconds the whole simulation took. */
  wallMs: number;
}

type RunPhase = 'queued' | 'held' | 'done';

interface RunSlot {
  run: SimRun;
  record: RunRecord | null;
  status: StatusRecord | null;
  phase: RunPhase;
  step: number;
}

interface Pending {
  t: number;
  seq: number;
  packer: number;
  ev: PackerEvent;
}

/** Events by virtual time, then by the order they were scheduled. */
class EventQueue {
  private readonly heap = new MinHeap<Pending>((a, b) => a.t < b.t || (a.t === b.t && a.seq < b.seq));
  private seq = 0;

  push(t: number, packer: number, ev: PackerEvent): void {
    this.heap.push({ t, seq: this.seq++, packer, ev });
  }

  pop(): Pending | undefined {
    return this.heap.pop();
  }
}

/** What one simulated packer knows beyond its core's state: its queue order and its launches. */
class SimPacker {
  readonly state: PackerState;
  /** Its queue: planned runs first, then (stealing) every other run in id order. */
  readonly order: number[];
  head = 0;
  /** Runs put back in the queue after this packer's queue head passed them. */
  readonly extra: number[] = [];
  /** Its window of candidates (they carry `passedOver` across decisions), with each one's run. */
  readonly win: { c: LoadedCandidate; r: RunSlot }[] = [];
  readonly inWindow = new Set<number>();
  /** Launched steps by key: when they end on their own, and what they hold. */
  readonly live = new Map<string, { runId: number; step: number; start: number; slot: Slot; end: number; timedOut: boolean }>();
  decisionDue = false;
  endedAt: number | null = null;
  reason = '';
  launches = 0;
  decisions = 0;
  decideMs = 0;
  events = 0;
  transitionMs = 0;
  coreMs = 0;
  lastScanAt = -Infinity;
  readonly cores: number;
  readonly gpus: number;

  constructor(
    readonly index: number,
    readonly alloc: SimAllocation,
    cfg: CoreConfig,
    allIds: readonly number[],
    readonly windowSize: number,
  ) {
    this.state = createState(cfg, createPool(alloc.nodes));
    const plan = alloc.plan ?? [];
    const planned = new Set(plan);
    this.order = alloc.steal === false ? [...plan] : [...plan, ...allIds.filter((id) => !planned.has(id))];
    this.cores = alloc.nodes.reduce((n, x) => n + x.cores, 0);
    this.gpus = alloc.nodes.reduce((n, x) => n + x.gpus.length, 0);
  }
}

/**
 * Simulate packers on `allocations` (all starting at virtual time 0, sharing one queue) running
 * `runs` with their estimated durations. Every step exits 0 unless it runs over its own timeout.
 * Cost: a few transitions per launch, each O(window + nodes); nothing per event grows with the
 * number of runs.
 * @example simulate([{ id: 1, steps: [{ tasks: 1, coresPerTask: 4, gpusPerTask: 0, timeout: 0, seconds: 60 }] }], [{ nodes: [{ name: 'n0', cores: 16, gpus: [] }] }])
 */
export function simulate(runs: readonly SimRun[], allocations: readonly SimAllocation[], opts: SimOptions = {}): SimResult {
  const t0 = performance.now();
  const byId = new Map<number, RunSlot>();
  for (const r of runs) byId.set(r.id, { run: r, record: null, status: null, phase: 'queued', step: r.step ?? 0 });
  const allIds = runs.map((r) => r.id).sort((a, b) => a - b);
  const walltimeMs = opts.walltimeMinutes && opts.walltimeMinutes > 0 ? opts.walltimeMinutes * 60_000 : null;
  const graceMs = (opts.graceSeconds ?? 10) * 1000;
  const heartbeatMs = opts.heartbeatMs ?? 10_000;
  const planOptions = opts.planOptions ?? DEFAULT_PLAN_OPTIONS;
  const packers = allocations.map((alloc, i) => {
    const cfg: CoreConfig = {
      packerId: `sim-${i + 1}`,
      jobId: `sim-${i + 1}`,
      host: alloc.nodes[0]?.name ?? 'sim',
      maxRestarts: opts.maxRestarts ?? 0,
      abortOn: opts.abortOn ?? [],
      maxFailedRuns: opts.maxFailedRuns ?? null,
      hasPrepRun: false,
      hasPostRun: false,
      planOptions,
      heartbeatMs,
      // One launcher and no step limit: routes and job steps do not change when a step ends.
      launch: { mode: 'auto', scheduler: 'local', jobId: `sim-${i + 1}`, ownNode: 0, bind: false, nodeLaunchers: false },
      stepLimit: null,
    };
    const cores = alloc.nodes.reduce((n, x) => n + x.cores, 0);
    return new SimPacker(i, alloc, cfg, allIds, opts.windowSize ?? windowFor(cores));
  });
  const q = new EventQueue();
  const launches: SimLaunch[] | undefined = opts.recordLaunches ? [] : undefined;
  const blocked = new Map<number, string>();
  let pendingRuns = runs.length;
  let now = 0;
  let claimId = 0;

  const at = (): At => {
    const t = now;
    let iso: string | null = null;
    return {
      now: t,
      get iso() {
        iso ??= new Date(t).toISOString();
        return iso;
      },
    };
  };

  /**
   * The packer's window: its queue's first `windowSize` runs still queued, as candidates. The
   * window is kept between decisions (what was taken drops out, the queue tops it up), so a
   * decision costs the harness O(window), as the real queue's `window()` does.
   */
  const window = (p: SimPacker): LoadedCandidate[] => {
    const s = p.state;
    if (s.stopStarting || s.interrupted) return [];
    const win = p.win;
    let n = 0;
    for (let i = 0; i < win.length; i++) {
      const w = win[i]!;
      if (w.c.gone || w.r.phase !== 'queued' || w.r.step !== w.c.step || s.blocked.has(w.c.id)) {
        p.inWindow.delete(w.c.id);
        continue;
      }
      win[n++] = w;
    }
    win.length = n;
    const add = (id: number): void => {
      if (p.inWindow.has(id)) return;
      const r = byId.get(id)!;
      if (r.phase !== 'queued' || s.blocked.has(id) || s.held.has(id)) return;
      const step = r.run.steps[Math.min(r.step, r.run.steps.length - 1)]!;
      win.push({ c: { id, runId: id, dir: `sim/${id}`, step: r.step, orphan: false, since: now, passedOver: 0, need: resourcesOf(step) }, r });
      p.inWindow.add(id);
    };
    // Runs put back after the queue's head passed them come first (a real packer's rescan finds them).
    while (p.extra.length > 0 && win.length < p.windowSize) add(p.extra.shift()!);
    const o = p.order;
    while (p.head < o.length && win.length < p.windowSize) add(o[p.head++]!);
    return win.map((w) => w.c);
  };

  const decideEvent = (p: SimPacker): PackerEvent => ({ type: 'decide', candidates: window(p), windowSize: p.windowSize });

  const handle = (p: SimPacker, ev: PackerEvent): void => {
    const a = performance.now();
    const effects = transition(p.state, ev, at());
    const ms = performance.now() - a;
    p.events++;
    p.transitionMs += ms;
    if (ev.type === 'decide') {
      p.decisions++;
      p.decideMs += ms;
    }
    for (const e of effects) answer(p, e);
  };

  const answer = (p: SimPacker, e: Effect): void => {
    switch (e.type) {
      case 'claim': {
        const c = e.candidate;
        const r = byId.get(c.id)!;
        r.phase = 'held';
        r.record ??= recordOf(r.run);
        const status = r.status ?? queuedStatus(c.id, r.step);
        const claim = { runDir: c.dir, owner: { packerId: p.state.cfg.packerId }, id: { dev: 0, ino: ++claimId }, shared: null } as unknown as Claim;
        handle(p, { type: 'claimed', candidate: c, record: r.record, slot: e.slot, claim, broken: null, status, statusError: null, dequeueRequested: false });
        return;
      }
      case 'write-status': {
        const r = byId.get(e.runId)!;
        r.status = e.status;
        const st = e.status.status;
        if (st === 'queued') {
          // Put back (the allocation ends, or a later step cannot fit here): another packer may take it.
          r.phase = 'queued';
          r.step = e.status.step;
          for (const o of packers) if (o !== p) o.extra.push(e.runId);
        } else if (st !== 'running') {
          r.phase = 'done';
          r.record = null;
          pendingRuns--;
        }
        handle(p, { type: 'status-written', runId: e.runId, ok: true });
        return;
      }
      case 'spawn': {
        const r = byId.get(e.runId)!;
        const step = r.run.steps[e.stepIndex]!;
        let ms = Math.max(0, step.seconds * 1000);
        const limit = step.timeout > 0 ? step.timeout * 60_000 : Infinity;
        const timedOut = ms > limit;
        if (timedOut) ms = limit;
        p.live.set(e.key, { runId: e.runId, step: e.stepIndex, start: now, slot: e.slot, end: now + ms, timedOut });
        p.launches++;
        q.push(now + ms, p.index, { type: 'step-exited', key: e.key, exit: exitOf(e.runId, e.stepIndex, e.attempt, timedOut ? 'timeout' : null) });
        return;
      }
      case 'kill': {
        const l = p.live.get(e.key);
        if (!l) return;
        l.end = now;
        l.timedOut = false;
        const exit = exitOf(l.runId, l.step, 0, e.reason);
        // The step dies of the stop right away (its real grace is inside the packer's 2 s + grace margin).
        q.push(now, p.index, { type: 'step-exited', key: e.key, exit: { ...exit, code: null, signal: 'SIGTERM' } });
        return;
      }
      case 'mark-failed':
        if (e.count) {
          const failed = packers.reduce((n, o) => n + o.state.counts.failed, 0);
          handle(p, { type: 'failures-counted', failed });
        }
        return;
      case 'set-stop-flag':
        // Other packers read the flag at their next heartbeat.
        for (const o of packers) if (o !== p) q.push(now + heartbeatMs, o.index, { type: 'stop-starting', cause: { kind: 'stop-flag', reason: e.reason } });
        return;
      case 'note-blocked':
        return;
      case 'rescan':
        p.lastScanAt = now;
        q.push(now, p.index, { type: 'scanned', pending: pendingRuns, suspects: 0 });
        return;
      case 'rescan-later':
        q.push(now + e.ms, p.index, { type: 'rescan-due', recheck: true });
        return;
      case 'write-running-later':
        q.push(now + e.ms, p.index, { type: 'running-write-due', key: e.key });
        break;
      case 'wait-job-stop':
        q.push(now + e.ms, p.index, { type: 'job-stop-window-closed', key: e.key });
        return;
      case 'look-for-work':
        if (e.windowWasFull && window(p).length > 0) return;
        if (!p.state.scan.running && now - p.lastScanAt >= Math.min(heartbeatMs, 2000)) q.push(now, p.index, { type: 'rescan-due' });
        return;
      case 'decide-now':
        handle(p, decideEvent(p));
        return;
      case 'decide-soon':
        if (!p.decisionDue) {
          p.decisionDue = true;
          q.push(now, p.index, { type: 'decide', candidates: [], windowSize: 0 });
        }
        return;
      case 'finish':
        p.endedAt = now;
        p.reason = e.reason;
        return;
      default:
        // log, changed, release-claim, clear-dequeue, append-log, kill-group, run-hook (no hooks
        // here), settle-orphan (no orphans: every claimed status is queued).
        return;
    }
  };

  for (const p of packers) {
    q.push(0, p.index, { type: 'rescan-due' });
    if (walltimeMs !== null) {
      const stopAt = Math.max(0, walltimeMs - (opts.earlyStopMinutes ?? 0) * 60_000);
      const endAt = Math.max(0, walltimeMs - graceMs - 2000);
      q.push(stopAt, p.index, { type: 'stop-starting', cause: { kind: 'walltime', endsAt: walltimeMs, earlyStopMinutes: opts.earlyStopMinutes ?? 0 } });
      q.push(endAt, p.index, { type: 'interrupt', cause: { kind: 'walltime', endsAt: walltimeMs, earlyStopMinutes: null } });
    }
  }

  for (let ev = q.pop(); ev; ev = q.pop()) {
    const p = packers[ev.packer]!;
    if (p.state.finished !== null) continue;
    now = ev.t;
    let event = ev.ev;
    if (event.type === 'decide' && event.windowSize === 0) {
      // A coalesced decision: the window is read when it runs, as `setImmediate` would.
      p.decisionDue = false;
      event = decideEvent(p);
    } else if (event.type === 'step-exited') {
      const l = p.live.get(event.key);
      // A step stopped early already exited; its natural end is void.
      if (!l || (event.exit.stoppedBy === null && l.end !== now) || (event.exit.stoppedBy === 'timeout' && !l.timedOut)) continue;
      p.live.delete(event.key);
      const r = byId.get(l.runId)!;
      const step = r.run.steps[l.step]!;
      p.coreMs += (now - l.start) * coresHeld(step);
      launches?.push({
        runId: l.runId,
        step: l.step,
        allocation: p.index + 1,
        start: l.start / 1000,
        end: now / 1000,
        slot: l.slot,
        outcome: event.exit.stoppedBy === 'interrupt' ? 'interrupt' : l.timedOut ? 'timeout' : 'exit',
      });
      event = { ...event, exit: { ...event.exit, startedAt: new Date(l.start).toISOString(), endedAt: new Date(now).toISOString() } };
    }
    handle(p, event);
  }

  let coreMs = 0;
  let capacityMs = 0;
  let nodeMs = 0;
  let makespan = 0;
  const stats: SimPackerStats[] = packers.map((p) => {
    for (const [id, why] of p.state.blocked) blocked.set(id, why);
    const end = p.endedAt ?? now;
    const elapsed = walltimeMs === null ? end : Math.min(end, walltimeMs);
    makespan = Math.max(makespan, elapsed);
    coreMs += p.coreMs;
    capacityMs += p.cores * elapsed;
    nodeMs += p.alloc.nodes.length * elapsed;
    return {
      allocation: p.index + 1,
      nodes: p.alloc.nodes.length,
      cores: p.cores,
      gpus: p.gpus,
      elapsedSeconds: elapsed / 1000,
      reason: p.reason,
      counts: { ...p.state.counts },
      launches: p.launches,
      decisions: p.decisions,
      decideMs: round3(p.decideMs),
      events: p.events,
      transitionMs: round3(p.transitionMs),
      decisionsPerLaunch: p.launches ? round3(p.decisions / p.launches) : 0,
      decideMsPerLaunch: p.launches ? round6(p.decideMs / p.launches) : 0,
      utilisation: p.cores * elapsed > 0 ? round3(p.coreMs / (p.cores * elapsed)) : 0,
    };
  });
  let finished = 0;
  let successful = 0;
  for (const r of byId.values()) {
    if (r.phase !== 'done') continue;
    finished++;
    if (r.status?.status === 'successful') successful++;
  }
  return {
    makespanSeconds: makespan / 1000,
    runs: runs.length,
    finished,
    successful,
    unfinished: runs.length - finished,
    utilisation: capacityMs > 0 ? round3(coreMs / capacityMs) : 0,
    coreSeconds: coreMs / 1000,
    nodeHours: nodeMs / 3_600_000,
    blocked: [...blocked].map(([id, reason]) => ({ id, reason })),
    packers: stats,
    ...(launches && { launches }),
    wallMs: round3(performance.now() - t0),
  };
}

function recordOf(run: SimRun): RunRecord {
  return {
    format: FORMAT_VERSION,
    id: run.id,
    sample: {},
    sampleKeys: [],
    steps: run.steps.map((s) => ({ args: ['sim'], tasks: s.tasks, coresPerTask: s.coresPerTask, gpusPerTask: s.gpusPerTask, timeout: s.timeout, batchScript: false, cwd: '.' })),
  };
}

function queuedStatus(id: number, step: number): StatusRecord {
  return { ...newStatus(id), step, history: [] };
}

function exitOf(runId: number, step: number, attempt: number, stoppedBy: ExitRecord['stoppedBy']): ExitRecord {
  return { format: 1, runId, step, attempt, code: stoppedBy === null ? 0 : null, signal: stoppedBy === null ? null : 'SIGTERM', stoppedBy, startedAt: '', endedAt: '', host: 'sim', pid: 0 };
}

/** Cores and GPUs a run's biggest step holds (for sizing allocations). */
export function simPeak(run: SimRun): { cores: number; gpus: number } {
  let cores = 0;
  let gpus = 0;
  for (const s of run.steps) {
    cores = Math.max(cores, coresHeld(s));
    gpus = Math.max(gpus, gpusHeld(s));
  }
  return { cores, gpus };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
