import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import { isCompleted, type RunStatus } from '../model/status.js';
import { tempPathFor } from './atomic.js';
import { setupPaths } from './layout.js';
import { hostName } from './proc.js';

/**
 * The summary of finished runs: what lets `themis status` and a packer's rescan skip the status
 * files of runs that cannot have changed. The run directories stay the truth; the summary only says
 * "run 17 was `successful` at step 0 as of its status revision 4", and a reader trusts an entry only
 * while nothing newer about that run was recorded. Files only, in `state/summary/`:
 *
 *   <writer>.log   appended by one process each (a packer, or one `requeue`/`doctor`), never shared:
 *                  appends from several hosts to one file are not atomic on NFS
 *   base.log       written whole (temp + rename) by `themis doctor` from a full scan
 *
 * Every file starts with `themis-summary <TAB> <format> <TAB> <ensemble createdAt>`; every line
 * ends with a hash of the rest of the line. Entries:
 *
 *   F id rev status step reason   the run reached a final status with this revision (written after that status)
 *   X id rev                      the run's status changes at this revision; earlier entries are obsolete
 *                                 (written, and synced, before that status is written)
 *   D                             a one-off writer's last line: every status it meant to write is written
 *   R first count rev status step runs first..first+count-1, each an F with no reason (compacted)
 *   Y first count rev             runs first..first+count-1, each an X (compacted)
 *
 * The newest entry of a run (highest revision; an X wins a tie) decides: an F covers the run, an X
 * does not. Statuses carry a revision (`rev`, one more at each write), so a reader needs no clock.
 * Losing entries only uncovers runs (their status files are read), so F lines need no sync; an X
 * line must be on disk before its status is, or a requeued run would still look finished.
 *
 * Anything unexpected (an unknown format, a bad hash, an entry for a run the index does not know)
 * makes the whole summary unusable: the caller scans every run and says why. A torn last line (a
 * writer killed mid-append) is not damage: it covers nothing.
 */

export const SUMMARY_FORMAT = 1;
const MAGIC = 'themis-summary';
const BASE = 'base.log';
/** File names of one-off writers (`requeue`, `doctor`) end so; a packer's is `<packer id>.log`. */
export const ONE_OFF_SUFFIX = '.once.log';

/** What the summary says of one run. */
export interface SummaryEntry {
  rev: number;
  /** null: the run changed after it finished (or may have): read its status file. */
  final: { status: RunStatus; step: number; reason: string | null } | null;
}

export type FinalEntry = NonNullable<SummaryEntry['final']>;

/**
 * Which run ids the index has: a predicate, or a table of flags by id (1 = known), which a range
 * line of 100,000 runs checks without a call per run.
 */
export type KnownRuns = ((id: number) => boolean) | Uint8Array;

function knowsAll(known: KnownRuns, first: number, count: number): number {
  if (typeof known === 'function') {
    for (let id = first; id < first + count; id++) if (!known(id)) return id;
    return -1;
  }
  // Flags are 0 or 1: the first 0 in the range (a native search) is the first unknown run.
  if (first + count > known.length) {
    for (let id = first; id < first + count; id++) if (known[id] !== 1) return id;
    return -1;
  }
  const at = known.subarray(first, first + count).indexOf(0);
  return at < 0 ? -1 : first + at;
}

const knows = (known: KnownRuns, id: number): boolean => (typeof known === 'function' ? known(id) : known[id] === 1);

/**
 * The newest entry per run, in typed arrays indexed by run id (ids are small dense integers):
 * reading a 100,000-run summary allocates no object per run. A run's final entry is a number into
 * a table of them; those without a reason are shared.
 */
export class SummaryEntries {
  private revs = new Float64Array(1024).fill(-1);
  /** Per run: 0 for none (or an X), else 1 + its final entry's place in `table`. */
  private finalOf = new Int32Array(1024);
  private readonly table: FinalEntry[] = [];
  private readonly slotOf = new Map<FinalEntry, number>();
  /** Shared final entries without a reason, by status (FINAL_NAMES' order) and step. */
  private readonly shared: FinalEntry[][] = [];
  private count = 0;

