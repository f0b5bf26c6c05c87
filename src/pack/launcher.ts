import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThemisError } from '../model/errors.js';
import type { ChildMessage, ExitRecord, ParentMessage, SpawnRequest, StopReason } from './launcher-protocol.js';

export type { ExitRecord, SpawnRequest, StopReason } from './launcher-protocol.js';

/** The compiled child next to this module, or dist/ when running from sources (tests). */
function childPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const sibling = path.join(here, 'launcher-child.js');
  if (fs.existsSync(sibling)) return sibling;
  const built = path.resolve(here, '../../dist/pack/launcher-child.js');
  if (fs.existsSync(built)) return built;
  throw new ThemisError('NOT_FOUND', `themis launcher not found at ${sibling}; build themis first (npm run build)`);
}

export interface LauncherEvents {
  started(key: string, pid: number): void;
  exit(key: string, exit: ExitRecord): void;
  /** The launcher died on its own (it should not): every step it had is gone with it. */
  lost(reason: string): void;
}

/**
 * The packer's handle on its launcher child. Messages are fire-and-forget; answers come back as
 * events. Closing the channel is how the packer says "stop everything": the child then TERMs and
 * KILLs its steps, records their exits and exits.
 */
export class Launcher {
  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
  ) {}

  static async start(graceMs: number, events: LauncherEvents): Promise<Launcher> {
    const child = fork(childPath(), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // A small heap forks faster: the launcher allocates little, so a tiny young generation is enough.
      execArgv: ['--max-old-space-size=64', '--max-semi-space-size=1'],
      serialization: 'json',
    });
    const ready = await new Promise<number>((resolve, reject) => {
      const onMsg = (m: ChildMessage) => {
        if (m.t === 'ready') {
          child.off('exit', onExit);
          resolve(m.pid);
        }
      };
      const onExit = (code: number | null) => reject(new ThemisError('IO', `themis launcher exited at start (code ${code})`));
      child.once('message', onMsg);
      child.once('exit', onExit);
      child.once('error', reject);
    });
    const l = new Launcher(child, ready);
    let closing = false;
    l.closing = () => {
      closing = true;
    };
    child.on('message', (m: ChildMessage) => {
      if (m.t === 'started') events.started(m.key, m.pid);
      else if (m.t === 'exit') events.exit(m.key, m.exit);
    });
    child.on('exit', (code, signal) => {
      if (!closing) events.lost(`launcher exited unexpectedly (${signal ?? `code ${code}`})`);
    });
    l.send({ t: 'init', graceMs });
    return l;
  }

  private closing: () => void = () => {};

  private send(msg: ParentMessage): void {
    if (this.child.connected) this.child.send(msg);
  }

  spawn(req: SpawnRequest): void {
    this.send({ t: 'spawn', req });
  }

  kill(key: string, reason: StopReason): void {
    this.send({ t: 'kill', key, reason });
  }

  /** Ask the child to stop every step (TERM, then KILL after grace) and exit once all are recorded. */
  shutdown(): void {
    this.send({ t: 'shutdown' });
  }

  /** Close the channel and wait for the child to exit (it stops any step still running first). */
  async close(): Promise<void> {
    this.closing();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    await gone;
  }
}
