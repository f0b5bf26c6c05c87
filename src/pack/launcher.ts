import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ThemisError } from '../model/errors.js';
import { decodeChild, encodeParent, type ChildMessage, type ExitRecord, type ParentMessage, type SpawnRequest, type StopReason } from './launcher-protocol.js';
import { describeLauncher, explainStartFailure, nativeBinaryProblem, type LauncherDescription } from './native-binary.js';

export type { ExitRecord, SpawnRequest, StopReason } from './launcher-protocol.js';

/** `THEMIS_LAUNCHER=node` forces the Node launcher, `native` requires the compiled one. */
export const LAUNCHER_ENV = 'THEMIS_LAUNCHER';
/** Another native launcher binary than the one built next to this module. */
export const NATIVE_ENV = 'THEMIS_NATIVE_SPAWNER';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The first of `candidates` (relative to this module) that exists: in dist/ (from this module, or
 * from the bundled CLI's chunk in dist/bin/), or dist/ from sources (tests).
 */
function locate(candidates: string[]): string | null {
  for (const c of candidates) {
    const p = path.resolve(here, c);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** The Node launcher. */
function childPath(): string {
  const p = locate(['../pack/launcher-child.js', '../../dist/pack/launcher-child.js']);
  if (!p) throw new ThemisError('NOT_FOUND', `themis launcher not found at ${path.join(here, 'launcher-child.js')}; build themis first (npm run build)`);
  return p;
}

/**
 * The native launcher built from src/native/spawner.c on this machine (at install, or by `npm run
 * build`), when a C compiler was there; null when there is none or it is not executable.
 */
export function nativeSpawnerPath(): string | null {
  const p = process.env[NATIVE_ENV] || locate(['../native/themis-spawner', '../../dist/native/themis-spawner']);
  if (!p) return null;
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return p;
  } catch {
    return null;
  }
}

/** Which launcher a packer started here would use, and why (`themis --version`). */
export function launcherInUse(): LauncherDescription {
  return describeLauncher({
    found: nativeSpawnerPath(),
    nativeDir: locate(['../native', '../../dist/native']) ?? path.resolve(here, '../native'),
    forced: process.env[LAUNCHER_ENV],
    named: process.env[NATIVE_ENV],
    rebuild: `node ${path.resolve(here, '../../scripts/build-native.mjs')}`,
  });
}

export interface LauncherEvents {
  started(key: string, pid: number): void;
  exit(key: string, exit: ExitRecord): void;
  /** The launcher died on its own (it should not): every step it had is gone with it. */
  lost(reason: string): void;
}

/** How to start a launcher somewhere other than here, through the scheduler (a node launcher). */
export interface LauncherPlacement {
  /** The prefix that runs the launcher on its node (`srun --overlap … --nodelist=n2`). */
  via: string[];
  /** For messages: `n2`. */
  label: string;
  /** Give up when it has not said it is ready by then (a scheduler that queues the step forever). */
  startTimeoutMs: number;
}

/** How much of a node launcher's stderr (the scheduler's complaints) a start failure quotes. */
const STDERR_KEPT = 2000;

/** Start one launcher process and wait for its `R` line; rejects when it cannot start. */
function startProcess(kind: 'native' | 'node', where: LauncherPlacement | null): Promise<{ child: ChildProcess; pid: number; lines: LineReader }> {
  // A small heap forks faster: the launcher allocates little, so a tiny young generation is enough.
  const command = kind === 'native' ? [nativeSpawnerPath()!] : [process.execPath, '--max-old-space-size=64', '--max-semi-space-size=1', childPath()];
  const argv = where ? [...where.via, ...command] : command;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', where ? 'pipe' : 'inherit'] });
  // A launcher that died makes writes fail with EPIPE; its 'exit' event says what happened.
  child.stdin!.on('error', () => {});
  let stderr = '';
  // What the scheduler says about a node launcher goes to our stderr too, and the last of it into a start failure.
  child.stderr?.on('data', (b: Buffer) => {
    process.stderr.write(b);
    stderr = (stderr + b.toString('utf8')).slice(-STDERR_KEPT);
  });
  const lines = new LineReader(child);
  const what = where ? `themis launcher (${kind}) on ${where.label}` : `themis launcher (${kind})`;
  return new Promise((resolve, reject) => {
    const said = () => (stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : '');
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new ThemisError('IO', `${what} exited at start (${signal ?? `code ${code}`})${said()}`));
    };
    const timer = where
      ? setTimeout(() => {
          child.off('exit', onExit);
          child.kill('SIGKILL');
          reject(new ThemisError('IO', `${what} did not start within ${where.startTimeoutMs / 1000} s${said()}`));
        }, where.startTimeoutMs)
      : undefined;
    child.once('exit', onExit);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new ThemisError('IO', `${what} cannot start: ${e.message}`, { cause: e }));
    });
    lines.onMessage = (m) => {
      if (m.t !== 'ready') return;
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.onMessage = null;
      resolve({ child, pid: m.pid, lines });
    };
  });
}

