import fs from 'node:fs';
import os from 'node:os';

/**
 * Process liveness on this host, read from /proc so that no process is forked (the packer's
 * heap may be large, and forking from it is slow). A pid alone is not an identity: pids are reused,
 * so a claim records the pid's start time and "alive" means alive with the same start time.
 */

let host: string | null = null;

/** This machine's name as claims record it (asked once: it does not change under a running process). */
export function hostName(): string {
  host ??= os.hostname();
  return host;
}

const HAVE_PROC = fs.existsSync('/proc/self/stat');

let pidNamespace: string | null | undefined;
/** This process's pid namespace (`pid:[4026531836]`), or null where /proc does not say. */
export function pidNs(): string | null {
  if (pidNamespace === undefined) {
    try {
      pidNamespace = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      pidNamespace = null;
    }
  }
  return pidNamespace;
}

/**
 * Can this process judge the pid of a record written on `host` in pid namespace `ns`? Only on the
 * same host and in the same pid namespace: two containers may share a host name but not their
 * pids. Records of an older themis carry no namespace and are judged by the host name alone.
 */
export function samePidSpace(host: string, ns: string | null | undefined): boolean {
  if (host !== hostName()) return false;
  const mine = pidNs();
  return ns == null || mine === null || ns === mine;
}

/** Fields of /proc/<pid>/stat after the command name (which may itself hold spaces and parens). */
function statFields(pid: number): string[] | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // Field 3 (state) is the first one after ") ".
  return text.slice(close + 2).split(' ');
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), null when the pid is gone. */
export function pidStartTime(pid: number): string | null {
  const f = statFields(pid);
  if (f === null) return null;
  // A zombie has exited; only its parent's bookkeeping keeps the entry.
  if (f[0] === 'Z' || f[0] === 'X') return null;
  return f[22 - 3] ?? null;
}

/**
 * True when `pid` runs on this host and, if `startTime` is given, started at that time (so a
 * reused pid is not mistaken for the original process).
 */
export function isProcessAlive(pid: number, startTime: string | null): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (!HAVE_PROC) {
    // No /proc (macOS): signal 0 checks existence without affecting the process.
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const start = pidStartTime(pid);
  if (start === null) return false;
  return startTime === null || start === startTime;
}

/** What a record says about the process that wrote it (claims, heartbeats, journal starts, locks). */
export interface ProcessRecord {
  host: string;
  pid: number;
  /** Start time of the pid; null/absent = not recorded (any process with that pid counts). */
  pidStart?: string | null;
  /** Pid namespace; null/absent = not recorded (judged by the host name alone). */
  pidNs?: string | null;
}

/** Is the process a record names alive, as far as this process can tell? False when it cannot judge (another host or pid namespace). */
export function aliveHere(p: ProcessRecord): boolean {
  return samePidSpace(p.host, p.pidNs) && isProcessAlive(p.pid, p.pidStart ?? null);
}

/** Is the process a record names known dead (or its pid reused)? False when this process cannot judge it. */
export function deadHere(p: ProcessRecord): boolean {
  return samePidSpace(p.host, p.pidNs) && !isProcessAlive(p.pid, p.pidStart ?? null);
}

export interface ProcessIdentity {
  host: string;
  pid: number;
  /** Start time of the pid, to tell a reused pid from ours. */
  pidStart: string | null;
  pidNs: string | null;
}

let me: ProcessIdentity | undefined;
/** Who this process is, as lock owners, claims and heartbeat files record it (see samePidSpace). */
export function thisProcess(): ProcessIdentity {
  me ??= { host: hostName(), pid: process.pid, pidStart: pidStartTime(process.pid), pidNs: pidNs() };
  return me;
}
