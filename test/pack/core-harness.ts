import type { StepSpec } from '../../src/model/step.js';
import type { Effect, PackerEvent } from '../../src/pack/events.js';
import type { ExitRecord } from '../../src/pack/launcher-protocol.js';
import { DEFAULT_PLAN_OPTIONS } from '../../src/pack/plan.js';
import { checkPoolInvariant, createPool } from '../../src/pack/pool.js';
import type { LoadedCandidate } from '../../src/pack/queue.js';
import { createState, heldSlots, type CoreConfig, type PackerState, type StopCause } from '../../src/pack/state.js';
import { transition } from '../../src/pack/transitions.js';
import type { Claim } from '../../src/store/claim.js';
import { FORMAT_VERSION } from '../../src/store/layout.js';
import { newStatus, type RunRecord, type StatusRecord } from '../../src/store/records.js';

export type Step = Partial<StepSpec>;

/**
 * Drives the packer's core in process, the way HyperQueue's TestComm drives its scheduler: events
 * in, effects recorded. It answers the effects a real shell answers at once (a claim, a status
 * write, the failure count) the way a healthy file system would, unless a test says otherwise, and
 * leaves the rest (hooks, orphan recovery, the launcher's messages, timers) to the test.
 */
export class CoreHarness {
  readonly state: PackerState;
  /** Every effect, in the order the shell would carry them out. */
  readonly effects: Effect[] = [];
  now = 1_000_000;
  /** The queue the shell would scan: candidates in start order. */
  readonly queue: LoadedCandidate[] = [];
  readonly windowSize = 32;
  /** What the run's status reads under a fresh claim (default: queued at step 0). */
  readonly diskStatus = new Map<number, StatusRecord>();
  /** Answer the next status writes of these runs with a failure. */
  readonly failWrites = new Map<number, 'claim-lost' | 'io'>();
  readonly contested = new Set<number>();
  readonly dequeueOnClaim = new Set<number>();
  failedInEnsemble = 0;
  private decisionDue = false;

  constructor(opts: { nodes?: number; cores?: number; gpus?: number; core?: Partial<CoreConfig>; initialStop?: StopCause | null } = {}) {
    const nodes = Array.from({ length: opts.nodes ?? 1 }, (_, i) => ({ name: `n${i}`, cores: opts.cores ?? 2, gpus: Array.from({ length: opts.gpus ?? 0 }, (_, g) => String(g)) }));
    const core: CoreConfig = {
      packerId: 'p1',
      jobId: 'j1',
      host: 'h',
      maxRestarts: 0,
      abortOn: [],
      maxFailedRuns: null,
      hasPrepRun: false,
      hasPostRun: false,
      planOptions: DEFAULT_PLAN_OPTIONS,
      heartbeatMs: 1000,
      launch: { mode: 'auto', scheduler: 'local', jobId: 'j1', ownNode: 0, bind: false, nodeLaunchers: false },
      stepLimit: null,
      ...opts.core,
    };
    this.state = createState(core, createPool(nodes), opts.initialStop ?? null);
  }

