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
}

/**
 * The index as a table read without an object or a string per run: what a scan needs when most
 * runs are answered from the summary of finished runs (`themis status` on 100,000 runs reads the
 * directories of only the runs it opens). Same content and order as readIndex.
 */
export interface IndexTable {
  readonly count: number;
  idAt(i: number): number;
  /** The run directory of the i-th entry (absolute), parsed on demand. */
  entryAt(i: number): IndexEntry;
  has(id: number): boolean;
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
  const texts: string[] = [];
  const files: string[] = [];
  const ids: number[] = [];
  // Per entry: which file, where its line starts and ends, and its line number (for errors).
  const fileOf: number[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  let seen = new Uint8Array(1024);
  for (const name of names) {
    const file = path.join(indexDir, name);
    const text = fs.readFileSync(file, 'utf8');
    const f = texts.length;
    texts.push(text);
    files.push(file);
    let pos = 0;
    let lineNo = 0;
    while (pos < text.length) {
      let nl = text.indexOf('\n', pos);
      if (nl < 0) nl = text.length;
      lineNo++;
      if (nl > pos) {
        let id = -1;
        if (text.startsWith(HEAD, pos)) {
          id = 0;
          let i = pos + HEAD.length;
          for (; i < nl; i++) {
            const c = text.charCodeAt(i) - 48;
            if (c < 0 || c > 9) break;
            id = id * 10 + c;
          }
          if (i === pos + HEAD.length) id = -1;
        }
        if (id < 0) {
          // Not the plain form: the general parser decides (and names a corrupt line).
          const line = text.slice(pos, nl);
          try {
            id = (JSON.parse(line) as { id: number }).id;
          } catch {
            throw new ThemisError('FORMAT', `${file}:${lineNo}: corrupt index line; run \`themis doctor\``);
          }
        }
        ids.push(id);
        fileOf.push(f);
        starts.push(pos);
        ends.push(nl);
        if (id >= seen.length) {
          const grown = new Uint8Array(Math.max(id + 1, seen.length * 2));
          grown.set(seen);
          seen = grown;
        }
        if (id >= 0) seen[id] = 1;
      }
      pos = nl + 1;
    }
  }
  return {
    count: ids.length,
    idAt: (i) => ids[i]!,
    has: (id) => id >= 0 && id < seen.length && seen[id] === 1,
    entryAt: (i) => {
      const line = texts[fileOf[i]!]!.slice(starts[i]!, ends[i]!);
      const plain = plainEntry(line, base);
      if (plain !== null) return plain;
      let e: { id: number; dir: string };
      try {
        e = JSON.parse(line);
      } catch {
        throw new ThemisError('FORMAT', `${files[fileOf[i]!]}: corrupt index line; run \`themis doctor\``);
      }
      return { id: e.id, dir: path.resolve(root, e.dir) };
    },
  };
}