  /** Runs per final entry (slot 0: runs whose newest entry is an X). */
  private readonly slotCounts: number[] = [0];
  /** The highest run id with an entry: a range above it is all new. */
  private maxId = -1;

  private reserve(id: number): void {
    if (id < this.revs.length) return;
    const n = Math.max(id + 1, this.revs.length * 2);
    const revs = new Float64Array(n).fill(-1);
    revs.set(this.revs);
    this.revs = revs;
    const finalOf = new Int32Array(n);
    finalOf.set(this.finalOf);
    this.finalOf = finalOf;
  }

  /** Keep `e` if it is the run's newest (an X, final = 0, wins a tie: the cautious answer). */
  private keep(id: number, rev: number, final: number): void {
    const had = this.revs[id]!;
    if (had < 0) this.count++;
    if (had < 0 || rev > had || (rev === had && final === 0)) {
      if (had >= 0) this.slotCounts[this.finalOf[id]!]!--;
      this.slotCounts[final]!++;
      this.revs[id] = rev;
      this.finalOf[id] = final;
    }
    if (id > this.maxId) this.maxId = id;
  }

  /** One run's entry; `final` null for an X. */
  note(id: number, rev: number, final: FinalEntry | null): void {
    this.reserve(id);
    this.keep(id, rev, final === null ? 0 : this.slot(final));
  }

  /** Runs first..first+count-1 alike (an R or Y line). */
  noteRange(first: number, count: number, rev: number, final: FinalEntry | null): void {
    const last = first + count - 1;
    this.reserve(last);
    const f = final === null ? 0 : this.slot(final);
    if (first > this.maxId) {
      // No entry for any of them yet (ranges come in id order): fill, natively.
      this.revs.fill(rev, first, last + 1);
      this.finalOf.fill(f, first, last + 1);
      this.count += count;
      this.slotCounts[f]! += count;
      this.maxId = last;
      return;
    }
    for (let id = first; id <= last; id++) this.keep(id, rev, f);
  }

  private slot(final: FinalEntry): number {
    let at = this.slotOf.get(final);
    if (at === undefined) {
      at = this.table.push(final);
      this.slotCounts.push(0);
      // Only the shared ones come again; a final entry with a reason is one run's.
      if (final.reason === null) this.slotOf.set(final, at);
    }
    return at;
  }

  /** A final entry; those without a reason are shared, by status and step (no string, no object per line). */
  final(status: RunStatus, step: number, reason: string | null): FinalEntry {
    if (reason !== null) return { status, step, reason };
    const k = FINAL_NAMES.indexOf(status as (typeof FINAL_NAMES)[number]);
    const byStep = this.shared[k] ?? [];
    this.shared[k] = byStep;
    let f = byStep[step];
    if (f === undefined) {
      f = Object.freeze({ status, step, reason: null });
      byStep[step] = f;
    }
    return f;
  }

  /** Runs mentioned at all (covered or not). */
  get mentioned(): number {
    return this.count;
  }

  /** Every run's newest entry, by id. */
  records(): SummaryRecord[] {
    const out: SummaryRecord[] = [];
    for (let id = 0; id < this.revs.length; id++) {
      const rev = this.revs[id]!;
      if (rev >= 0) out.push({ id, rev, final: this.finalAt(id) });
    }
    return out;
  }

  private finalAt(id: number): FinalEntry | null {
    const f = id >= 0 && id < this.finalOf.length ? this.finalOf[id]! : 0;
    return f === 0 ? null : this.table[f - 1]!;
  }

  covered(): CoveredRuns {
    return new CoveredRuns(this.finalOf, this.table, this.slotCounts.slice());
  }

  newest(id: number): SummaryEntry | undefined {
    const rev = id >= 0 && id < this.revs.length ? this.revs[id]! : -1;
    return rev < 0 ? undefined : { rev, final: this.finalAt(id) };
  }
}

/** The runs the summary covers, with their final status (a read-only view of SummaryEntries). */
export class CoveredRuns {
  /** How many runs it covers. */
  readonly size: number;

  constructor(
    private readonly finalOf: Int32Array,
    private readonly table: readonly FinalEntry[],
    /** Runs per final entry, table[k - 1] for k >= 1. */
    private readonly slotCounts: readonly number[],
  ) {
    let n = 0;
    for (let k = 1; k < slotCounts.length; k++) n += slotCounts[k]!;
    this.size = n;
  }

