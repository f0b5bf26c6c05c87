import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ThemisError, describeFsError } from '../model/errors.js';
import { lookupsCoherent } from './fs-kind.js';
import { thisProcess } from './proc.js';

/**
 * The files behind a claim. A claim is `.themis/claim`, a hard link to an *owner file* that holds
 * the owner as JSON. `link()` is atomic and exclusive on NFS, Lustre and GPFS (the classic NFS
 * lock), and it creates no inode: on this kind of file system creating a file or directory is the
 * expensive metadata operation (150-250 µs here, milliseconds on a busy parallel file system),
 * while link, rename and unlink are cheap.
 *
 * A packer links all its claims to one owner file in the setup directory's `packers/`, so a
 * single write to that file is the heartbeat of every claim it holds. One-off claimers (doctor,
 * requeue) write a private owner file next to the claim, link it, and unlink the private name.
 * Claims made by older themis versions (a `claim/` directory holding `owner.json`) are still read,
 * judged and broken.
 */

export interface ClaimOwner {
  host: string;
  pid: number;
  pidStart: string | null;
  jobId: string | null;
  packerId: string;
  token: string;
  since: string;
  /** The owner's pid namespace: its pid means something only to processes in the same one. */
  pidNs?: string | null;
}

/** Who claims: `ownerDir` (the setup dir's `packers/`) makes all claims share one owner file. */
export interface OwnerInput {
  jobId: string | null;
  packerId: string;
  ownerDir?: string;
}

/**
 * A claim's identity: its inode and its owner's token. The inode alone is not enough: a private
 * owner file freed when its claim is broken can be reused at once, same number, for the next one.
 */
export interface FileId {
  /** Decimal strings: 64-bit inode numbers (Lustre, GPFS) do not fit a double, and these print. */
  dev: string;
  ino: string;
  token: string | null;
}

function idOf(st: fs.BigIntStats, token: string | null): FileId {
  return { dev: String(st.dev), ino: String(st.ino), token };
}

