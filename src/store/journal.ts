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

/**
 * Where a key's records are in the file: byte offset and length of each JSON (-1: none yet). Only
 * positions are kept, not the text: a successor holding the index of a journal of 100,000 launches
 * keeps a few MB, and parses JSON only for the keys it looks up.
 */
interface Loc {
  s: number;
  sl: number;
  e: number;
  el: number;
  /** Parsed once the exit is known: an exit is final. */
  done?: JournalEntry;
}

/**
 * The part of a launch key that names the status version it was launched from: keys are
 * `<runId>:<step>:<attempt>:<rev>.<seq>`, `rev` being the revision of the run's status on disk
 * when the step was launched (older keys have no `<rev>.`). A packer writes a step's `running`
 * status only once the step has run for a moment (see RUNNING_WRITE_DELAY_MS), so a successor
 * that finds the status still queued looks here for a launch made from exactly that version.
 */
function runRevOf(key: string): string | null {
  const a = key.indexOf(':');
  const last = key.lastIndexOf(':');
  const dot = key.indexOf('.', last);
  if (a < 0 || last <= a || dot < 0) return null;
  return `${key.slice(0, a)}@${key.slice(last + 1, dot)}`;
}

/** Index the complete lines in `buf[0, end)` (which starts at file offset `base`) into `into`. */
function indexLines(buf: Buffer, end: number, base: number, into: Map<string, Loc>, byRunRev?: Map<string, string>): void {
  let pos = 0;
  while (pos < end) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0 || nl >= end) return;
    // Zeros before a line: a hole that NFS write-back left for an earlier append (see refresh).
    while (pos < nl && buf[pos] === 0) pos++;
    const t = buf[pos];
    if ((t === 0x53 /* S */ || t === 0x45) /* E */ && buf[pos + 1] === 0x20) {
      const sp = buf.indexOf(0x20, pos + 2);
      if (sp > pos + 2 && sp < nl) {
        // A string of its own (not a slice of a big one), so the chunk read can be freed.
        const key = buf.toString('utf8', pos + 2, sp);
        let loc = into.get(key);
        if (!loc) {
          loc = { s: -1, sl: 0, e: -1, el: 0 };
          into.set(key, loc);
        }
        if (t === 0x53) {
          loc.s = base + sp + 1;
          loc.sl = nl - sp - 1;
          const rr = byRunRev && runRevOf(key);
          if (rr) byRunRev.set(rr, key); // appended in launch order: the last is the latest
        } else {
          loc.e = base + sp + 1;
          loc.el = nl - sp - 1;
          loc.done = undefined;
        }
      }
    }
    pos = nl + 1;
  }
}

function parseRecord<T>(json: string): T | null {
  try {
    const v = JSON.parse(json) as unknown;
    return v !== null && typeof v === 'object' ? (v as T) : null;
  } catch {
    return null;
  }
}

/** The entry at `loc`, its JSON read by `text(offset, length)`; null when neither record parses. */
function entryAt(loc: Loc | undefined, text: (off: number, len: number) => string): JournalEntry | null {
  if (!loc) return null;
  if (loc.done) return loc.done;
  const start = loc.s < 0 ? null : parseRecord<StepStartRecord>(text(loc.s, loc.sl));
  const exit = loc.e < 0 ? null : parseRecord<ExitRecord>(text(loc.e, loc.el));
  if (start === null && exit === null) return null;
  const entry = { start, exit };
  if (exit !== null) loc.done = entry;
  return entry;
}

/** Pure: every key of a journal's text with its start and exit records (a torn last line is ignored). */
export function parseJournal(text: string): Map<string, JournalEntry> {
  const buf = Buffer.from(text, 'utf8');
  const locs = new Map<string, Loc>();
  indexLines(buf, buf.lastIndexOf(0x0a) + 1, 0, locs);
  const out = new Map<string, JournalEntry>();
  for (const [key, loc] of locs) {
    const e = entryAt(loc, (off, len) => buf.toString('utf8', off, off + len));
    if (e) out.set(key, e);
  }
  return out;
}

interface Cached {
  ino: number;
  dev: number;
  /** Bytes read and indexed: always just after a newline. */
  offset: number;
  entries: Map<string, Loc>;
  /** `<runId>@<rev>` -> the latest key launched from that status version. */
  byRunRev: Map<string, string>;
}

const CACHE_LIMIT = 16;
const CHUNK = 4 << 20;
const cache = new Map<string, Cached>();

/** Index what was appended to the journal open as `fd` since the cached offset. */
function refresh(file: string, fd: number): Cached {
  const st = fs.fstatSync(fd);
  let c = cache.get(file);
  if (!c || c.ino !== st.ino || c.dev !== st.dev || st.size < c.offset) {
    c = { ino: st.ino, dev: st.dev, offset: 0, entries: new Map(), byRunRev: new Map() };
  }
  cache.delete(file);
  cache.set(file, c); // most recently used last
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  let rest: Buffer = Buffer.alloc(0);
  let pos = c.offset;
  // The first hole seen: NFS may write appended data back out of order, so a reader can find
  // zeros where earlier lines will be. Lines after it are indexed now; from the hole's line on,
  // the file is read again next time, so the earlier lines are found once they land.
  let hole = -1;
  while (pos < st.size) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, st.size - pos));
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n <= 0) break;
    pos += n;
    // `data` starts at c.offset: `rest` is what followed the last newline indexed.
    const data = rest.length > 0 ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
    const end = data.lastIndexOf(0x0a) + 1;
    indexLines(data, end, c.offset, c.entries, c.byRunRev);
    const zero = hole < 0 ? data.indexOf(0) : -1;
    if (zero >= 0 && zero < end) hole = c.offset + data.lastIndexOf(0x0a, zero) + 1;
    c.offset += end;
    rest = Buffer.from(data.subarray(end));
  }
  if (hole >= 0) c.offset = hole;
  return c;
}