  get(id: number): FinalEntry | undefined {
    const f = id >= 0 && id < this.finalOf.length ? this.finalOf[id]! : 0;
    return f === 0 ? undefined : this.table[f - 1];
  }

  has(id: number): boolean {
    return id >= 0 && id < this.finalOf.length && this.finalOf[id] !== 0;
  }

  /** Covered runs by final status, without a look at each run. */
  countsByStatus(): Record<FinalEntry['status'], number> {
    const out = { successful: 0, failed: 0, killed: 0, aborted: 0 } as Record<FinalEntry['status'], number>;
    for (let k = 1; k < this.slotCounts.length; k++) out[this.table[k - 1]!.status] += this.slotCounts[k]!;
    return out;
  }

  /** Covered runs whose final status is one of `statuses`, in id order (a pass only when there are any). */
  idsWith(statuses: ReadonlySet<string> | null, limit = Number.POSITIVE_INFINITY): number[] {
    let want = false;
    for (let k = 1; k < this.slotCounts.length; k++) if (this.slotCounts[k]! > 0 && (statuses === null || statuses.has(this.table[k - 1]!.status))) want = true;
    const out: number[] = [];
    if (!want) return out;
    const wanted = this.table.map((f) => statuses === null || statuses.has(f.status));
    for (let id = 0; id < this.finalOf.length && out.length < limit; id++) {
      const f = this.finalOf[id]!;
      if (f !== 0 && wanted[f - 1]) out.push(id);
    }
    return out;
  }

  /** The places in `ids` of the runs it does not cover (one tight pass over typed arrays). */
  uncoveredIn(ids: Int32Array): number[] {
    const out: number[] = [];
    const finalOf = this.finalOf;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id >= finalOf.length || finalOf[id] === 0) out.push(i);
    }
    return out;
  }

  *[Symbol.iterator](): IterableIterator<[number, FinalEntry]> {
    for (let id = 0; id < this.finalOf.length; id++) {
      const f = this.finalOf[id]!;
      if (f !== 0) yield [id, this.table[f - 1]!];
    }
  }
}

export type SummaryRead =
  | {
      ok: true;
      /** Runs the summary covers, with their final status. */
      covered: CoveredRuns;
      files: number;
      /** One-off writers' files that ended with their `D` line (doctor may fold them into the base). */
      complete: string[];
    }
  | { ok: false; problem: string; files: number };

export function summaryDir(setupDir: string): string {
  return setupPaths(setupDir).summaryDir;
}

