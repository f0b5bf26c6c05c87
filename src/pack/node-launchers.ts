import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { NodeInfo, SchedulerAdapter } from '../schedulers/adapter.js';
import { journalFile, readJournalEntry } from '../store/journal.js';
import type { PackerEvent } from './events.js';
import { Launcher } from './launcher.js';
import type { ExitRecord, SpawnRequest, StopReason } from './launcher-protocol.js';
import type { Route } from './launch-policy.js';

/** How long a node launcher may take to say it is ready (a scheduler may hold the step back a while). */
const NODE_LAUNCHER_START_MS = 120_000;

export interface LaunchersSetup {
  setupDir: string;
  packerId: string;
  graceMs: number;
  nodes: readonly NodeInfo[];
  /** The packer's own node: its launcher is started here, not through the scheduler. */
  ownNode: number;
  /** What starts launchers on other nodes (null: there are none to start). */
  adapter: SchedulerAdapter | null;
  dispatch(ev: PackerEvent): void;
  log(line: string): void;
}

/** A launcher on another node: started with the first step routed there, through the scheduler. */
interface NodeLauncher {
  launcher: Launcher | null;
  /** Steps routed here before the launcher said it was ready. */
  queue: SpawnRequest[];
  /** Steps it has (or will have) started and not yet reported ended. */
  keys: Set<string>;
}

/**
 * The packer's launchers: its own (forking on its node, and starting steps that go through the
 * scheduler), and one long-lived launcher per other node it places a single-node step on, started
 * through the scheduler (`srun --overlap`, `flux run`, `blaunch`) and speaking the same protocol
 * over that job step's stdin and stdout. Each journals into a file of its own, on the shared file
 * system, before the packer hears of a start or an exit. What they report comes back as events.
 */
export class Launchers {
  private own: Launcher | null = null;
  private readonly remote = new Map<number, NodeLauncher>();
  /** The node a launch was routed to, for launches on other nodes. */
  private readonly nodeOf = new Map<string, number>();
  /** The log of each launch through the scheduler, read when it fails: did the scheduler refuse the step? */
  private readonly schedulerLogs = new Map<string, string>();

  constructor(private readonly setup: LaunchersSetup) {}

  /** Start the packer's own launcher (other nodes' start on demand). */
  async start(): Promise<void> {
    const s = this.setup;
    this.own = await Launcher.start(
      s.graceMs,
      {
        exit: (key, exit) => this.ownExit(key, exit),
        started: (key, pid) => s.dispatch({ type: 'step-started', key, pid }),
        lost: (why) => s.dispatch({ type: 'launcher-lost', why }),
      },
      journalFile(s.setupDir, s.packerId),
    );
  }

  get started(): boolean {
    return this.own !== null;
  }

  spawn(route: Route, req: SpawnRequest): void {
    if (route.kind === 'scheduler' || route.node === this.setup.ownNode) {
      if (route.kind === 'scheduler' && this.setup.adapter?.refusedStep) this.schedulerLogs.set(req.key, path.join(req.cwd, req.logName));
      this.own!.spawn(req);
      return;
    }
    const n = route.node;
    let r = this.remote.get(n);
    if (!r) {
      r = { launcher: null, queue: [], keys: new Set() };
      this.remote.set(n, r);
      this.startOn(n, r);
    }
    this.nodeOf.set(req.key, n);
    r.keys.add(req.key);
    if (r.launcher) r.launcher.spawn(req);
    else r.queue.push(req);
  }

  kill(key: string, reason: StopReason): void {
    const n = this.nodeOf.get(key);
    if (n === undefined) {
      this.own?.kill(key, reason);
      return;
    }
    const r = this.remote.get(n);
    if (r?.launcher) {
      r.launcher.kill(key, reason);
      return;
    }
    // Still waiting for its node's launcher: it never started, so it ends here, stopped.
    const i = r ? r.queue.findIndex((q) => q.key === key) : -1;
    if (r && i >= 0) {
      const [req] = r.queue.splice(i, 1);
      this.forget(key, r);
      const at = new Date().toISOString();
      const name = this.setup.nodes[n]!.name;
      this.setup.dispatch({
        type: 'step-exited',
        key,
        exit: { format: 1, runId: req!.runId, step: req!.step, attempt: req!.attempt, code: null, signal: null, stoppedBy: reason, startedAt: at, endedAt: at, host: name, pid: 0 },
      });
    }
  }