/** `fn` on `p` opened with `flags`; null when it cannot be opened or `fn` throws. Always closes. */
function withFd<T>(p: string, flags: string, fn: (fd: number) => T): T | null {
  let fd: number;
  try {
    fd = fs.openSync(p, flags);
  } catch {
    return null;
  }
  try {
    return fn(fd);
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

export function sameFile(a: FileId | null, b: FileId | null): boolean {
  return a !== null && b !== null && a.dev === b.dev && a.ino === b.ino && a.token === b.token;
}

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

/** Tokens and temp names: one random prefix per process and a counter. */
const prefix = randomBytes(8).toString('hex');
let counter = 0;
const next = (): string => (++counter).toString(36);

export function newOwner(who: OwnerInput): ClaimOwner {
  const { host, pid, pidStart, pidNs } = thisProcess();
  return { host, pid, pidStart, jobId: who.jobId, packerId: who.packerId, token: `${prefix}${next()}`, since: new Date().toISOString(), pidNs };
}

function ownerText(owner: ClaimOwner): string {
  return JSON.stringify(owner, null, 1) + '\n';
}

export function parseOwner(text: string | null): ClaimOwner | null {
  if (text === null) return null;
  try {
    const o = JSON.parse(text) as ClaimOwner;
    return o && typeof o === 'object' && typeof o.token === 'string' ? o : null;
  } catch {
    return null;
  }
}

// --- the shared owner file of a packer ---

export interface SharedOwner {
  path: string;
  owner: ClaimOwner;
  id: FileId;
  /** Kept open: the heartbeat writes through it even if someone removed the name. */
  fd: number;
  /** When the last heartbeat write started (both clocks), so claims verified after it count from then. */
  touched: { mono: number; wall: number } | null;
  touchOk: boolean;
  /** Why the last heartbeat write failed (null when it worked). */
  touchError: string | null;
  /** When (performance.now()) a heartbeat write last worked: how old the claims look to others. */
  okAt: number;
  /**
   * When (performance.now()) the last long gap between working heartbeat writes ended (a frozen
   * process, a hung file server): claims made before it may have looked stale to others. -Infinity
   * when there was none.
   */
  gapEndedAt: number;
}

const shared = new Map<string, SharedOwner | 'unusable'>();

function sharedKey(who: OwnerInput): string {
  return `${who.ownerDir}\0${who.packerId}`;
}

/** The packer's shared owner file, made on first use; null when `who` has none or it cannot be made. */
export function sharedOwner(who: OwnerInput): SharedOwner | null {
  if (!who.ownerDir) return null;
  const key = sharedKey(who);
  const known = shared.get(key);
  if (known !== undefined) return known === 'unusable' ? null : known;
  const file = path.join(who.ownerDir, `${who.packerId}.owner`);
  const owner = newOwner(who);
  try {
    fs.mkdirSync(who.ownerDir, { recursive: true });
    const fd = fs.openSync(file, 'w+', 0o644);
    fs.writeSync(fd, ownerText(owner), 0, 'utf8');
    const st = fs.fstatSync(fd, { bigint: true });
    const s: SharedOwner = {
      path: file,
      owner,
      id: idOf(st, owner.token),
      fd,
      touched: { mono: performance.now(), wall: Date.now() },
      touchOk: true,
      touchError: null,
      okAt: performance.now(),
      gapEndedAt: -Infinity,
    };
    shared.set(key, s);
    return s;
  } catch {
    // Each claim then gets its own owner file: slower, equally safe.
    shared.set(key, 'unusable');
    return null;
  }
}

/** Close and remove a packer's shared owner file (at exit, after its claims are released). */
export function dropSharedOwner(who: OwnerInput): void {
  if (!who.ownerDir) return;
  const key = sharedKey(who);
  const s = shared.get(key);
  shared.delete(key);
  if (!s || s === 'unusable') return;
  try {
    fs.closeSync(s.fd);
  } catch {
    /* already closed */
  }
  try {
    fs.unlinkSync(s.path);
  } catch {
    /* removed already */
  }
}

/**
 * Refresh the heartbeat of every claim linked to `s`: rewrite its first byte in place and flush,
 * so the file server stamps the mtime (utimes would stamp this node's clock; an unflushed NFS write
 * would not reach the server until write-back). Several claims heartbeating in one tick share it.
 */
export function touchShared(s: SharedOwner, withinMs: number, leaseMs: number): boolean {
  if (s.touched && performance.now() - s.touched.mono < withinMs) return s.touchOk;
  const t = { mono: performance.now(), wall: Date.now() };
  try {
    fs.writeSync(s.fd, '{', 0, 'utf8');
    fs.fdatasyncSync(s.fd);
    // Half a lease without a working heartbeat: others may have judged our claims stale meanwhile.
    if (t.mono - s.okAt > leaseMs / 2) s.gapEndedAt = t.mono;
    s.touchOk = true;
    s.touchError = null;
    s.okAt = t.mono;
  } catch (e) {
    s.touchOk = false;
    s.touchError = describeFsError(e);
  }
  s.touched = t;
  return s.touchOk;
}

// --- making a claim ---

/** Link errors after which a private owner file (or nothing) is the answer, not a retry. */
const NO_SHARED_LINK = new Set(['EXDEV', 'EMLINK', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Link `source` to `claimPath`. Returns true when the claim path is now `id` (also when an NFS
 * retransmission reported a link that did succeed as EEXIST), false when someone else holds it,
 * and throws the errno otherwise.
 */
function linkClaim(source: string, claimPath: string, id: FileId): boolean {
  try {
    fs.linkSync(source, claimPath);
    return true;
  } catch (e) {
    if (sameFile(claimIdNow(claimPath), id)) return true;
    if (errno(e) === 'EEXIST') return false;
    throw e;
  }
}

export interface Made {
  owner: ClaimOwner;
  id: FileId;
  shared: SharedOwner | null;
}

/**
 * Create the claim; null when it exists already or the run directory is gone. Throws the raw
 * errno error for anything else (the caller words it).
 */
export function makeClaim(metaDir: string, claimPath: string, who: OwnerInput, leaseMs: number): Made | null {
  const s = sharedOwner(who);
  // A new link inherits the owner file's mtime: a packer that held nothing for a while refreshes it
  // first, or its new claim would be born looking as old as its last heartbeat.
  if (s && (s.touched === null || performance.now() - s.touched.mono > leaseMs / 4) && !touchShared(s, 0, leaseMs)) return null;
  if (s) {
    try {
      return linkClaim(s.path, claimPath, s.id) ? { owner: s.owner, id: s.id, shared: s } : null;
    } catch (e) {
      // ENOENT: the run dir went away, or our owner file's name did (then a private file works).
      if (errno(e) === 'ENOENT' && !fs.existsSync(metaDir)) return null;
      if (errno(e) !== 'ENOENT' && !NO_SHARED_LINK.has(errno(e) ?? '')) throw e;
    }
  }
  const owner = newOwner(who);
  const tmp = path.join(metaDir, `.claim.tmp-${process.pid}-${prefix}-${next()}`);
  try {
    fs.writeFileSync(tmp, ownerText(owner), { flag: 'wx' });
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
  try {
    const st = fs.statSync(tmp, { bigint: true });
    const id = idOf(st, owner.token);
    return linkClaim(tmp, claimPath, id) ? { owner, id, shared: null } : null;
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* gone with the run dir */
    }
  }
}

// --- reading a claim ---

export interface Stamped {
  owner: ClaimOwner | null;
  /** The heartbeat's mtime: the owner file's (also for an old-style claim dir, its owner.json's, else the dir's). */
  mtimeMs: number;
  id: FileId;
}

const buf = Buffer.allocUnsafe(16 * 1024);

function readAll(fd: number): string {
  let n = 0;
  // A short read of a regular file is its end: one read for an owner file, not a second for EOF.
  for (let want = buf.length, r = want; r === want && n < buf.length; n += r, want = buf.length - n) r = fs.readSync(fd, buf, n, want, n);
  if (n >= buf.length) return fs.readFileSync(fd, 'utf8');
  return buf.toString('utf8', 0, n);
}

/**
 * Owner, heartbeat and identity through one descriptor. On NFS, open() revalidates the cached
 * attributes (close-to-open), so the mtime is the server's current one. Null when there is no claim.
 */
export function readClaim(claimPath: string): Stamped | null {
  return withFd(claimPath, 'r', (fd) => {
    const st = fs.fstatSync(fd, { bigint: true });
    if (st.isDirectory()) {
      const inner = withFd(path.join(claimPath, 'owner.json'), 'r', (f) => ({ mtimeMs: fs.fstatSync(f).mtimeMs, text: readAll(f) }));
      const owner = parseOwner(inner?.text ?? null);
      return { owner, mtimeMs: inner?.mtimeMs ?? Number(st.mtimeMs), id: idOf(st, owner?.token ?? null) };
    }
    const owner = parseOwner(readAll(fd));
    return { owner, mtimeMs: Number(st.mtimeMs), id: idOf(st, owner?.token ?? null) };
  });
}

/** The claim path's identity as the file server sees it now (open revalidates on NFS). */
export function claimIdNow(claimPath: string): FileId | null {
  return readClaim(claimPath)?.id ?? null;
}

/** Heartbeat a claim with its own owner file: rewrite one byte through the claim, if it is still `id`. */
export function touchPrivate(claimPath: string, id: FileId): boolean {
  return (
    withFd(claimPath, 'r+', (fd) => {
      const st = fs.fstatSync(fd, { bigint: true });
      if (st.isDirectory() || !sameFile(idOf(st, parseOwner(readAll(fd))?.token ?? null), id)) return false;
      fs.writeSync(fd, '{', 0, 'utf8');
      return true;
    }) ?? false
  );
}

// --- removing a claim ---

export function asideName(p: string, why: string): string {
  return `${p}.${why}-${process.pid}-${prefix}${next()}`;
}

/** Remove a claim (file, or an old-style dir) that nobody else can reach any more. */
export function removeAside(p: string): void {
  try {
    fs.unlinkSync(p);
    return;
  } catch (e) {
    if (errno(e) === 'ENOENT') return;
  }
  try {
    // An old-style claim dir: usually owner.json alone.
    fs.unlinkSync(path.join(p, 'owner.json'));
    fs.rmdirSync(p);
    return;
  } catch {
    /* something else in it: walk it */
  }
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    /* a leftover is harmless; `themis doctor` lists it */
  }
}

/**
 * Put a claim we moved aside by mistake back, unless the path was taken again meanwhile (then its
 * owner sees the loss at its next status write or heartbeat). A file goes back by link, which
 * fails on an existing name, where rename would silently replace the new claim.
 */
function putBack(aside: string, claimPath: string): void {
  try {
    if (fs.lstatSync(aside).isDirectory()) {
      fs.renameSync(aside, claimPath); // fails onto a non-empty dir or a file
      return;
    }
    fs.linkSync(aside, claimPath);
  } catch {
    /* taken again */
  }
  removeAside(aside);
}

/**
 * Rename the claim aside if (and only if) it is `id`, then delete it. Between our look and the
 * rename another process could have replaced the claim, so the moved file is checked again and
 * put back when it was not the one we meant.
 */
export function moveClaimAside(claimPath: string, id: FileId, why: string, pinned = false): boolean {
  const aside = asideName(claimPath, why);
  try {
    fs.renameSync(claimPath, aside);
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw new ThemisError('IO', `cannot move claim ${claimPath} aside: ${describeFsError(e)}`, { cause: e });
  }
  if (!(pinned ? isPinnedFile(aside, id, false) : sameFile(claimIdNow(aside), id))) {
    putBack(aside, claimPath);
    return false;
  }
  removeAside(aside);
  return true;
}

/**
 * Is `p` the inode `id` of a shared owner file? Its inode cannot be freed and reused while the
 * packer keeps it open, so the inode number alone is its identity: no need to read the token.
 * `revalidate` opens the path (on NFS, open revalidates a cached name; stat may not), except on
 * a local file system, where a name lookup is always current.
 */
export function isPinnedFile(p: string, id: FileId, revalidate: boolean): boolean {
  return pinnedState(p, id, revalidate) === 'ours';
}

/**
 * As isPinnedFile, telling "not ours" (`gone`: no such name, or another inode) from "could not
 * look" (`unknown`: EIO, EMFILE, an NFS timeout). A heartbeat must not give up a claim, and kill
 * its step, over the second; a status write must not go ahead on it.
 */
export function pinnedState(p: string, id: FileId, revalidate: boolean): 'ours' | 'gone' | 'unknown' {
  let st: fs.BigIntStats;
  try {
    if (revalidate && !lookupsCoherent(p)) {
      const fd = fs.openSync(p, 'r');
      try {
        st = fs.fstatSync(fd, { bigint: true });
      } finally {
        fs.closeSync(fd);
      }
    } else {
      st = fs.lstatSync(p, { bigint: true });
    }
  } catch (e) {
    const code = errno(e);
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : 'unknown';
  }
  return String(st.ino) === id.ino && String(st.dev) === id.dev ? 'ours' : 'gone';
}
