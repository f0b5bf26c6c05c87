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
  for (const name of names) {
    const file = path.join(indexDir, name);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line === '') return;
      let e: { id: number; dir: string };
      try {
        e = JSON.parse(line);
      } catch {
        throw new ThemisError('FORMAT', `${file}:${i + 1}: corrupt index line; run \`themis doctor\``);
      }
      entries.push({ id: e.id, dir: path.resolve(root, e.dir) });
    });
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