/** Splits the launcher's stdout into messages. */
class LineReader {
  onMessage: ((m: ChildMessage) => void) | null = null;
  private rest = '';
  constructor(child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      let text = this.rest + chunk;
      let nl = text.indexOf('\n');
      let from = 0;
      while (nl >= 0) {
        const m = decodeChild(text.slice(from, nl));
        if (m) this.onMessage?.(m);
        from = nl + 1;
        nl = text.indexOf('\n', from);
      }
      this.rest = from === 0 ? text : text.slice(from);
      text = '';
    });
  }
}

/**
 * The packer's handle on its launcher: the native `themis-spawner` when it was built (and starts),
 * else the Node launcher child. Messages are fire-and-forget; answers come back as events. Closing
 * its stdin is how the packer says "stop everything": the launcher then TERMs and KILLs its steps,
 * journals their exits and exits.
 */
export class Launcher {
  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly kind: 'native' | 'node',
  ) {}

  /**
   * `journal`: the file where this launcher records each step's start and exit (the packer's own,
   * or its node's). `where`: start it on another node through the scheduler (null: here).
   */
  static async start(graceMs: number, events: LauncherEvents, journal: string | null = null, where: LauncherPlacement | null = null): Promise<Launcher> {
    if (journal !== null) {
      try {
        fs.mkdirSync(path.dirname(journal), { recursive: true });
      } catch {
        /* the launcher says why it cannot open the journal, and runs steps all the same */
      }
    }
    const want = process.env[LAUNCHER_ENV];
    let started: Awaited<ReturnType<typeof startProcess>> | null = null;
    let kind: 'native' | 'node' = 'node';
    const native = nativeSpawnerPath();
    if (want !== 'node' && native !== null) {
      // Built for another machine (a file system shared by x86-64 and POWER nodes), or not runnable
      // here: the Node launcher does the same job. Its header is read first, so a binary of another
      // architecture is never handed to the kernel (whose ENOEXEC has sh read it as a script).
      const problem = nativeBinaryProblem(native);
      try {
        if (problem !== null) throw new ThemisError('IO', `themis launcher (native) cannot start: ${problem}`);
        started = await startProcess('native', where);
        kind = 'native';
      } catch (e) {
        if (want === 'native') throw e;
        const why = problem ?? explainStartFailure(native, e);
        process.stderr.write(
          `themis-pack: the native launcher cannot start ${where ? `on ${where.label}` : 'here'} (${why}); steps start through the Node launcher instead (it works the same, it forks slower)\n`,
        );
      }
    } else if (want === 'native') {
      throw new ThemisError('NOT_FOUND', `${LAUNCHER_ENV}=native but ${launcherInUse().why}`);
    }
    started ??= await startProcess('node', where);
    const { child, pid, lines } = started;
    const l = new Launcher(child, pid, kind);
    lines.onMessage = (m) => {
      if (m.t === 'started') events.started(m.key, m.pid);
      else if (m.t === 'exit') events.exit(m.key, m.exit);
    };
    child.on('exit', (code, signal) => {
      if (!l.closing) events.lost(`launcher exited unexpectedly (${signal ?? `code ${code}`})`);
    });
    l.send({ t: 'init', graceMs, journal: journal ?? '' });
    return l;
  }

  private closing = false;

  private send(msg: ParentMessage): void {
    const stdin = this.child.stdin!;
    if (!stdin.writable) return;
    stdin.write(encodeParent(msg));
  }

  spawn(req: SpawnRequest): void {
    this.send({ t: 'spawn', req });
  }

  kill(key: string, reason: StopReason): void {
    this.send({ t: 'kill', key, reason });
  }

  /** Close the channel and wait for the launcher to exit (it stops any step still running first). */
  async close(): Promise<void> {
    this.closing = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    await gone;
  }
}
