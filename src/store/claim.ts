import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ThemisError, describeFsError } from '../model/errors.js';
import { runPaths } from './layout.js';
import { hostName, isProcessAlive, pidStartTime } from './proc.js';

/**
 * A run's claim (its lock): `mkdir .themis/claim` (atomic on NFS, Lustre and GPFS, unlike
 * O_EXCL on old NFS), then `claim/owner.json` written atomically. The holder refreshes the
 * owner's mtime every heartbeat; a claim whose mtime is older than the lease (measured with the
 * file server's clock), or whose owner is a dead process on this host, is stale and may be broken,
 * under the `claim-break` mutex, by exactly one breaker.
 */

/** Defaults shared by the packer (`--lease`) and the commands that judge claims. */
export const DEFAULT_LEASE_MS = 60_000;
export const DEFAULT_HEARTBEAT_MS = 10_000;

export interface ClaimOwner {
  host: string;
  pid: number;
  pidStart: string | null;
  jobId: string | null;
  packerId: string;
  token: string;
  since: string;
}

export interface Claim {
  runDir: string;
  owner: ClaimOwner;
  /**
   * When we last saw owner.json carry our token right as its mtime was set (creation, heartbeat),
   * on both clocks, and how long that proves we still hold it: a claim is only ever broken when
   * older than the lease, so within half a lease of our own touch nobody can have taken it.
   */
  confirmed?: { mono: number; wall: number; forMs: number };
}

export interface ClaimOptions {
  leaseMs: number;
  /** File-server epoch ms, e.g. `() => fileServerNow(setupDir)`. */
  now: () => number;
}

export type OwnerInput = Pick<ClaimOwner, 'jobId' | 'packerId'>;

export interface ClaimInspection {
  owner: ClaimOwner | null;
  ageMs: number;
  stale: boolean;
  /** Why the claim is stale, in words; null when it is live. */
  why: string | null;
}

const myPidStart = pidStartTime(process.pid);

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Tokens: one random prefix per process and a counter (unique, without a random draw per claim). */
const tokenPrefix = randomBytes(8).toString('hex');
let tokenCount = 0;

function newOwner(who: OwnerInput): ClaimOwner {
  return {
    host: hostName(),
    pid: process.pid,
    pidStart: myPidStart,
    jobId: who.jobId,
    packerId: who.packerId,
    token: `${tokenPrefix}${(++tokenCount).toString(36)}`,
    since: new Date().toISOString(),
  };
}

/** owner.json, or null when missing or unreadable (a claimer that died before writing it). */
function readOwner(file: string): ClaimOwner | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    // owner.json is a few hundred bytes: one read usually has it all, and a complete parse says so
    // (no fstat, no read to EOF). Otherwise read on to the end and judge that.
    let n = fs.readSync(fd, ownerBuf, 0, ownerBuf.length, 0);
    const first = parseOwner(ownerBuf.toString('utf8', 0, n));
    if (first) return first;
    for (let r = n; r > 0 && n < ownerBuf.length; n += r) r = fs.readSync(fd, ownerBuf, n, ownerBuf.length - n, n);
    if (n >= ownerBuf.length) return parseOwner(fs.readFileSync(file, 'utf8'));
    return parseOwner(ownerBuf.toString('utf8', 0, n));
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

const ownerBuf = Buffer.allocUnsafe(16 * 1024);

/** owner.json of a claim we made (computed once per claim). */
const ownerFiles = new WeakMap<Claim, string>();
function ownerFileOf(claim: Claim): string {
  let f = ownerFiles.get(claim);
  if (f === undefined) {
    f = runPaths(claim.runDir).claimOwner;
    ownerFiles.set(claim, f);
  }
  return f;
}

function parseOwner(text: string | null): ClaimOwner | null {
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as ClaimOwner;
    return o && typeof o === 'object' && typeof o.token === 'string' ? o : null;
  } catch {
    return null;
  }
}

/**
 * Content and mtime through one descriptor. On NFS, open() revalidates the cached attributes
 * (close-to-open), so this mtime is the server's current one, not one cached for up to a minute.
 */
function readStamped(file: string): { text: string; mtimeMs: number } | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const m = fs.fstatSync(fd).mtimeMs;
    return { text: fs.readFileSync(fd, 'utf8'), mtimeMs: m };
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function mtimeMs(p: string): number | null {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return null;
  }
}

/** Remove a directory tree that nobody else can reach any more (it was renamed aside). */
function removeAside(dir: string): void {
  try {
    // The usual content is owner.json alone: two syscalls instead of a recursive walk.
    fs.unlinkSync(path.join(dir, 'owner.json'));
    fs.rmdirSync(dir);
    return;
  } catch {
    /* something else in it (a dead writer's temp file), or no owner.json: walk it */
  }
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* a leftover graveyard dir is harmless; `themis doctor` lists it */
  }
}

