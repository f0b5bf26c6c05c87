/**
 * The launcher in Node, the fallback for the native `themis-spawner` (src/native/spawner.c) where
 * no C compiler built it: a small, long-lived child of the packer that does all the forking. Node copies
 * the parent's memory to fork, so spawning from a packer that holds a big queue gets slow; this
 * process stays tiny. It also owns the steps' lives: it journals each step's start and exit in the
 * packer's journal (one appended line each, even after the packer died), enforces timeouts,
 * and when the packer goes away (its stdin closes) it stops every step's process group and exits, so no
 * step outlives its packer. It imports almost nothing on purpose.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { STOP_SIGNALS } from './stop-signals.js';
import { ParentDecoder, encodeChild, encodeJournal, type ChildMessage, type ExitRecord, type ParentMessage, type SpawnRequest, type StepStartRecord, type StopReason } from './launcher-protocol.js';

interface Live {
  req: SpawnRequest;
  child: ChildProcess | null;
  pid: number;
  startedAt: string;
  stoppedBy: StopReason | null;
  timers: NodeJS.Timeout[];
}

const live = new Map<string, Live>();
let graceMs = 10_000;
let shuttingDown = false;
const host = os.hostname();
/** This launcher's pid namespace: the pids it journals mean something only inside it. */
const pidNs = ((): string | null => {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
})();

let packerGone = false;

function send(msg: ChildMessage): void {
  // A plain blocking write to fd 1 (never process.stdout: its EPIPE 'error' event, when the packer
  // has died, would kill us and orphan every step). The end of stdin shuts us down properly.
  if (packerGone) return;
  const buf = Buffer.from(encodeChild(msg));
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      packerGone = true;
      return;
    }
  }
}

/** The packer's journal: opened once (O_APPEND), one write(2) per record. */
let journalFd: number | null = null;
let journalPath = '';
/** The last write was short (full disk): start the next record on a line of its own. */
let journalTorn = false;

function openJournal(file: string): void {
  if (file === '' || journalFd !== null) return;
  journalPath = file;
  try {
    // 'a' = O_WRONLY|O_APPEND|O_CREAT; libuv adds O_CLOEXEC.
    journalFd = fs.openSync(file, 'a');
  } catch (e) {
    process.stderr.write(`themis launcher: cannot open ${file}: ${(e as Error).message}\n`);
  }
}

function journal(kind: 'S' | 'E', key: string, rec: StepStartRecord | ExitRecord): void {
  if (journalFd === null) return;
  const buf = Buffer.from((journalTorn ? '\n' : '') + encodeJournal(kind, key, rec));
  try {
    const n = fs.writeSync(journalFd, buf, 0, buf.length);
    journalTorn = n < buf.length;
    if (journalTorn) process.stderr.write(`themis launcher: short write to ${journalPath} (${n} of ${buf.length} bytes)\n`);
  } catch (e) {
    journalTorn = true;
    process.stderr.write(`themis launcher: cannot write ${journalPath}: ${(e as Error).message}\n`);
  }
}

function pidStart(pid: number): string | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True when our child has exited but its exit event has not been handled yet (state Z). */
function exitedUnreaped(pid: number): boolean {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return text.slice(text.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * The step's log, opened for appending. `gen` leaves an empty `run.log` in each run directory, and
 * a first attempt writes into it: one open, nothing created (creating a file is the costly metadata
 * operation on a parallel file system). A log with something in it is rotated first. An empty file
 * an older `gen` made (`logSpare`) is linked into place when there is one (link never replaces an
 * existing log).
 */
function openLog(cwd: string, logName: string, spare: string): number {
  const log = path.join(cwd, logName);
  try {
    // O_NOFOLLOW: a run.log replaced by a link is never written through (it is rotated aside below).
    const fd = fs.openSync(log, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW);
    if (fs.fstatSync(fd).size === 0) return fd;
    fs.closeSync(fd);
  } catch {
    /* no log yet (or not openable): made below */
  }
  if (spare) {
    for (let i = 0; i < 2; i++) {
      try {
        fs.linkSync(spare, log);
        fs.rmSync(spare, { force: true });
        return fs.openSync(log, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_TRUNC);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i > 0) break;
        rotateLog(cwd, logName);
      }
    }
  }
  rotateLog(cwd, logName);
  return fs.openSync(log, 'a');
}

/** Move an existing log aside before a new attempt writes: run_0001.log, run_0002.log, … */
function rotateLog(cwd: string, logName: string): void {
  const log = path.join(cwd, logName);
  if (!fs.existsSync(log)) return;
  const taken = fs.readdirSync(cwd).filter((n) => /^run_\d{4,}\.log$/.test(n)).length;
  let n = taken + 1;
  while (fs.existsSync(path.join(cwd, `run_${String(n).padStart(4, '0')}.log`))) n++;
  fs.renameSync(log, path.join(cwd, `run_${String(n).padStart(4, '0')}.log`));
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone already */
  }
}

