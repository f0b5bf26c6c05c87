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
 * Write a file that is rewritten again and again (status.json) atomically without creating a new
 * inode each time: creating a file is the expensive metadata operation on most file systems (here
 * 150-250 µs; milliseconds on a loaded Lustre or GPFS), link and rename are cheap. The version that
 * a write replaces is kept as `.<name>.spare` and the next write fills that inode again:
 *   rename spare -> my temp (exclusive: one writer gets it), overwrite it,
 *   link target -> spare (keep the current version's inode), rename my temp -> target.
 * Readers see the old content or the new, never a torn file, except a reader still holding a
 * descriptor of a version two writes old: `readJsonSync` and the scan read again on a parse error.
 */
export function writeFileRecycledSync(file: string, data: string): void {
  const spare = sparePathFor(file);
  const mine = tempPathFor(file);
  let fd: number | undefined;
  try {
    let reused = true;
    try {
      fs.renameSync(spare, mine);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      reused = false;
    }
    let oldSize = 0;
    if (reused) {
      fd = fs.openSync(mine, fs.constants.O_WRONLY);
      // Only ours if no other name reaches it: with several writers at once, a spare can also be
      // the current version or another writer's kept one. Then it is left alone for a new inode.
      const st = fs.fstatSync(fd);
      if (st.nlink !== 1) {
        fs.closeSync(fd);
        fd = undefined;
        fs.unlinkSync(mine);
        reused = false;
      }
      oldSize = st.size;
    }
    fd ??= fs.openSync(mine, 'wx', 0o666);
    // Overwrite, then cut the tail: truncating to zero first would free the file's blocks (a
    // discard on SSD-backed mounts) and make ext4 flush the rewrite at close (auto_da_alloc).
    const written = fs.writeSync(fd, data, 0, 'utf8');
    if (reused && oldSize > written) fs.ftruncateSync(fd, written);
    fs.closeSync(fd);
    fd = undefined;
    // The current version's inode becomes the next spare: linked before it is replaced (after,
    // it has no name left). For a moment it is both target and spare (nlink 2), so a writer
    // racing us leaves it alone. EEXIST (a racing writer put a spare back first), ENOENT (no
    // current version) or no hard links here: nothing to keep, the old inode is simply freed.
    try {
      fs.linkSync(file, spare);
    } catch {
      /* see above */
    }
    fs.renameSync(mine, file);
  } catch (e) {
    abandon(fd, mine);
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

/** The inode a recycled write keeps for the next one. */
export function sparePathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.spare`);
}

/** A failed write: close its descriptor if still open and remove its temp file, quietly. */
function abandon(fd: number | undefined, tmp: string): void {
  if (fd !== undefined) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already failing */
    }
  }
  try {
    fs.unlinkSync(tmp);
  } catch {
    /* nothing to clean */
  }
}

export function writeJsonAtomicSync(file: string, value: unknown, options: { fsync?: boolean } = {}): void {
  writeFileAtomicSync(file, JSON.stringify(value, null, 1) + '\n', options);
}

/** Read and parse a JSON file; null when it does not exist. Corrupt content is a FORMAT error. */
export function readJsonSync<T>(file: string): T | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ThemisError('IO', `cannot read ${file}: ${describeFsError(e)}`, { cause: e });
  }
  // A recycled file (writeFileRecycledSync) read through a descriptor whose inode its writer reused
  // meanwhile: the name has a whole version, so read it again (a few times: writers may be quick).
  for (let retry = 0; retry < 3; retry++) {
    try {
      return JSON.parse(text) as T;
    } catch {
      try {
        text = fs.readFileSync(file, 'utf8');
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
