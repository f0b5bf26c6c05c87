import fs from 'node:fs';
import { ThemisError, describeFsError } from '../model/errors.js';
import {
  asideName,
  claimIdNow,
  errno,
  pinnedState,
  makeClaim,
  moveClaimAside,
  readClaim,
  removeAside,
  sameFile,
  touchPrivate,
  touchShared,
  type ClaimOwner,
  type FileId,
  type OwnerInput,
  type SharedOwner,
} from './claim-files.js';
import { runPaths } from './layout.js';
import { deadHere } from './proc.js';

export { dropSharedOwner, type ClaimOwner, type OwnerInput } from './claim-files.js';

/**
 * A run's claim (its lock): `.themis/claim`, a hard link to its owner's file (see claim-files.ts
 * for why a link). The holder refreshes the owner file's mtime every heartbeat; a claim whose mtime
 * is older than the lease (measured with the file server's clock), or whose owner is a dead process
 * on this host, is stale and may be broken, under the `claim-break` mutex, by exactly one breaker.
 * The claim is ours exactly while the claim path is our owner file's inode.
 */

/** Defaults shared by the packer (`--lease`) and the commands that judge claims. */
export const DEFAULT_LEASE_MS = 60_000;
export const DEFAULT_HEARTBEAT_MS = 10_000;

export interface Claim {
  runDir: string;
  owner: ClaimOwner;
  /** The inode the claim path must be for the claim to be ours. */
  id: FileId;
  /** The packer's shared owner file this claim links to; null when it has its own. */
  shared: SharedOwner | null;
  /** When it was made (performance.now()). */
  madeAt: number;
  /** When the claim path was last seen to be ours (made, or looked at). */
  checkedAt: number;
}

export interface ClaimOptions {
  leaseMs: number;
  /** File-server epoch ms, e.g. `() => fileServerNow(setupDir)`. */
  now: () => number;
}

export interface ClaimInspection {
  owner: ClaimOwner | null;
  ageMs: number;
  stale: boolean;
  /** Why the claim is stale, in words; null when it is live. */
  why: string | null;
  id: FileId;
}

/** The owner recorded in a run's claim, or null when it is not claimed (or the owner is unreadable). */
export function readClaimOwner(runDir: string): ClaimOwner | null {
  return readClaim(runPaths(runDir).claim)?.owner ?? null;
}

/** Create the claim; null when it already exists or the run dir is gone. */
function claimFresh(runDir: string, who: OwnerInput, leaseMs: number): Claim | null {
  const p = runPaths(runDir);
  // A .themis replaced by a symlink would have us write claims and statuses wherever it points.
  let meta: fs.Stats | null = null;
  try {
    meta = fs.lstatSync(p.meta);
  } catch {
    return null; // the run directory was deleted: nothing to claim (scans report it)
  }
  if (meta.isSymbolicLink()) {
    throw new ThemisError('STATE', `cannot claim run ${runDir}: ${p.meta} is a symbolic link; themis does not write through links: replace it with the run's own directory (or remove the run)`);
  }
  let made: ReturnType<typeof makeClaim>;
  try {
    made = makeClaim(p.meta, p.claim, who, leaseMs);
  } catch (e) {
    throw new ThemisError('IO', `cannot claim run ${runDir}: ${describeFsError(e)}`, { cause: e });
  }
  return made && { runDir, owner: made.owner, id: made.id, shared: made.shared, madeAt: performance.now(), checkedAt: performance.now() };
}

/** Judge a claim by its owner file's mtime (the heartbeat) and, on this host, its owner's pid. */
export function inspectClaim(runDir: string, opts: ClaimOptions): ClaimInspection | null {
  const seen = readClaim(runPaths(runDir).claim);
  if (seen === null) return null;
  const { owner, id } = seen;
  const ageMs = opts.now() - seen.mtimeMs;
  const lease = `${(opts.leaseMs / 1000).toFixed(1)} s`;
  const age = `${(ageMs / 1000).toFixed(1)} s`;
  let why: string | null = null;
  if (owner === null) {
    if (ageMs > opts.leaseMs) why = `claim has no readable owner (its claimer died while claiming) and is ${age} old, over the lease of ${lease}`;
  } else if (ageMs > opts.leaseMs) {
    why = `last heartbeat of packer ${owner.packerId} (host ${owner.host}, pid ${owner.pid}) was ${age} ago, over the lease of ${lease}`;
  } else if (deadHere(owner)) {
    why = `owner packer ${owner.packerId} (pid ${owner.pid} on this host, ${owner.host}) is no longer running`;
  }
  return { owner, ageMs, stale: why !== null, why, id };
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
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(mutex, { bigint: true });
    } catch {
      continue; // released meanwhile: try again
    }
    if (opts.now() - Number(st.mtimeMs) <= opts.leaseMs) return false;
    const aside = asideName(mutex, 'dead');
    try {
      fs.renameSync(mutex, aside);
    } catch {
      return false;
    }
    // We may have moved a fresh mutex that replaced the dead one: put it back and give up.
    let moved: fs.BigIntStats | null = null;
    try {
      moved = fs.statSync(aside, { bigint: true });
    } catch {
      /* already cleaned up by `themis doctor`: it was the dead one */
    }
    if (moved !== null && (moved.ino !== st.ino || moved.dev !== st.dev || moved.mtimeNs !== st.mtimeNs)) {
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
    // Released between our link and our look: one more plain attempt.
    const again = claimFresh(runDir, who, opts.leaseMs);
    return again ? { claim: again, broken: null } : null;
  }
  if (!judged.stale) return null;
  if (!lockBreak(runDir, opts)) return null;
  try {
    // Inside the mutex: is it still the very claim we judged stale, and still stale?
    const now = inspectClaim(runDir, opts);
    if (now === null || !now.stale || !sameFile(now.id, judged.id)) return null;
    if (!moveClaimAside(runPaths(runDir).claim, judged.id, 'broken')) return null;
    const mine = claimFresh(runDir, who, opts.leaseMs);
    if (!mine) return null; // a plain claimer got in after the rename: it won fairly
    const unknown: ClaimOwner = { host: 'unknown', pid: 0, pidStart: null, jobId: null, packerId: '(owner never written)', token: '', since: '' };
    return { claim: mine, broken: judged.owner ?? unknown };
  } finally {
    unlockBreak(runDir);
  }
}

