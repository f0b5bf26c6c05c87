/**
 * Messages between the packer and its launcher (the native `themis-spawner`, or the Node fallback
 * `launcher-child.ts`), on the launcher's stdin and stdout, and the launcher's journal.
 *
 * Packer to launcher: every field ends with a NUL byte (argv, environment and paths cannot hold
 * one, so nothing needs escaping), counts before lists:
 *   `I graceMs journalPath` (first, once; an empty path: no journal)
 *   · `S key runId step attempt timeoutMs cwd logName logSpare nArgv argv… nEnv K=V…`
 *   · `K key reason` · `Q` (stop every step, then exit). Closing stdin means the packer is gone.
 * Launcher to packer, one line each: `R pid` (ready) · `S key pid` (started) · `E key <ExitRecord JSON>`.
 *
 * The journal (`<setup>/packers/<packerId>.journal`, see src/store/journal.ts) is opened once
 * with O_APPEND and gets one line per write(2): `S key <StepStartRecord JSON>` right after a step
 * was forked (before `S key pid` goes to the packer) and `E key <ExitRecord JSON>` when it ended
 * (before `E` goes to the packer), also after the packer died. A line after a short write (full
 * disk) starts with a newline, so the torn one never swallows it. Keys never contain a space.
 */

import type { ExitRecord, StepStartRecord, StopReason } from '../store/records.js';

export type { ExitRecord, StepStartRecord, StopReason } from '../store/records.js';

export interface SpawnRequest {
  /** Unique for the packer's whole life: `<runId>:<step>:<attempt>:<seq>`; no spaces. */
  key: string;
  runId: number;
  step: number;
  attempt: number;
  argv: string[];
  cwd: string;
  /** Added to the launcher's own environment (which is the packer's). */
  env: Record<string, string>;
  logName: string;
  /**
   * An empty file `gen` made for the log (`.themis/log.spare`; '' when none): linked into place as
   * the log instead of creating one, since creating a file is the costly metadata operation.
   */
  logSpare: string;
  /** 0 = no limit. */
  timeoutMs: number;
}

export type ParentMessage = { t: 'init'; graceMs: number; journal: string } | { t: 'spawn'; req: SpawnRequest } | { t: 'kill'; key: string; reason: StopReason } | { t: 'shutdown' };

export type ChildMessage = { t: 'ready'; pid: number } | { t: 'started'; key: string; pid: number } | { t: 'exit'; key: string; exit: ExitRecord };

const NUL = '\0';

function noNul(what: string, s: string): string {
  if (s.includes(NUL)) throw new Error(`${what} contains a NUL byte: ${JSON.stringify(s)}`);
  return s;
}

/** One packer-to-launcher message, as the bytes to write. */
export function encodeParent(msg: ParentMessage): string {
  switch (msg.t) {
    case 'init':
      return `I${NUL}${Math.max(0, Math.round(msg.graceMs))}${NUL}${noNul('journal path', msg.journal)}${NUL}`;
    case 'kill':
      return `K${NUL}${msg.key}${NUL}${msg.reason}${NUL}`;
    case 'shutdown':
      return `Q${NUL}`;
    case 'spawn': {
      const r = msg.req;
      const env = Object.entries(r.env).map(([k, v]) => noNul(`environment variable ${k}`, `${k}=${v}`));
      const fields = [
        'S',
        r.key,
        String(r.runId),
        String(r.step),
        String(r.attempt),
        String(Math.max(0, Math.round(r.timeoutMs))),
        noNul('cwd', r.cwd),
        noNul('log name', r.logName),
        noNul('log spare', r.logSpare),
        String(r.argv.length),
        ...r.argv.map((a) => noNul('argument', a)),
        String(env.length),
        ...env,
      ];
      return fields.join(NUL) + NUL;
    }
  }
}

/** Incremental reader of packer-to-launcher messages (the Node launcher's side). */
export class ParentDecoder {
  private buf = '';

  /** Feed a chunk; returns the complete messages it finished. Throws on a malformed message. */
  push(chunk: string): ParentMessage[] {
    this.buf += chunk;
    const out: ParentMessage[] = [];
    let pos = 0;
    const field = (): string | null => {
      const end = this.buf.indexOf(NUL, pos);
      if (end < 0) return null;
      const f = this.buf.slice(pos, end);
      pos = end + 1;
      return f;
    };
    for (;;) {
      const start = pos;
      const m = this.one(field);
      if (m === null) {
        pos = start;
        break;
      }
      out.push(m);
    }
    this.buf = this.buf.slice(pos);
    return out;
  }

  private one(field: () => string | null): ParentMessage | null {
    const t = field();
    if (t === null) return null;
    if (t === 'Q') return { t: 'shutdown' };
    if (t === 'I') {
      const g = field();
      const journal = g === null ? null : field();
      return journal === null ? null : { t: 'init', graceMs: Number(g), journal };
    }
    if (t === 'K') {
      const key = field();
      const reason = key === null ? null : field();
      return reason === null ? null : { t: 'kill', key: key!, reason: reason as StopReason };
    }
    if (t !== 'S') throw new Error(`unknown launcher message ${JSON.stringify(t)}`);
    const f: string[] = [];
    for (let i = 0; i < 9; i++) {
      const x = field();
      if (x === null) return null;
      f.push(x);
    }
    const argv: string[] = [];
    for (let i = 0, n = Number(f[8]); i < n; i++) {
      const x = field();
      if (x === null) return null;
      argv.push(x);
    }
    const nEnv = field();
    if (nEnv === null) return null;
    const env: Record<string, string> = {};
    for (let i = 0, n = Number(nEnv); i < n; i++) {
      const kv = field();
      if (kv === null) return null;
      const eq = kv.indexOf('=');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const [key, runId, step, attempt, timeoutMs, cwd, logName, logSpare] = f as [string, string, string, string, string, string, string, string];
    return { t: 'spawn', req: { key, runId: Number(runId), step: Number(step), attempt: Number(attempt), timeoutMs: Number(timeoutMs), cwd, logName, logSpare, argv, env } };
  }
}

/** One launcher-to-packer message, as a line. */
export function encodeChild(msg: ChildMessage): string {
  if (msg.t === 'ready') return `R ${msg.pid}\n`;
  if (msg.t === 'started') return `S ${msg.key} ${msg.pid}\n`;
  return `E ${msg.key} ${JSON.stringify(msg.exit)}\n`;
}

/** Parse one launcher-to-packer line (without its newline); null when it is not one. */
export function decodeChild(line: string): ChildMessage | null {
  const sp = line.indexOf(' ', 2);
  if (line.startsWith('R ')) return { t: 'ready', pid: Number(line.slice(2)) };
  if (sp < 0) return null;
  const key = line.slice(2, sp);
  if (line.startsWith('S ')) return { t: 'started', key, pid: Number(line.slice(sp + 1)) };
  if (line.startsWith('E ')) {
    try {
      return { t: 'exit', key, exit: JSON.parse(line.slice(sp + 1)) as ExitRecord };
    } catch {
      return null;
    }
  }
  return null;
}

/** One journal line: `S key <start JSON>\n` or `E key <exit JSON>\n`. */
export function encodeJournal(kind: 'S' | 'E', key: string, record: StepStartRecord | ExitRecord): string {
  return `${kind} ${key} ${JSON.stringify(record)}\n`;
}