  /** Queue a run whose steps are given (each step one task, one core, no GPU unless said). */
  addRun(id: number, steps: Step[] = [{}]): LoadedCandidate {
    const spec: StepSpec[] = steps.map((s) => ({ args: ['/bin/app'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: false, cwd: '.', ...s }));
    const record: RunRecord = { format: FORMAT_VERSION, id, sample: {}, sampleKeys: [], steps: spec };
    const first = spec[0]!;
    const c: LoadedCandidate = {
      id,
      runId: id,
      dir: `/e/runs/${id}`,
      step: 0,
      orphan: false,
      since: this.now,
      passedOver: 0,
      record,
      need: { tasks: first.tasks, coresPerTask: first.coresPerTask, gpusPerTask: first.gpusPerTask },
    };
    this.queue.push(c);
    return c;
  }

  /** Hand the core an event, answer what the shell answers at once, and return the effects it caused. */
  send(ev: PackerEvent): Effect[] {
    const from = this.effects.length;
    this.handle(ev);
    // A decision the core asked for "soon" comes after everything in hand is done, as setImmediate does.
    for (let i = 0; this.decisionDue && i < 100; i++) {
      this.decisionDue = false;
      this.handle(this.decideEvent());
    }
    return this.effects.slice(from);
  }

  decide(): Effect[] {
    return this.send(this.decideEvent());
  }

  /** The launcher says the step of `runId` started, then (optionally) that it exited. */
  started(runId: number, pid = 100 + runId): Effect[] {
    return this.send({ type: 'step-started', key: this.keyOf(runId), pid });
  }

  exited(runId: number, code: number | null, more: Partial<ExitRecord> = {}): Effect[] {
    const a = this.state.held.get(runId)!;
    const exit: ExitRecord = { format: 1, runId, step: a.status.step, attempt: a.status.attempt, code, signal: null, stoppedBy: null, startedAt: 'x', endedAt: 'y', host: 'h', pid: 1, ...more };
    return this.send({ type: 'step-exited', key: this.keyOf(runId), exit });
  }

  /** The step of `runId` has run long enough for its `running` status to be written (the core's timer). */
  runningDue(runId: number): Effect[] {
    return this.send({ type: 'running-write-due', key: this.keyOf(runId) });
  }

  keyOf(runId: number): string {
    for (const [k, a] of this.state.byKey) if (a.id === runId) return k;
    throw new Error(`run ${runId} has no launched step`);
  }

  phaseOf(runId: number): string | undefined {
    return this.state.held.get(runId)?.phase.kind;
  }

  /** Effects of one type, from a list (default: all so far). */
  of<T extends Effect['type']>(type: T, list: Effect[] = this.effects): Extract<Effect, { type: T }>[] {
    return list.filter((e): e is Extract<Effect, { type: T }> => e.type === type);
  }

  /** The statuses written for a run, in order. */
  written(runId: number, list: Effect[] = this.effects): StatusRecord[] {
    return this.of('write-status', list)
      .filter((e) => e.runId === runId)
      .map((e) => e.status);
  }

  logs(list: Effect[] = this.effects): string[] {
    return this.of('log', list).map((e) => e.line);
  }

  /** No core or GPU held twice or leaked, counting the slots of runs in hand. */
  poolProblems(): string[] {
    return checkPoolInvariant(this.state.pool, heldSlots(this.state));
  }

  private decideEvent(): PackerEvent {
    const candidates = this.queue.filter((c) => !c.gone).slice(0, this.windowSize);
    return { type: 'decide', candidates, windowSize: this.windowSize };
  }

  private handle(ev: PackerEvent): void {
    const effects = transition(this.state, ev, { now: this.now, iso: new Date(this.now).toISOString() });
    for (const e of effects) {
      this.effects.push(e);
      this.answer(e);
    }
  }

  private answer(e: Effect): void {
    switch (e.type) {
      case 'claim': {
        const c = e.candidate;
        if (this.contested.has(c.id)) {
          this.handle({ type: 'claim-failed', candidate: c, slot: e.slot, why: 'contested', message: 'claimed by another packer' });
          return;
        }
        const claim = { runDir: c.dir, owner: { packerId: 'p1' }, id: { dev: 1, ino: c.id }, shared: null } as unknown as Claim;
        const status = this.diskStatus.get(c.id) ?? newStatus(c.id);
        const dequeueRequested = this.dequeueOnClaim.has(c.id);
        this.handle({ type: 'claimed', candidate: c, record: c.record!, slot: e.slot, claim, broken: null, status, statusError: null, dequeueRequested });
        return;
      }
      case 'write-status': {
        const fail = this.failWrites.get(e.runId);
        if (fail) {
          this.failWrites.delete(e.runId);
          this.handle({ type: 'status-written', runId: e.runId, ok: false, why: fail, message: fail === 'io' ? 'ENOSPC: no space left on device' : 'claim lost' });
          return;
        }
        this.diskStatus.set(e.runId, e.status);
        this.handle({ type: 'status-written', runId: e.runId, ok: true });
        return;
      }
      case 'mark-failed':
        this.failedInEnsemble++;
        if (e.count) this.handle({ type: 'failures-counted', failed: this.failedInEnsemble });
        return;
      case 'decide-now':
        this.handle(this.decideEvent());
        return;
      case 'decide-soon':
        this.decisionDue = true;
        return;
      default:
        return;
    }
  }
}