  /** Stop what is left of these process groups on node `n`, in one short job step (fire and forget). */
  clean(n: number, pids: number[]): void {
    const s = this.setup;
    const prefix = s.adapter?.nodeCommand?.(s.nodes[n]!);
    if (!prefix) return;
    const argv = [...prefix, 'kill', '-KILL', '--', ...pids.map((p) => `-${p}`)];
    try {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      child.on('error', (e) => s.log(`cannot stop the leftovers on node ${s.nodes[n]!.name}: ${e.message}`));
    } catch (e) {
      s.log(`cannot stop the leftovers on node ${s.nodes[n]!.name}: ${(e as Error).message}`);
    }
  }

  /** Close every launcher (each stops its steps first) and wait for them to exit. */
  async close(): Promise<void> {
    const all = [this.own, ...[...this.remote.values()].map((r) => r.launcher)].filter((l): l is Launcher => l !== null);
    await Promise.all(all.map((l) => l.close()));
  }

  /**
   * A step of the packer's own launcher ended. One started through the scheduler that failed at
   * once with the scheduler's refusal in its log never ran: an infrastructure failure, not the run's.
   */
  private ownExit(key: string, exit: ExitRecord): void {
    const s = this.setup;
    const log = this.schedulerLogs.get(key);
    if (log !== undefined) {
      this.schedulerLogs.delete(key);
      if (exit.code !== 0 && exit.code !== null && exit.stoppedBy === null) {
        const refused = s.adapter?.refusedStep?.(tail(log));
        if (refused) {
          s.dispatch({ type: 'spawn-refused', key, why: refused.why, limitReached: refused.limitReached });
          return;
        }
      }
    }
    s.dispatch({ type: 'step-exited', key, exit });
  }

  private forget(key: string, r: NodeLauncher): void {
    this.nodeOf.delete(key);
    r.keys.delete(key);
  }

  private startOn(n: number, r: NodeLauncher): void {
    const s = this.setup;
    const node = s.nodes[n]!;
    const via = s.adapter?.nodeLauncher?.(node);
    const refuse = (why: string) => {
      if (this.remote.get(n) === r) this.remote.delete(n);
      // The scheduler's complaint is in the message, its lines joined by ' / ' (see launcher.ts).
      const limitReached = s.adapter?.refusedStep?.(why.split(/ \/ |: (?=srun:)/).join('\n'))?.limitReached ?? false;
      for (const req of r.queue.splice(0)) {
        this.forget(req.key, r);
        s.dispatch({ type: 'spawn-refused', key: req.key, why, limitReached });
      }
    };
    if (!via) {
      queueMicrotask(() => refuse(`no way to start a launcher on node ${node.name} with this scheduler`));
      return;
    }
    s.log(`starting a launcher on node ${node.name}: ${via.join(' ')}`);
    Launcher.start(
      s.graceMs,
      {
        started: (key, pid) => s.dispatch({ type: 'step-started', key, pid }),
        exit: (key, exit) => {
          this.forget(key, r);
          s.dispatch({ type: 'step-exited', key, exit });
        },
        lost: (why) => this.lost(n, r, why),
      },
      journalFile(s.setupDir, s.packerId, node.name),
      { via, label: `node ${node.name}`, startTimeoutMs: NODE_LAUNCHER_START_MS },
    ).then(
      (l) => {
        r.launcher = l;
        for (const req of r.queue.splice(0)) l.spawn(req);
      },
      (e: unknown) => refuse(`the launcher on node ${node.name} did not start: ${(e as Error)?.message ?? e}`),
    );
  }

  /** A node launcher died: what its journal says ended is reported with the loss, the rest died with it. */
  private lost(n: number, r: NodeLauncher, why: string): void {
    const s = this.setup;
    if (this.remote.get(n) === r) this.remote.delete(n);
    const file = journalFile(s.setupDir, s.packerId, s.nodes[n]!.name);
    const exits: { key: string; exit: ExitRecord }[] = [];
    for (const key of r.keys) {
      const exit = readJournalEntry(file, key)?.exit ?? null;
      if (exit) exits.push({ key, exit });
      this.nodeOf.delete(key);
    }
    r.keys.clear();
    s.dispatch({ type: 'node-lost', node: n, why, exits });
  }
}

/** The last few KB of a step's log (where srun's complaint is), or '' when it cannot be read. */
function tail(file: string): string {
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 4096);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