/** FNV-1a over the line's text: cheap, and enough to tell a damaged line from a whole one. */
function hashOf(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

function line(fields: (string | number)[]): string {
  const text = fields.join('\t');
  return `${text}\t${hashOf(text)}\n`;
}

export function headerLine(ensembleCreatedAt: string): string {
  return line([MAGIC, SUMMARY_FORMAT, ensembleCreatedAt]);
}

export function finalLine(id: number, rev: number, status: RunStatus, step: number, reason: string | null): string {
  return line(['F', id, rev, status, step, reason === null ? '' : JSON.stringify(reason)]);
}

export function obsoleteLine(id: number, rev: number): string {
  return line(['X', id, rev]);
}

export const DONE_LINE = line(['D']);

export interface SummaryRecord {
  id: number;
  rev: number;
  /** null: an X entry. */
  final: FinalEntry | null;
}

/**
 * Entries as lines, consecutive runs alike (same revision, same final status and step, no
 * reason; or both X at the same revision) as one range line: a finished ensemble's summary is a
 * few lines, not one per run. `records` must be sorted by id.
 */
export function compactLines(records: readonly SummaryRecord[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < records.length; ) {
    const a = records[i]!;
    let j = i + 1;
    const rangeable = a.final === null || a.final.reason === null;
    if (rangeable) {
      while (j < records.length) {
        const b = records[j]!;
        if (b.id !== a.id + (j - i) || b.rev !== a.rev) break;
        if (a.final === null ? b.final !== null : b.final === null || b.final.reason !== null || b.final.status !== a.final.status || b.final.step !== a.final.step) break;
        j++;
      }
    }
    const n = j - i;
    if (n === 1) out.push(a.final === null ? obsoleteLine(a.id, a.rev) : finalLine(a.id, a.rev, a.final.status, a.final.step, a.final.reason));
    else if (a.final === null) out.push(line(['Y', a.id, n, a.rev]));
    else out.push(line(['R', a.id, n, a.rev, a.final.status, a.final.step]));
    i = j;
  }
  return out;
}

/** Write `text` to `file` whole: temp file, sync, rename. */
function replaceWhole(file: string, text: string): void {
  const tmp = tempPathFor(file);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
}

const FINAL_NAMES = ['successful', 'failed', 'killed', 'aborted'] as const;

/** A non-negative decimal integer in text[from, to), or -1. */
function intAt(text: string, from: number, to: number): number {
  if (to <= from || to - from > 16) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Parse one file into `into`; returns a problem, or 'done' when it ends with a D line. One pass
 * over the text, no substring per field: a base of 100,000 runs parses in a few milliseconds.
 */
export function parseSummaryFile(file: string, text: string, createdAt: string, known: KnownRuns, into: SummaryEntries): string | 'done' | null {
  let pos = 0;
  let lineNo = 0;
  let done = false;
  const header = headerLine(createdAt);
  // Built only for a problem: a string per line would be most of the garbage of a big summary.
  const where = () => `${file}:${lineNo}`;
  for (;;) {
    // The text after the last newline is a line its writer did not finish: it says nothing.
    const nl = text.indexOf('\n', pos);
    if (nl < 0) break;
    lineNo++;
    const cut = nl - 9;
    if (cut < pos || text.charCodeAt(cut) !== 9) return `${where()} is damaged (its check does not match)`;
    let h = 0x811c9dc5;
    for (let i = pos; i < cut; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    if (hexAt(text, cut + 1) !== h >>> 0) return `${where()} is damaged (its check does not match)`;
    if (lineNo === 1) {
      if (!text.startsWith(header, pos)) {
        const f = text.slice(pos, cut).split('\t');
        if (f[0] !== MAGIC) return `${where()} is not a themis summary`;
        if (f[1] !== String(SUMMARY_FORMAT)) return `${file} has summary format ${f[1]}, not ${SUMMARY_FORMAT} (older or newer themis)`;
        return `${file} belongs to another ensemble (created ${f[2]}, this one ${createdAt})`;
      }
      pos = nl + 1;
      continue;
    }
    if (done) return `${where()}: an entry after the writer's last line`;
    const kind = text.charCodeAt(pos);
    if (kind === 0x44 /* D */ && cut === pos + 1) {
      done = true;
      pos = nl + 1;
      continue;
    }
    if (kind === 0x52 /* R */ || kind === 0x59 /* Y */) {
      const problem = parseRange(text, pos, cut, kind === 0x52, known, into);
      if (problem !== null) return `${where()}: ${problem}`;
      pos = nl + 1;
      continue;
    }
    if ((kind !== 0x46 /* F */ && kind !== 0x58) /* X */ || text.charCodeAt(pos + 1) !== 9) return `${where()}: unknown entry`;
    const t1 = text.indexOf('\t', pos + 2);
    const t2 = t1 < 0 || t1 >= cut ? -1 : text.indexOf('\t', t1 + 1);
    const id = intAt(text, pos + 2, t1 < 0 || t1 > cut ? cut : t1);
    const rev = intAt(text, t1 + 1, t2 < 0 || t2 > cut ? cut : t2);
    if (id < 0 || rev < 0) return `${where()}: bad run id or revision`;
    if (!knows(known, id)) return `${where()}: run ${id} is not in the ensemble's index`;
    if (kind === 0x58) {
      if (t2 >= 0 && t2 < cut) return `${where()}: unknown entry`;
      into.note(id, rev, null);
      pos = nl + 1;
      continue;
    }
    const t3 = t2 < 0 ? -1 : text.indexOf('\t', t2 + 1);
    const t4 = t3 < 0 ? -1 : text.indexOf('\t', t3 + 1);
    if (t2 < 0 || t3 < 0 || t4 < 0 || t4 > cut || text.indexOf('\t', t4 + 1) !== cut) return `${where()}: unknown entry`;
    const status = finalStatusAt(text, t2 + 1, t3);
    const step = intAt(text, t3 + 1, t4);
    if (status === null || step < 0) return `${where()}: not a final status`;
    let reason: string | null = null;
    if (cut > t4 + 1) {
      try {
        reason = JSON.parse(text.slice(t4 + 1, cut)) as string;
      } catch {
        return `${where()}: bad reason`;
      }
    }
    into.note(id, rev, into.final(status, step, reason));
    pos = nl + 1;
  }
  return done ? 'done' : null;
}

/** An R or Y line (text[pos, cut)): a range of runs alike. */
function parseRange(text: string, pos: number, cut: number, final: boolean, known: KnownRuns, into: SummaryEntries): string | null {
  const f = text.slice(pos, cut).split('\t');
  if (f.length !== (final ? 6 : 4)) return 'unknown entry';
  const first = intAt(f[1]!, 0, f[1]!.length);
  const count = intAt(f[2]!, 0, f[2]!.length);
  const rev = intAt(f[3]!, 0, f[3]!.length);
  if (first < 0 || count < 1 || rev < 0) return 'bad run range or revision';
  let entry: FinalEntry | null = null;
  if (final) {
    const status = finalStatusAt(f[4]!, 0, f[4]!.length);
    const step = intAt(f[5]!, 0, f[5]!.length);
    if (status === null || step < 0) return 'not a final status';
    entry = into.final(status, step, null);
  }
  const unknown = knowsAll(known, first, count);
  if (unknown >= 0) return `run ${unknown} is not in the ensemble's index`;
  into.noteRange(first, count, rev, entry);
  return null;
}

/** The 8 lowercase hex digits at `at` as a number, or -1. */
function hexAt(text: string, at: number): number {
  let n = 0;
  for (let i = at; i < at + 8; i++) {
    const c = text.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

/** The final status named by text[from, to), without making a string of it; null for anything else. */
function finalStatusAt(text: string, from: number, to: number): RunStatus | null {
  for (const name of FINAL_NAMES) if (to - from === name.length && text.startsWith(name, from)) return name;
  return null;
}

/**
 * Read the whole summary. `known` says whether a run id is in the index (an entry for any other
 * run means the summary is not this ensemble's as it is now). A file removed while we read (doctor
 * folding it into the base) makes us read them all again.
 */
export function readSummary(setupDir: string, ensembleCreatedAt: string, known: KnownRuns): SummaryRead {
  const dir = summaryDir(setupDir);
  for (let attempt = 0; ; attempt++) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.log') && !n.startsWith('.'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') names = [];
      else return { ok: false, problem: `cannot list ${dir}: ${describeFsError(e)}`, files: 0 };
    }
    const newest = new SummaryEntries();
    const complete: string[] = [];
    let vanished = false;
    for (const name of names) {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
          vanished = true;
          break;
        }
        return { ok: false, problem: `cannot read ${file}: ${describeFsError(e)}`, files: names.length };
      }
      const r = parseSummaryFile(file, text, ensembleCreatedAt, known, newest);
      if (r === 'done') {
        if (name !== BASE) complete.push(name);
      } else if (r !== null) return { ok: false, problem: r, files: names.length };
    }
    if (vanished) {
      if (attempt < 3) continue;
      return { ok: false, problem: `${dir} kept changing while it was read`, files: names.length };
    }
    return { ok: true, covered: newest.covered(), files: names.length, complete };
  }
}