/** The start and exit records of `key` in the journal `file` (null: the file or the key is not there). */
export function readJournalEntry(file: string, key: string): JournalEntry | null {
  // An exit is final: once seen, no need to look at the file again.
  const known = cache.get(file)?.entries.get(key)?.done;
  if (known) return known;
  let fd: number;
  try {
    // open() (not stat) so that on NFS the attributes, hence the size, are revalidated.
    fd = fs.openSync(file, 'r');
  } catch {
    cache.delete(file);
    return null;
  }
  try {
    const c = refresh(file, fd);
    return entryAt(c.entries.get(key), (off, len) => {
      const b = Buffer.allocUnsafe(len);
      const n = fs.readSync(fd, b, 0, len, off);
      return b.toString('utf8', 0, n);
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** The cached index of one journal (refreshed with what was appended), or null when it cannot be read. */
function indexOf(file: string): Cached | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    return refresh(file, fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The latest launch made from a run's status revision `rev`, in any packer's journal; null when
 * none was. Any packer's: a packer that took a dead one's run over (adopting its launch) may itself
 * have died before writing a status, and started the step again from the same revision. Latest by
 * the start records' times: a successor starts only after its predecessor's claim went stale, a
 * whole lease later, far more than clocks of one cluster differ.
 */
export function launchFrom(setupDir: string, runId: number, rev: number): LaunchRef | null {
  let best: LaunchRef | null = null;
  let bestAt = '';
  for (const id of listJournals(setupDir)) {
    const key = indexOf(setupPaths(setupDir).packerJournal(id))?.byRunRev.get(`${runId}@${rev}`);
    if (key === undefined) continue;
    const plus = id.indexOf('+');
    const packer = journalPacker(id);
    const ref: LaunchRef = plus < 0 ? { packer, key } : { packer, key, node: id.slice(plus + 1) };
    const at = launchEntry(setupDir, ref).start?.startedAt ?? '';
    if (best === null || at > bestAt) {
      best = ref;
      bestAt = at;
    }
  }
  return best;
}

/** The (run, status revision) pairs a journal holds launches from: what doctor checks before removing it. */
export function launchedFrom(setupDir: string, id: string): { runId: number; rev: number }[] {
  const c = indexOf(setupPaths(setupDir).packerJournal(id));
  if (c === null) return [];
  return [...c.byRunRev.keys()].map((k) => {
    const at = k.indexOf('@');
    return { runId: Number(k.slice(0, at)), rev: Number(k.slice(at + 1)) };
  });
}

/**
 * A run whose stale claim was just broken, with the launch its dead owner made from this very
 * status adopted: a `running` status naming that launch (step and attempt from its start record),
 * so it is settled from the journal like any orphan instead of being run again. Unchanged when the
 * owner launched nothing from it.
 */
export function adoptLaunch(setupDir: string, status: StatusRecord): StatusRecord {
  if (status.status !== 'queued') return status;
  const launch = launchFrom(setupDir, status.id, status.rev ?? 0);
  if (launch === null) return status;
  const start = launchEntry(setupDir, launch).start;
  return {
    ...status,
    status: 'running',
    step: start?.step ?? status.step,
    attempt: start?.attempt ?? status.attempt,
    startedAt: start?.startedAt ?? status.startedAt,
    host: start?.host ?? status.host,
    launch,
  };
}

/** Forget what was cached of `file` (after removing it), or of every journal. */
export function forgetJournal(file?: string): void {
  if (file === undefined) cache.clear();
  else cache.delete(file);
}

/**
 * A journal's id: the packer's own (`<packer>`), or that of its launcher on another node
 * (`<packer>+<node>`). Each journal has exactly one writer, so appends never interleave, also on
 * file systems where O_APPEND is not atomic between clients (NFS).
 */
export function journalId(packerId: string, node?: string | null): string {
  return node ? `${packerId}+${node}` : packerId;
}

/** The packer a journal id belongs to. */
export function journalPacker(id: string): string {
  const plus = id.indexOf('+');
  return plus < 0 ? id : id.slice(0, plus);
}

export function journalFile(setupDir: string, packerId: string, node?: string | null): string {
  return setupPaths(setupDir).packerJournal(journalId(packerId, node));
}

/** The journal record of one launch; both null when nothing was journaled (yet). */
export function launchEntry(setupDir: string, launch: LaunchRef): JournalEntry {
  return readJournalEntry(journalFile(setupDir, launch.packer, launch.node), launch.key) ?? { start: null, exit: null };
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

/** Ids of the journals in the setup directory (`<packer>` and `<packer>+<node>`). */
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

/** Remove one journal by id (its packer ended cleanly, or nothing refers to it any more). */
export function removeJournal(setupDir: string, id: string): void {
  const file = setupPaths(setupDir).packerJournal(id);
  forgetJournal(file);
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone */
  }
}

/** Remove a packer's journals: its own and those of its launchers on other nodes. */
export function removePackerJournals(setupDir: string, packerId: string): void {
  for (const id of listJournals(setupDir)) if (journalPacker(id) === packerId) removeJournal(setupDir, id);
}
