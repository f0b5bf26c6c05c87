import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ThemisError, describeFsError } from '../model/errors.js';

// Unique per process (random, so two hosts with the same pid never collide on a shared file
// system) plus a counter: no random draw per write on the packer's hot path.
const TEMP_PREFIX = `${process.pid}-${randomBytes(4).toString('hex')}`;
let tempCounter = 0;

/** A temp name in the same directory (rename is only atomic within one file system). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${TEMP_PREFIX}-${(tempCounter++).toString(36)}`);
}

/**
 * Write a file atomically: temp file in the same directory, then rename over the target.
 * Readers see the old content or the new, never a torn file. `fsync` is off by default (it costs
 * ~25x here); pass it for records whose loss after a power cut would matter.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, options: { mode?: number; fsync?: boolean } = {}): void {
  const tmp = tempPathFor(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', options.mode ?? 0o666);
    fs.writeFileSync(fd, data);
    if (options.fsync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    abandon(fd, tmp);
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

/**
 * Write a status file (rewritten at every step of a run, by the holder of its claim only)
 * atomically with as few metadata operations as safety allows. On a parallel file system every
 * create, link, rename and unlink is a round trip to the metadata server, and creating a file is
 * the costly one. `gen` leaves an empty spare (`.<name>.spare`) beside each status file; the first
 * write fills it in place and renames it over the file (one open, one rename, no create); later
 * writes create a temp file and rename it (one create, one rename); `trySpare: false` skips the
 * look for a spare when the caller knows it was used. Readers see the old version or
 * the new, never a torn one: the inode a write fills is never one a reader can have open (the
 * spare has no other name; a replaced version is freed, not reused).
 *
 * One writer at a time: the claim guarantees it. (A packer that may have lost its claim checks
 * before it writes; see heartbeat continuity in claim.ts.)
 */
export function writeFileReplacingSync(file: string, data: string, trySpare = true): void {
  const spare = sparePathFor(file);
  let fd: number | undefined;
  let filled: string | null = null;
  try {
    try {
      if (trySpare) fd = fs.openSync(spare, fs.constants.O_WRONLY);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (fd !== undefined) {
      const st = fs.fstatSync(fd);
      // Overwrite, then cut the tail: truncating to zero first would free the file's blocks (a
      // discard on SSD-backed mounts) and make ext4 flush the rewrite at close (auto_da_alloc).
      const written = fs.writeSync(fd, data, 0, 'utf8');
      if (st.size > written) fs.ftruncateSync(fd, written);
      fs.closeSync(fd);
      fd = undefined;
      filled = spare;
    }
  } catch (e) {
    abandon(fd, null);
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
  if (filled === null) {
    writeFileAtomicSync(file, data);
    return;
  }
  try {
    fs.renameSync(filled, file);
  } catch (e) {
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

/** The empty inode gen leaves for a status file's first write. */
export function sparePathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.spare`);
}

/** A failed write: close its descriptor if still open and remove its temp file, quietly. */
function abandon(fd: number | undefined, tmp: string | null): void {
  if (fd !== undefined) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already failing */
    }
  }
  if (tmp === null) return;
  try {
    fs.unlinkSync(tmp);
  } catch {
    /* nothing to clean */
  }
}

export function writeJsonAtomicSync(file: string, value: unknown, options: { fsync?: boolean } = {}): void {
  writeFileAtomicSync(file, JSON.stringify(value, null, 1) + '\n', options);
}

// One buffer for every small read: the packer reads two records per launch, on its one thread.
const SMALL_READ = Buffer.allocUnsafe(16 * 1024);

/**
 * Read a small file whole (a status, a run record): one read into a shared buffer, where
 * readFileSync reads again until it gets nothing back (a system call more per record, thousands
 * per second in a packer). A read that comes back short of the buffer is the file's end; a larger
 * file is read again the usual way. Callers parse what they get and read again on a parse error,
 * so even a short read cut by a signal costs only a retry.
 */
export function readSmallTextSync(file: string): string {
  const fd = fs.openSync(file, 'r');
  let n: number;
  try {
    n = fs.readSync(fd, SMALL_READ, 0, SMALL_READ.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return n < SMALL_READ.length ? SMALL_READ.toString('utf8', 0, n) : fs.readFileSync(file, 'utf8');
}

/** Read and parse a JSON file; null when it does not exist. Corrupt content is a FORMAT error. */
export function readJsonSync<T>(file: string): T | null {
  let text: string;
  try {
    text = readSmallTextSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ThemisError('IO', `cannot read ${file}: ${describeFsError(e)}`, { cause: e });
  }
  // A file torn by a foreign writer, or a version written by an older themis that reused inodes:
  // the name may have a whole version by now, so read it again (a few times).
  for (let retry = 0; retry < 3; retry++) {
    try {
      return JSON.parse(text) as T;
    } catch {
      try {
        text = readSmallTextSync(file);
      } catch {
        break; // judged on what we read
      }
    }
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new ThemisError('FORMAT', `${file} is not valid JSON (truncated or corrupt?): ${(e as Error).message}; run \`themis doctor\``, {
      cause: e,
    });
  }
}

/** Check a record's format version; a newer one means this themis is too old to read it. */
export function checkFormat(file: string, record: { format?: unknown } | null, supported: number): void {
  if (!record || typeof record !== 'object') {
    throw new ThemisError('FORMAT', `${file}: not a themis record`);
  }
  const v = record.format;
  if (typeof v !== 'number') throw new ThemisError('FORMAT', `${file}: missing "format" version; not written by themis?`);
  if (v > supported) {
    throw new ThemisError('FORMAT', `${file} has format version ${v}, newer than this themis understands (${supported}); upgrade themis to read this ensemble`);
  }
}