/**
 * Is the claim ours without looking? Under the lease protocol a claim is taken from us only after
 * it looked stale for a whole lease, by the file server's clock. While our owner file's heartbeat
 * has worked with no gap of half a lease since the claim was made, no one can have judged it
 * stale, so looking at the claim path (a metadata round trip per run, per status write and per
 * heartbeat) tells us nothing new. We still look once it was last seen more than `freshMs` ago,
 * so a claim removed by force (outside the protocol) is noticed within that time.
 */
export function surelyOurs(claim: Claim, leaseMs: number, freshMs = leaseMs / 6): boolean {
  const s = claim.shared;
  if (s === null || !Number.isFinite(leaseMs)) return false;
  const now = performance.now();
  return s.touchOk && now - s.okAt < leaseMs / 2 && s.gapEndedAt < claim.madeAt && now - claim.checkedAt < freshMs;
}

/** Look at the claim path (see pinnedState), noting when it was last seen ours. */
function lookAtShared(claim: Claim, revalidate: boolean): 'ours' | 'gone' | 'unknown' {
  const state = pinnedState(runPaths(claim.runDir).claim, claim.id, revalidate);
  if (state === 'ours') claim.checkedAt = performance.now();
  return state;
}

/**
 * Refresh the claim's heartbeat; false when it is no longer ours, or when its heartbeat has
 * failed for half of `leaseMs`. A packer's claims share its owner file: the first claim in a
 * heartbeat tick writes it, the others only check they still link to it (and not even that
 * while the heartbeat has had no gap: see surelyOurs).
 */
export function heartbeatClaim(claim: Claim, leaseMs = Infinity): boolean {
  const claimPath = runPaths(claim.runDir).claim;
  if (claim.shared) {
    // A refresh that fails once (EIO, a full disk at fdatasync) does not lose the claim. One that
    // has failed for half a lease does: we give the claim up (and stop its step) before anyone
    // may find it stale and run the step a second time.
    if (!touchShared(claim.shared, 50, leaseMs) && performance.now() - claim.shared.okAt > leaseMs / 2) return false;
    // Each claim is looked at about once per half lease, not at every heartbeat.
    if (surelyOurs(claim, leaseMs, leaseMs / 2)) return true;
    return lookAtShared(claim, true) !== 'gone';
  }
  return touchPrivate(claimPath, claim.id);
}

/** True while the claim path is still our owner file. Check before every status write (or know it: surelyOurs). */
export function holdsClaim(claim: Claim, leaseMs?: number): boolean {
  if (leaseMs !== undefined && surelyOurs(claim, leaseMs)) return true;
  const claimPath = runPaths(claim.runDir).claim;
  return claim.shared ? lookAtShared(claim, true) === 'ours' : sameFile(claimIdNow(claimPath), claim.id);
}

/**
 * Give the claim up; does nothing when it is no longer ours. A claim we surely still hold (see
 * surelyOurs) is simply unlinked. Otherwise it is renamed aside and checked there before it is
 * removed, so a claim that replaced ours meanwhile is put back, never deleted.
 */
export function releaseClaim(claim: Claim, leaseMs?: number): void {
  const claimPath = runPaths(claim.runDir).claim;
  if (leaseMs !== undefined && surelyOurs(claim, leaseMs)) {
    try {
      fs.unlinkSync(claimPath);
      return;
    } catch {
      /* judged the careful way below */
    }
  }
  moveClaimAside(claimPath, claim.id, 'released', claim.shared !== null);
}