/** TERM the step's process group now, KILL it after the grace period. */
function stop(l: Live, reason: StopReason): void {
  // Already exited on its own (a zombie we have not reaped yet): its own exit status stands, or a
  // step that finished with 0 just as its packer died would be recorded "interrupted" and run again.
  if (l.pid > 0 && exitedUnreaped(l.pid)) return;
  if (l.stoppedBy === null) l.stoppedBy = reason;
  if (l.pid <= 0) return;
  signalGroup(l.pid, 'SIGTERM');
  const t = setTimeout(() => signalGroup(l.pid, 'SIGKILL'), graceMs);
  t.unref();
  l.timers.push(t);
}

function finish(l: Live, code: number | null, signal: string | null): void {
  for (const t of l.timers) clearTimeout(t);
  // Stragglers a step left in its group (backgrounded helpers) must not hold the cores we free.
  if (l.pid > 0) signalGroup(l.pid, 'SIGKILL');
  live.delete(l.req.key);
  const rec: ExitRecord = {
    format: 1,
    runId: l.req.runId,
    step: l.req.step,
    attempt: l.req.attempt,
    code,
    signal,
    stoppedBy: l.stoppedBy,
    startedAt: l.startedAt,
    endedAt: new Date().toISOString(),
    host,
    pid: l.pid,
  };
  // Durable before the packer hears of it: a packer that dies now leaves it to its successor.
  journal('E', l.req.key, rec);
  send({ t: 'exit', key: l.req.key, exit: rec });
  if (shuttingDown && live.size === 0) process.exit(0);
}

function start(req: SpawnRequest): void {
  const l: Live = { req, child: null, pid: 0, startedAt: new Date().toISOString(), stoppedBy: null, timers: [] };
  live.set(req.key, l);
  let fd: number | null = null;
  try {
    fs.mkdirSync(req.cwd, { recursive: true });
    fd = openLog(req.cwd, req.logName, req.logSpare);
    const child = spawn(req.argv[0]!, req.argv.slice(1), {
      cwd: req.cwd,
      env: { ...process.env, ...req.env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    l.child = child;
    l.pid = child.pid ?? 0;
    child.once('error', (e: NodeJS.ErrnoException) => {
      try {
        fs.appendFileSync(path.join(req.cwd, req.logName), `themis: cannot start ${req.argv[0]}: ${e.message}\n`);
      } catch {
        /* the log itself is unwritable; the exit record still says why */
      }
      if (l.pid === 0) finish(l, e.code === 'ENOENT' ? 127 : 126, null);
    });
    child.once('exit', (code, signal) => finish(l, code, signal));
  } catch (e) {
    try {
      if (fd !== null) fs.writeSync(fd, `themis: cannot start ${req.argv[0]}: ${(e as Error).message}\n`);
    } catch {
      /* nothing more to say */
    }
    finish(l, 126, null);
    return;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
  if (l.pid === 0) return;
  journal('S', req.key, {
    format: 1,
    runId: req.runId,
    step: req.step,
    attempt: req.attempt,
    host,
    pid: l.pid,
    pgid: l.pid,
    pidStart: pidStart(l.pid),
    startedAt: l.startedAt,
    launcherPid: process.pid,
    pidNs,
  });
  if (req.timeoutMs > 0) {
    const t = setTimeout(() => stop(l, 'timeout'), req.timeoutMs);
    t.unref();
    l.timers.push(t);
  }
  send({ t: 'started', key: req.key, pid: l.pid });
}

/** The packer is gone or asked us to quit: stop every step, record their exits, then exit. */
function shutdown(): void {
  if (shuttingDown) return;
  shuttingDown = true;
  if (live.size === 0) process.exit(0);
  for (const l of live.values()) stop(l, 'interrupt');
  // Even a step that ignores SIGKILL's group (it cannot) must not keep us forever.
  setTimeout(() => process.exit(0), graceMs + 5000).unref();
}

function handle(msg: ParentMessage): void {
  switch (msg.t) {
    case 'init':
      graceMs = msg.graceMs;
      openJournal(msg.journal);
      break;
    case 'spawn':
      if (shuttingDown) {
        const l: Live = { req: msg.req, child: null, pid: 0, startedAt: new Date().toISOString(), stoppedBy: 'interrupt', timers: [] };
        finish(l, null, null);
      } else start(msg.req);
      break;
    case 'kill': {
      const l = live.get(msg.key);
      if (l) stop(l, msg.reason);
      break;
    }
    case 'shutdown':
      shutdown();
      break;
  }
}

const decoder = new ParentDecoder();
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  let msgs: ParentMessage[];
  try {
    msgs = decoder.push(chunk);
  } catch (e) {
    process.stderr.write(`themis launcher: protocol error: ${(e as Error).message}\n`);
    return shutdown();
  }
  for (const m of msgs) handle(m);
});
// The packer is gone (or closed the channel on purpose): stop everything.
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
// Terminal and scheduler signals (the packer's stop signals) are the packer's to handle; it tells
// us what to stop. Dying here on SIGINT or LSF's SIGUSR2 would orphan every step.
for (const sig of STOP_SIGNALS) process.on(sig, () => {});
send({ t: 'ready', pid: process.pid });
