import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { writeFileAtomicSync } from './atomic.js';
import { setupPaths } from './layout.js';

/** One run of the index: its id and its directory (absolute once resolved). */
export interface IndexEntry {
  id: number;
  dir: string;
}

const HEAD = '{"id":';
const MID = ',"dir":"';

/** A line as formatIndexBatch writes it, `{"id":N,"dir":"D"}` with a plain D; null for anything else. */
function plainEntry(line: string, base: string): IndexEntry | null {
  if (!line.startsWith(HEAD) || !line.endsWith('"}')) return null;
  let id = 0;
  let i = HEAD.length;
  for (; i < line.length; i++) {
    const c = line.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    id = id * 10 + c;
  }
  if (i === HEAD.length || i - HEAD.length > 15 || !line.startsWith(MID, i)) return null;
  const dir = line.slice(i + MID.length, -2);
  if (dir === '' || dir.includes('"') || dir.includes('\\') || DOT_SEGMENT.test(dir)) return null;
  return { id, dir: dir.charCodeAt(0) === 47 ? dir : `${base}/${dir}` };
}
/** A directory that path.resolve would change: `.`/`..` segments, doubled or trailing slashes. */
const DOT_SEGMENT = /(^|\/)\.\.?(\/|$)|\/\/|\/$/;

/**
 * The index maps run ids to run directories. It is a folder of batch files, one per `gen`/`add`
 * (`index/000001.jsonl`), each written atomically, so adding runs never rewrites old entries and a
 * reader never sees half a batch. Directories are stored relative to the ensemble root when inside it.
 */
export function readIndex(setupDir: string, root: string): IndexEntry[] {
  const { indexDir } = setupPaths(setupDir);
  let names: string[];
  try {
    names = fs
      .readdirSync(indexDir)
      .filter((n) => /^\d{6}\.jsonl$/.test(n))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const entries: IndexEntry[] = [];
  const base = path.resolve(root);
  for (const name of names) {
    const file = path.join(indexDir, name);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line === '') continue;
      // The lines formatIndexBatch writes, read without JSON.parse and path.resolve (100,000 of
      // them on every `themis status`); anything else takes the general way.
      const plain = plainEntry(line, base);
      if (plain !== null) {
        entries.push(plain);
        continue;
      }
      let e: { id: number; dir: string };
      try {
        e = JSON.parse(line);
      } catch {
        throw new ThemisError('FORMAT', `${file}:${i + 1}: corrupt index line; run \`themis doctor\``);
      }
      entries.push({ id: e.id, dir: path.resolve(root, e.dir) });
    }
  }
  return entries;
}

/** Next batch number and next run id, from what is on disk. */
export function nextIndexPosition(setupDir: string, root: string): { batch: number; nextId: number } {
  const { indexDir } = setupPaths(setupDir);
  let batch = 1;
  try {
    const names = fs
      .readdirSync(indexDir)
      .filter((n) => /^\d{6}\.jsonl$/.test(n))
      .sort();
    if (names.length > 0) batch = Number.parseInt(names[names.length - 1]!.slice(0, 6), 10) + 1;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const entries = readIndex(setupDir, root);
  const nextId = entries.reduce((m, e) => Math.max(m, e.id), 0) + 1;
  return { batch, nextId };
}

/** Serialise a batch of entries (dirs made relative to root where they lie inside it). */
export function formatIndexBatch(root: string, entries: readonly IndexEntry[]): string {
  return (
    entries
      .map((e) => {
        const rel = path.relative(root, e.dir);
        const dir = rel.startsWith('..') || path.isAbsolute(rel) ? e.dir : rel;
        return JSON.stringify({ id: e.id, dir });
      })
      .join('\n') + (entries.length ? '\n' : '')
  );
}

export function writeIndexBatch(setupDir: string, root: string, batch: number, entries: readonly IndexEntry[]): void {
  const file = setupPaths(setupDir).indexFile(batch);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomicSync(file, formatIndexBatch(root, entries));
  writeRangeStamp(file, root, entries);
}

/**
 * A batch written straight into `file` (gen, inside its staging directory: the whole tree is
 * renamed into place at the end), with its range stamp.
 */
export function writeIndexBatchAt(file: string, root: string, entries: readonly IndexEntry[]): void {
  fs.writeFileSync(file, formatIndexBatch(root, entries));
  writeRangeStamp(file, root, entries);
}

/**
 * The range stamp of an index batch (`state/index-stamps/000001.range` for `index/000001.jsonl`): "this batch is the
 * runs first..first+count-1, each in <prefix><id>", with the batch file's size, inode, mtime and
 * ctime when it was written. A reader that finds the file with that very stat (the quick check
 * make, rsync and git's index use) takes the stamp for the file's 100,000 lines: no pass over
 * them. Any change to the batch (an edit by hand, a rewrite: a new inode or mtime) makes the
 * stamp stale, and the lines are read. Only batches gen and add write in the plain form get one;
 * a themis that predates stamps ignores them.
 */
interface RangeStamp {
  format: 1;
  first: number;
  count: number;
  prefix: string;
  size: string;
  ino: string;
  mtimeNs: string;
  ctimeNs: string;
}

/** A directory prefix that JSON writes as is and path.resolve leaves alone (before the id). */
function plainPrefix(prefix: string): boolean {
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return false;
  }
  return !prefix.startsWith('/') && !DOT_SEGMENT.test(`${prefix}x`);
}