function asideName(dir: string, why: string): string {
  return `${dir}.${why}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Rename `claimDir` aside if (and only if) it belongs to `token` (null: no owner.json), then
 * delete it. Between our check and the rename another process could have replaced the claim, so
 * the moved directory is checked again and put back when it was not the one we meant.
 */
function moveClaimAside(claimDir: string, token: string | null, why: string): boolean {
  const aside = asideName(claimDir, why);
  try {
    fs.renameSync(claimDir, aside);
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw new ThemisError('IO', `cannot move claim ${claimDir} aside: ${describeFsError(e)}`, { cause: e });
  }
  const moved = readOwner(path.join(aside, 'owner.json'));
  if ((moved?.token ?? null) !== token) {
    try {
      fs.renameSync(aside, claimDir);
    } catch {
      /* the path was taken again meanwhile; the owner sees the loss at its next heartbeat */
    }
    return false;
  }
  removeAside(aside);
  return true;
}

/**
 * Write owner.json straight into the claim dir we just made (exclusive create, no temp + rename):
 * until it is complete, readers find it unparsable, which they treat as "no owner yet", aged by
 * its own mtime, exactly like a claimer that died right after mkdir.
 */
function writeOwner(claimDir: string, owner: ClaimOwner): void {
  const file = path.join(claimDir, 'owner.json');
  try {
    fs.writeFileSync(file, JSON.stringify(owner, null, 1) + '\n', { flag: 'wx' });
  } catch (e) {
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

function clocks(): { mono: number; wall: number } {
  return { mono: performance.now(), wall: Date.now() };
}

/** True while our own last confirmation is younger than half a lease on both clocks (see Claim). */
function provenFresh(claim: Claim): boolean {
  const c = claim.confirmed;
  if (!c) return false;
  const wall = Date.now() - c.wall;
  return performance.now() - c.mono < c.forMs && wall >= 0 && wall < c.forMs;
}

/** mkdir the claim dir and write our owner; null when it already exists or the run dir is gone. */
function claimFresh(runDir: string, who: OwnerInput, leaseMs?: number): Claim | null {
  const p = runPaths(runDir);
  // A .themis replaced by a symlink would have us write claims and statuses wherever it points.
  let meta: fs.Stats | null = null;
  try {
    meta = fs.lstatSync(p.meta);
  } catch {
    /* missing: mkdir below says so */
  }
  if (meta?.isSymbolicLink()) {
    throw new ThemisError('STATE', `cannot claim run ${runDir}: ${p.meta} is a symbolic link; themis does not write through links: replace it with the run's own directory (or remove the run)`);
  }
  const t0 = clocks();
  try {
    fs.mkdirSync(p.claim);
  } catch (e) {
    if (errno(e) === 'EEXIST') return null;
    // The run directory was deleted: nothing to claim (scans report it, `themis doctor` explains).
    if (errno(e) === 'ENOENT') return null;
    throw new ThemisError('IO', `cannot claim run ${runDir}: mkdir ${p.claim}: ${describeFsError(e)}`, { cause: e });
  }
  const owner = newOwner(who);
  try {
    writeOwner(p.claim, owner);
  } catch (e) {
    // Do not leave an owner-less claim behind: it would block the run for a whole lease.
    removeAside(p.claim);
    throw e;
  }
  return { runDir, owner, ...(leaseMs ? { confirmed: { ...t0, forMs: leaseMs / 2 } } : {}) };
}

/** Judge a claim: age from owner.json's mtime (or the claim dir's, when owner.json is missing). */
export function inspectClaim(runDir: string, opts: ClaimOptions): ClaimInspection | null {
  const p = runPaths(runDir);
  const stamped = readStamped(p.claimOwner);
  const owner = parseOwner(stamped?.text ?? null);
  let m = stamped?.mtimeMs ?? null;
  if (m === null) m = mtimeMs(p.claim);
  if (m === null) return null;
  const ageMs = opts.now() - m;
  const lease = `${(opts.leaseMs / 1000).toFixed(1)} s`;
  const age = `${(ageMs / 1000).toFixed(1)} s`;
  let why: string | null = null;
  if (owner === null) {
    if (ageMs > opts.leaseMs) why = `claim has no owner.json (its claimer died right after mkdir) and is ${age} old, over the lease of ${lease}`;
  } else if (ageMs > opts.leaseMs) {
    why = `last heartbeat of packer ${owner.packerId} (host ${owner.host}, pid ${owner.pid}) was ${age} ago, over the lease of ${lease}`;
  } else if (owner.host === hostName() && !isProcessAlive(owner.pid, owner.pidStart)) {
    why = `owner packer ${owner.packerId} (pid ${owner.pid} on this host, ${owner.host}) is no longer running`;
  }
  return { owner, ageMs, stale: why !== null, why };
}

