import { readSmallTextSync } from './atomic.js';
import { statusFileOf } from './layout.js';
import type { IndexEntry } from './run-index.js';
import { readRunState } from './scan.js';

/** What a scan of the queue needs of one run: its status and step, or why it cannot be read. */
export type StatusPeek = { id: number; dir: string; status: string; step: number } | { id: number; problem: string };

const STATUS_RE = /^\{\s*"format":\s*1,\s*"id":\s*(\d+),\s*"status":\s*"([a-z]+)",\s*"step":\s*(\d+),/;

/**
 * A run's status and step without parsing its whole record: statuses are written by themis with a
 * fixed key order, so the head of the file says it. Parsing every history of 100,000 runs at
 * each rescan would cost the packer hundreds of MB; anything unexpected takes the full parse.
 */
export function peekStatus(entry: IndexEntry): StatusPeek {
  let text: string | null = null;
  try {
    text = readSmallTextSync(statusFileOf(entry.dir));
  } catch {
    /* missing or unreadable: the full reader says which */
  }
  if (text !== null) {
    const m = STATUS_RE.exec(text);
    if (m && Number(m[1]) === entry.id) return { id: entry.id, dir: entry.dir, status: m[2]!, step: Number(m[3]) };
  }
  const full = readRunState(entry);
  if (full.status === null) return { id: entry.id, problem: full.problem ?? 'no status' };
  return { id: entry.id, dir: entry.dir, status: full.status.status, step: full.status.step };
}