/** `<setup>/index/NNNNNN.jsonl` -> `<setup>/state/index-stamps/NNNNNN.range`. */
const stampFileOf = (batchFile: string): string => path.join(setupPaths(path.dirname(path.dirname(batchFile))).indexStampsDir, path.basename(batchFile).replace(/\.jsonl$/, '.range'));

/** The stat a stamp holds (bigint: nanoseconds and 64-bit inodes). */
function statKey(file: string): Pick<RangeStamp, 'size' | 'ino' | 'mtimeNs' | 'ctimeNs'> {
  const st = fs.statSync(file, { bigint: true });
  return { size: String(st.size), ino: String(st.ino), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

/** The stamp's range, if `entries` are consecutive ids in `<prefix><id>` under root with one plain prefix. */
function rangeOf(root: string, entries: readonly IndexEntry[]): { first: number; count: number; prefix: string } | null {
  if (entries.length === 0) return null;
  const first = entries[0]!.id;
  const base = path.resolve(root);
  const dir0 = entries[0]!.dir;
  const tail = String(first);
  if (!dir0.startsWith(`${base}/`) || !dir0.endsWith(tail)) return null;
  const prefix = dir0.slice(base.length + 1, dir0.length - tail.length);
  if (!plainPrefix(prefix)) return null;
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k]!;
    if (e.id !== first + k || e.dir !== `${base}/${prefix}${e.id}`) return null;
  }
  return { first, count: entries.length, prefix };
}

function writeRangeStamp(batchFile: string, root: string, entries: readonly IndexEntry[]): void {
  const stamp = stampFileOf(batchFile);
  const range = rangeOf(root, entries);
  if (range === null) {
    fs.rmSync(stamp, { force: true });
    return;
  }
  const body: RangeStamp = { format: 1, ...range, ...statKey(batchFile) };
  fs.mkdirSync(path.dirname(stamp), { recursive: true });
  writeFileAtomicSync(stamp, `${JSON.stringify(body)}\n`);
}

/** The stamp of `batchFile` if it exists and its stat still matches; else null (read the lines). */
function freshStamp(batchFile: string): RangeStamp | null {
  let stamp: RangeStamp;
  try {
    stamp = JSON.parse(fs.readFileSync(stampFileOf(batchFile), 'utf8')) as RangeStamp;
  } catch {
    return null;
  }
  if (stamp?.format !== 1 || !Number.isInteger(stamp.first) || !Number.isInteger(stamp.count) || stamp.first < 0 || stamp.count < 1 || stamp.first + stamp.count > 0x7fffffff) return null;
  if (typeof stamp.prefix !== 'string' || !plainPrefix(stamp.prefix)) return null;
  let now: ReturnType<typeof statKey>;
  try {
    now = statKey(batchFile);
  } catch {
    return null;
  }
  return now.size === stamp.size && now.ino === stamp.ino && now.mtimeNs === stamp.mtimeNs && now.ctimeNs === stamp.ctimeNs ? stamp : null;
}

/**
 * The index as a table read without an object or a string per run: what a scan needs when most
 * runs are answered from the summary of finished runs (`themis status` on 100,000 runs reads the
 * directories of only the runs it opens). Same content and order as readIndex.
 */
export interface IndexTable {
  readonly count: number;
  /** The entries' run ids, in index order (`count` of them). */
  readonly ids: Int32Array;
  idAt(i: number): number;
  /** Flags by run id, 1 for the ids the index has (what the summary's reader checks ranges against). */
  readonly known: Uint8Array;
  /** The run directory of the i-th entry (absolute), parsed on demand. */
  entryAt(i: number): IndexEntry;
  has(id: number): boolean;
}

const NL = 0x0a;
const HEAD_BYTES = Buffer.from(HEAD);

const MID_BYTES = Buffer.from(MID);

function startsWithMid(buf: Buffer, pos: number): boolean {
  for (let k = 0; k < MID_BYTES.length; k++) if (buf[pos + k] !== MID_BYTES[k]) return false;
  return true;
}

/** Whether buf holds HEAD at pos (byte by byte: a native compare costs more than 6 bytes do). */
function startsWithHead(buf: Buffer, pos: number): boolean {
  for (let k = 0; k < HEAD_BYTES.length; k++) if (buf[pos + k] !== HEAD_BYTES[k]) return false;
  return true;
}

/** Grow a typed array to hold at least `n` (doubling). */
function grown<T extends Int32Array | Uint8Array>(a: T, n: number, make: (n: number) => T): T {
  if (n <= a.length) return a;
  const b = make(Math.max(n, a.length * 2));
  b.set(a);
  return b;
}