/** Take the `claim-break` mutex; a mutex older than the lease belonged to a dead breaker. */
function lockBreak(runDir: string, opts: ClaimOptions): boolean {
  const mutex = runPaths(runDir).claimBreak;
  for (let i = 0; i < 2; i++) {
    try {
      fs.mkdirSync(mutex);
      return true;
    } catch (e) {
      if (errno(e) !== 'EEXIST') return false;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(mutex);
    } catch {
      continue; // released meanwhile: try again
    }
    if (opts.now() - st.mtimeMs <= opts.leaseMs) return false;
    const aside = asideName(mutex, 'dead');
    try {
      fs.renameSync(mutex, aside);
    } catch {
      return false;
    }
    // We may have moved a fresh mutex that replaced the dead one: put it back and give up.
    let movedIno: number | null = null;
    try {
      movedIno = fs.statSync(aside).ino;
    } catch {
      /* already cleaned up by `themis doctor`: it was the dead one */
    }
    if (movedIno !== null && movedIno !== st.ino) {
      try {
        fs.renameSync(aside, mutex);
      } catch {
        /* its holder will fail to rmdir it, harmlessly */
      }
      return false;
    }
    removeAside(aside);
  }
  return false;
}

function unlockBreak(runDir: string): void {
  try {
    fs.rmdirSync(runPaths(runDir).claimBreak);
  } catch {
    /* already removed as dead by someone else */
  }
}

/**
 * Claim a run, breaking a stale claim if needed. Returns null when the run is held by a live
 * owner, another packer is breaking it right now, or its directory is gone. `broken` is the owner
 * whose stale claim we broke: record it in the run's history. Throws ThemisError('IO') only when
 * the file system refuses (full disk, permissions).
 */
export function tryClaim(runDir: string, who: OwnerInput, opts: ClaimOptions): { claim: Claim; broken: ClaimOwner | null } | null {
  const fresh = claimFresh(runDir, who, opts.leaseMs);
  if (fresh) return { claim: fresh, broken: null };
  const judged = inspectClaim(runDir, opts);
  if (judged === null) {
    // Released between our mkdir and our look: one more plain attempt.
    const again = claimFresh(runDir, who, opts.leaseMs);
    return again ? { claim: again, broken: null } : null;
  }
  if (!judged.stale) return null;
  const judgedToken = judged.owner?.token ?? null;
  if (!lockBreak(runDir, opts)) return null;
  try {
    // Inside the mutex: is it still the very claim we judged stale, and still stale?
    const now = inspectClaim(runDir, opts);
    if (now === null || !now.stale || (now.owner?.token ?? null) !== judgedToken) return null;
    const p = runPaths(runDir);
    if (!moveClaimAside(p.claim, judgedToken, 'broken')) return null;
    const mine = claimFresh(runDir, who, opts.leaseMs);
    if (!mine) return null; // a plain claimer got in after the rename: it won fairly
    const unknown: ClaimOwner = { host: 'unknown', pid: 0, pidStart: null, jobId: null, packerId: '(owner.json never written)', token: '', since: '' };
    return { claim: mine, broken: judged.owner ?? unknown };
  } finally {
    unlockBreak(runDir);
  }
}

/**
 * Refresh the claim's heartbeat. We rewrite one byte of owner.json in place through the same
 * descriptor we read the token from: the file server stamps the mtime (utimes would stamp this
 * node's clock), and if the claim was broken meanwhile we only touch the old, moved-aside file.
 */
export function heartbeatClaim(claim: Claim): boolean {
  const t0 = clocks();
  let fd: number;
  try {
    fd = fs.openSync(runPaths(claim.runDir).claimOwner, 'r+');
  } catch {
    return false;
  }
  try {
    const text = fs.readFileSync(fd, 'utf8');
    let token: unknown;
    try {
      token = (JSON.parse(text) as ClaimOwner).token;
    } catch {
      return false;
    }
    if (token !== claim.owner.token) return false;
    fs.writeSync(fd, text.slice(0, 1), 0, 'utf8');
    if (claim.confirmed) claim.confirmed = { ...t0, forMs: claim.confirmed.forMs };
    return true;
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** True while owner.json still carries our token. Check before every status write. */
export function holdsClaim(claim: Claim): boolean {
  return readOwner(ownerFileOf(claim))?.token === claim.owner.token;
}

/**
 * Give the claim up; does nothing when it is no longer ours. While our own last touch is younger
 * than half a lease nobody can have broken it (and so replaced it) since we checked the token, so
 * owner.json and the dir are removed in place; otherwise the claim is moved aside first and
 * checked again there, which is safe against a breaker that replaced it meanwhile.
 */
export function releaseClaim(claim: Claim): void {
  const p = runPaths(claim.runDir);
  if (!holdsClaim(claim)) return;
  if (provenFresh(claim)) {
    let unlinked = false;
    try {
      fs.unlinkSync(p.claimOwner);
      unlinked = true;
      fs.rmdirSync(p.claim);
      return;
    } catch {
      // Not empty (an old writer's temp file): move the now owner-less dir aside and remove it.
      if (unlinked) {
        moveClaimAside(p.claim, null, 'released');
        return;
      }
    }
  }
  moveClaimAside(p.claim, claim.owner.token, 'released');
}