/**
 * One process's own summary file, opened on first use and appended with one write per entry (a
 * write to an open file: no metadata operation). A packer's final entries never throw: a summary
 * that cannot be written only costs readers a status file each.
 */
export class SummaryLog {
  private fd: number | null = null;
  private broken = false;
  readonly file: string;

  constructor(
    setupDir: string,
    writer: string,
    private readonly ensembleCreatedAt: string,
  ) {
    this.file = path.join(summaryDir(setupDir), `${writer.replace(/[^\w.+-]/g, '_')}.log`);
  }

  /** The file of one command run (`requeue`, `doctor`): its last line says it finished. */
  static oneOff(setupDir: string, command: string, ensembleCreatedAt: string): SummaryLog {
    return new SummaryLog(setupDir, `${command}-${hostName()}-${process.pid}-${randomBytes(3).toString('hex')}.once`, ensembleCreatedAt);
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const fd = fs.openSync(this.file, 'a', 0o644);
    if (fs.fstatSync(fd).size === 0) fs.writeSync(fd, headerLine(this.ensembleCreatedAt));
    this.fd = fd;
    return fd;
  }

  /** A run reached a final status at revision `rev` (call after that status is written). */
  final(id: number, rev: number, status: RunStatus, step: number, reason: string | null): void {
    if (this.broken) return;
    try {
      fs.writeSync(this.open(), finalLine(id, rev, status, step, reason));
    } catch {
      // A write that failed part way would leave a damaged line before the next one: stop here.
      this.broken = true;
    }
  }

