import fs from 'node:fs';
import path from 'node:path';
import { RUN_META_DIR, setupPaths } from './layout.js';
import type { ExitRecord, LaunchRef, StatusRecord, StepStartRecord } from './records.js';

/**
 * Packer journals: `<setup>/packers/<packerId>.journal`, one per packer, appended only by that
 * packer's launcher, one line per write(2):
 *
 *   S <key> <StepStartRecord JSON>     right after the step was forked
 *   E <key> <ExitRecord JSON>          when it ended (before the packer is told)
 *
 * Keys are unique for the packer's whole life, and a `running` status names its launch
 * (`status.launch = {packer, key}`), so a successor finds what became of the step without one
 * file per launch. The last line may be torn (a launcher killed mid-write, a full disk): it is
 * ignored until it is complete. Lines that do not parse are skipped.
 *
 * Reading is cached per journal: a successor that consults the same dead packer's journal for
 * many runs (journals grow to tens of MB) reads each byte once, then only what was appended.
 */

export interface JournalEntry {
  start: StepStartRecord | null;
  exit: ExitRecord | null;
}

/** A key's lines, unparsed (JSON is parsed only for the keys looked up). */
interface RawEntry {
  s?: string;
  e?: string;
}

/** Add the complete lines of `text` to `into`; a last line without its newline is left out. */
function addLines(text: string, into: Map<string, RawEntry>): void {
  let from = 0;
  for (;;) {
    const nl = text.indexOf('\n', from);
    if (nl < 0) return;
    const t = text.charCodeAt(from);
    if ((t === 0x53 /* S */ || t === 0x45) /* E */ && text.charCodeAt(from + 1) === 0x20) {
      const sp = text.indexOf(' ', from + 2);
      if (sp > from + 2 && sp < nl) {
        const key = text.slice(from + 2, sp);
        let raw = into.get(key);
        if (!raw) into.set(key, (raw = {}));
        if (t === 0x53) raw.s = text.slice(sp + 1, nl);
        else raw.e = text.slice(sp + 1, nl);
      }
    }
    from = nl + 1;
  }
}

function parseRecord<T>(json: string | undefined): T | null {
  if (json === undefined) return null;
  try {
    const v = JSON.parse(json) as unknown;
    return v !== null && typeof v === 'object' ? (v as T) : null;
  } catch {
    return null;
  }
}

function entryOf(raw: RawEntry | undefined): JournalEntry | null {
  if (!raw) return null;
  const start = parseRecord<StepStartRecord>(raw.s);
  const exit = parseRecord<ExitRecord>(raw.e);
  return start === null && exit === null ? null : { start, exit };
}

/** Pure: every key of a journal's text with its start and exit records (a torn last line is ignored). */
export function parseJournal(text: string): Map<string, JournalEntry> {
  const raw = new Map<string, RawEntry>();
  addLines(text, raw);
  const out = new Map<string, JournalEntry>();
  for (const [key, r] of raw) {
    const e = entryOf(r);
    if (e) out.set(key, e);
  }
  return out;
}

interface Cached {
  ino: number;
  dev: number;
  /** Bytes read and parsed: always just after a newline. */
  offset: number;
  entries: Map<string, RawEntry>;
}

const CACHE_LIMIT = 16;
const CHUNK = 4 << 20;
const cache = new Map<string, Cached>();

/** Read what was appended to `file` since the cached offset; null when the file is gone. */
function refresh(file: string): Cached | null {
  let fd: number;
  try {
    // open() (not stat) so that on NFS the attributes, hence the size, are revalidated.
    fd = fs.openSync(file, 'r');
  } catch {
    cache.delete(file);
    return null;
  }
  try {
    const st = fs.fstatSync(fd);
    let c = cache.get(file);
    if (!c || c.ino !== st.ino || c.dev !== st.dev || st.size < c.offset) {
      c = { ino: st.ino, dev: st.dev, offset: 0, entries: new Map() };
    }
    cache.delete(file);
    cache.set(file, c); // most recently used last
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    let rest: Buffer = Buffer.alloc(0);
    let pos = c.offset;
    while (pos < st.size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, st.size - pos));
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      const data = rest.length > 0 ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
      const nl = data.lastIndexOf(0x0a);
      if (nl < 0) {
        rest = Buffer.from(data);
        continue;
      }
      addLines(data.toString('utf8', 0, nl + 1), c.entries);
      c.offset += nl + 1;
      rest = Buffer.from(data.subarray(nl + 1));
    }
    return c;
  } finally {
    fs.closeSync(fd);
  }
}

/** The start and exit records of `key` in the journal `file` (null: the file or the key is not there). */
export function readJournalEntry(file: string, key: string): JournalEntry | null {
  // An exit is final: once seen, no need to look at the file again.
  const known = cache.get(file)?.entries.get(key);
  if (known?.e !== undefined) {
    const e = entryOf(known);
    if (e?.exit) return e;
  }
  const c = refresh(file);
  return c === null ? null : entryOf(c.entries.get(key));
}

/** Forget what was cached of `file` (after removing it), or of every journal. */
export function forgetJournal(file?: string): void {
  if (file === undefined) cache.clear();
  else cache.delete(file);
}

export function journalFile(setupDir: string, packerId: string): string {
  return setupPaths(setupDir).packerJournal(packerId);
}

/** The journal record of one launch; both null when nothing was journaled (yet). */
export function launchEntry(setupDir: string, launch: LaunchRef): JournalEntry {
  return readJournalEntry(journalFile(setupDir, launch.packer), launch.key) ?? { start: null, exit: null };
}

/**
 * What is known of the step a `running` status is about: its start (pid, host) and, if it ended,
 * its exit. A status written by an older themis (no `launch` field) is looked up in the per-run
 * files those versions wrote (`.themis/step.pid.json`, `.themis/exit-<step>-<attempt>.json`).
 */
export function stepRecords(setupDir: string, runDir: string, status: StatusRecord): JournalEntry {
  if (status.launch) return launchEntry(setupDir, status.launch);
  if (status.launch === null) return { start: null, exit: null };
  const meta = path.join(runDir, RUN_META_DIR);
  const read = <T>(name: string): T | null => {
    try {
      return parseRecord<T>(fs.readFileSync(path.join(meta, name), 'utf8'));
    } catch {
      return null;
    }
  };
  const start = read<StepStartRecord>('step.pid.json');
  return {
    start: start && start.step === status.step && start.attempt === status.attempt ? start : null,
    exit: read<ExitRecord>(`exit-${status.step}-${status.attempt}.json`),
  };
}

/** Packer ids that have a journal in the setup directory. */
export function listJournals(setupDir: string): string[] {
  try {
    return fs
      .readdirSync(setupPaths(setupDir).packersDir)
      .filter((n) => n.endsWith('.journal') && !n.startsWith('.'))
      .map((n) => n.slice(0, -'.journal'.length))
      .sort();
  } catch {
    return [];
  }
}

/** Remove a packer's journal (its packer ended cleanly, or nothing refers to it any more). */
export function removeJournal(setupDir: string, packerId: string): void {
  const file = journalFile(setupDir, packerId);
  forgetJournal(file);
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone */
  }
}
