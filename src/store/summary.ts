import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import { isCompleted, isRunStatus, type RunStatus } from '../model/status.js';
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

export type SummaryRead =
  | {
      ok: true;
      /** Runs the summary covers, with their final status. */
      covered: Map<number, NonNullable<SummaryEntry['final']>>;
      /** The newest entry of every run the summary mentions (covered or not). */
      newest: Map<number, SummaryEntry>;
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

/** Record one entry, keeping the newest per run (an X wins a tie: it is the cautious answer). */
function note(newest: Map<number, SummaryEntry>, id: number, e: SummaryEntry): void {
  const had = newest.get(id);
  if (had === undefined || e.rev > had.rev || (e.rev === had.rev && e.final === null)) newest.set(id, e);
}

/** Parse one file into `newest`; returns a problem, or 'done' when it ends with a D line. */
export function parseSummaryFile(file: string, text: string, createdAt: string, known: (id: number) => boolean, newest: Map<number, SummaryEntry>): string | 'done' | null {
  const lines = text.split('\n');
  // The text after the last newline is a line its writer did not finish: it says nothing.
  lines.pop();
  if (lines.length === 0) return null; // created, header not written yet: nothing recorded
  let done = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const cut = raw.lastIndexOf('\t');
    const where = `${file}:${i + 1}`;
    if (cut < 0 || hashOf(raw.slice(0, cut)) !== raw.slice(cut + 1)) return `${where} is damaged (its check does not match)`;
    const f = raw.slice(0, cut).split('\t');
    if (i === 0) {
      if (f[0] !== MAGIC) return `${where} is not a themis summary`;
      if (f[1] !== String(SUMMARY_FORMAT)) return `${file} has summary format ${f[1]}, not ${SUMMARY_FORMAT} (older or newer themis)`;
      if (f[2] !== createdAt) return `${file} belongs to another ensemble (created ${f[2]}, this one ${createdAt})`;
      continue;
    }
    if (done) return `${where}: an entry after the writer's last line`;
    const kind = f[0];
    if (kind === 'D' && f.length === 1) {
      done = true;
      continue;
    }
    const id = Number(f[1]);
    const rev = Number(f[2]);
    if (!Number.isSafeInteger(id) || !Number.isSafeInteger(rev) || rev < 0) return `${where}: bad run id or revision`;
    if (!known(id)) return `${where}: run ${id} is not in the ensemble's index`;
    if (kind === 'X' && f.length === 3) {
      note(newest, id, { rev, final: null });
      continue;
    }
    if (kind !== 'F' || f.length !== 6) return `${where}: unknown entry`;
    const status = f[3]!;
    const step = Number(f[4]);
    if (!isRunStatus(status) || !isCompleted(status) || !Number.isSafeInteger(step)) return `${where}: not a final status`;
    let reason: string | null = null;
    if (f[5] !== '') {
      try {
        reason = JSON.parse(f[5]!) as string;
      } catch {
        return `${where}: bad reason`;
      }
    }
    note(newest, id, { rev, final: { status, step, reason } });
  }
  return done ? 'done' : null;
}

/**
 * Read the whole summary. `known` says whether a run id is in the index (an entry for any other
 * run means the summary is not this ensemble's as it is now). A file removed while we read (doctor
 * folding it into the base) makes us read them all again.
 */
export function readSummary(setupDir: string, ensembleCreatedAt: string, known: (id: number) => boolean): SummaryRead {
  const dir = summaryDir(setupDir);
  for (let attempt = 0; ; attempt++) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.log') && !n.startsWith('.'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') names = [];
      else return { ok: false, problem: `cannot list ${dir}: ${describeFsError(e)}`, files: 0 };
    }
    const newest = new Map<number, SummaryEntry>();
    const complete: string[] = [];
    let vanished = false;
    for (const name of names) {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'latin1');
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
    const covered = new Map<number, NonNullable<SummaryEntry['final']>>();
    for (const [id, e] of newest) if (e.final !== null) covered.set(id, e.final);
    return { ok: true, covered, newest, files: names.length, complete };
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
  const parts = [headerLine(ensembleCreatedAt)];
  for (const r of runs) parts.push(isCompleted(r.status) ? finalLine(r.id, r.rev, r.status, r.step, r.reason) : obsoleteLine(r.id, r.rev));
  parts.push(DONE_LINE);
  const tmp = tempPathFor(file);
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeSync(fd, parts.join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ThemisError('IO', `cannot write ${file}: ${describeFsError(e)}`, { cause: e });
  }
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