export function readIndexTable(setupDir: string, root: string): IndexTable {
  const { indexDir } = setupPaths(setupDir);
  let names: string[];
  try {
    names = fs
      .readdirSync(indexDir)
      .filter((n) => /^\d{6}\.jsonl$/.test(n))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    names = [];
  }
  const base = path.resolve(root);
  let stamped: Set<string>;
  try {
    stamped = new Set(fs.readdirSync(setupPaths(setupDir).indexStampsDir));
  } catch {
    stamped = new Set();
  }
  // Bytes, not text: the plain lines are ASCII, and a 100,000-run index is 3 MB to walk with
  // memchr (Buffer.indexOf) and a digit loop, into typed arrays (no object, no string per run).
  const bufs: Buffer[] = [];
  const files: string[] = [];
  // Per file, the index of its first entry (and its range stamp, if fresh); per entry, where its line starts.
  const firstOf: number[] = [];
  const stamps: (RangeStamp | null)[] = [];
  let ids = new Int32Array(1024);
  let starts = new Int32Array(1024);
  let seen = new Uint8Array(1024);
  let count = 0;
  for (const name of names) {
    const file = path.join(indexDir, name);
    const stamp = stamped.has(name.replace(/\.jsonl$/, '.range')) ? freshStamp(file) : null;
    files.push(file);
    firstOf.push(count);
    stamps.push(stamp);
    if (stamp !== null) {
      bufs.push(Buffer.alloc(0));
      ids = grown(ids, count + stamp.count, (n) => new Int32Array(n));
      starts = grown(starts, count + stamp.count, (n) => new Int32Array(n));
      const last = stamp.first + stamp.count - 1;
      for (let k = 0; k < stamp.count; k++) ids[count + k] = stamp.first + k;
      count += stamp.count;
      seen = grown(seen, last + 1, (n) => new Uint8Array(n));
      seen.fill(1, stamp.first, last + 1);
      continue;
    }
    const buf = fs.readFileSync(file);
    bufs.push(buf);
    const want = count + Math.ceil(buf.length / 20) + 1;
    ids = grown(ids, want, (n) => new Int32Array(n));
    starts = grown(starts, want, (n) => new Int32Array(n));
    // One pass over the bytes: a plain line's id, then on to its newline (a loop over bytes beats
    // a native indexOf per line here).
    const len = buf.length;
    let pos = 0;
    let lineNo = 0;
    while (pos < len) {
      lineNo++;
      let id = -1;
      let i = pos;
      if (startsWithHead(buf, pos)) {
        i = pos + HEAD_BYTES.length;
        let n = 0;
        for (; i < len && i < pos + HEAD_BYTES.length + 9; i++) {
          const c = buf[i]! - 48;
          if (c < 0 || c > 9) break;
          n = n * 10 + c;
        }
        if (i > pos + HEAD_BYTES.length && buf[i] === 0x2c) {
          id = n;
          // `,"dir":"` holds no newline: look for it after them.
          if (startsWithMid(buf, i)) i += MID_BYTES.length;
        }
      }
      let nl = i;
      while (nl < len && buf[nl] !== NL) nl++;
      if (nl > pos) {
        if (id < 0) {
          // Not the plain form: the general parser decides (and names a corrupt line).
          const line = buf.toString('utf8', pos, nl);
          try {
            id = (JSON.parse(line) as { id: number }).id;
          } catch {
            throw new ThemisError('FORMAT', `${file}:${lineNo}: corrupt index line; run \`themis doctor\``);
          }
          if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) throw new ThemisError('FORMAT', `${file}:${lineNo}: index line with a bad run id; run \`themis doctor\``);
        }
        if (count >= ids.length) {
          ids = grown(ids, count + 1, (n) => new Int32Array(n));
          starts = grown(starts, count + 1, (n) => new Int32Array(n));
        }
        ids[count] = id;
        starts[count] = pos;
        count++;
        if (id >= seen.length) seen = grown(seen, id + 1, (n) => new Uint8Array(n));
        seen[id] = 1;
      }
      pos = nl + 1;
    }
  }
  /** The file holding entry i: the last whose first entry is at most i. */
  const fileAt = (i: number): number => {
    let lo = 0;
    let hi = firstOf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (firstOf[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  return {
    count,
    ids: ids.subarray(0, count),
    idAt: (i) => ids[i]!,
    known: seen,
    has: (id) => id >= 0 && id < seen.length && seen[id] === 1,
    entryAt: (i) => {
      const f = fileAt(i);
      const stamp = stamps[f];
      if (stamp) return { id: ids[i]!, dir: `${base}/${stamp.prefix}${ids[i]!}` };
      const buf = bufs[f]!;
      let end = buf.indexOf(NL, starts[i]!);
      if (end < 0) end = buf.length;
      const line = buf.toString('utf8', starts[i]!, end);
      const plain = plainEntry(line, base);
      if (plain !== null) return plain;
      let e: { id: number; dir: string };
      try {
        e = JSON.parse(line);
      } catch {
        throw new ThemisError('FORMAT', `${files[f]}: corrupt index line; run \`themis doctor\``);
      }
      return { id: e.id, dir: path.resolve(root, e.dir) };
    },
  };
}