  /** Runs whose status is about to change at these revisions: on disk (synced) before they change. */
  obsolete(entries: readonly { id: number; rev: number }[]): void {
    if (entries.length === 0) return;
    if (this.broken) throw new ThemisError('IO', `cannot write ${this.file}: an earlier write failed; nothing was changed`);
    try {
      const fd = this.open();
      fs.writeSync(fd, entries.map((e) => obsoleteLine(e.id, e.rev)).join(''));
      fs.fsyncSync(fd);
    } catch (e) {
      this.broken = true;
      throw new ThemisError('IO', `cannot write ${this.file}: ${describeFsError(e)}; nothing was changed (the summary must learn of a change before it is made)`, {
        cause: e,
      });
    }
  }

  /**
   * A packer's end: its file rewritten as range lines (see compactLines), whole, so the next reader
   * parses a few lines instead of one per run. Left as it is if it cannot be read back cleanly.
   */
  compact(known: (id: number) => boolean): void {
    const usable = this.fd !== null && !this.broken;
    this.close(false);
    if (!usable) return;
    try {
      const entries = new SummaryEntries();
      const verdict = parseSummaryFile(this.file, fs.readFileSync(this.file, 'utf8'), this.ensembleCreatedAt, known, entries);
      if (verdict !== null) return; // damaged, or not ours to compact: readers judge it as it is
      replaceWhole(this.file, [headerLine(this.ensembleCreatedAt), ...compactLines(entries.records())].join(''));
    } catch {
      /* the appended form is as true, only longer */
    }
  }

  /** A one-off writer's end: every change it announced is made. */
  close(done: boolean): void {
    if (this.fd === null) return;
    try {
      if (done && !this.broken) fs.writeSync(this.fd, DONE_LINE);
    } catch {
      /* without its D line the file is only kept longer */
    }
    try {
      fs.closeSync(this.fd);
    } catch {
      /* nothing left to do */
    }
    this.fd = null;
  }
}

/**
 * Write the base from a full scan (one entry per run: F when final, X otherwise, at the run's
 * revision), then remove the files it makes redundant: those of packers that are gone and those of
 * one-off writers that had finished (`complete`, read before the scan). Files of live packers, and
 * of one-off writers that may still be changing runs, are kept: they may hold entries newer than
 * the scan. Returns the files removed.
 */
export function writeBase(
  setupDir: string,
  ensembleCreatedAt: string,
  runs: readonly { id: number; rev: number; status: RunStatus; step: number; reason: string | null }[],
  removable: readonly string[],
): string[] {
  const dir = summaryDir(setupDir);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, BASE);
  const records = runs.map((r) => ({ id: r.id, rev: r.rev, final: isCompleted(r.status) ? { status: r.status, step: r.step, reason: r.reason } : null })).sort((a, b) => a.id - b.id);
  replaceWhole(file, [headerLine(ensembleCreatedAt), ...compactLines(records), DONE_LINE].join(''));
  const removed: string[] = [];
  for (const name of removable) {
    if (name === BASE || !name.endsWith('.log')) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
      removed.push(name);
    } catch {
      /* gone already */
    }
  }
  return removed;
}

/** The revision a status write gives a record read with `rev` (statuses of older themis have none). */
export function nextRev(status: { rev?: number }): number {
  return (status.rev ?? 0) + 1;
}
