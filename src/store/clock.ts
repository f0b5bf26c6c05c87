import fs from 'node:fs';
import path from 'node:path';
import { setupPaths } from './layout.js';

/**
 * The file server's clock. Heartbeat ages are `now - mtime`, and mtimes are stamped by the server
 * that holds the files, so "now" must be the server's too: a node whose clock is 5 minutes off (or
 * jumps) would otherwise judge every claim stale, or none. We write to a probe file and read back
 * the mtime the server gave it, then extrapolate with the local monotonic clock for about a second.
 */

interface Offset {
  /** serverMs - localMonotonicMs at the last probe. */
  offset: number;
  probedAt: number;
}

const cache = new Map<string, Offset>();
const PROBE_EVERY_MS = 1000;

/** Monotonic local milliseconds (never jumps with NTP or a user's `date -s`). */
function monoNow(): number {
  return performance.timeOrigin + performance.now();
}

function probe(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'w');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    // Not recursive: a mistyped --setup-dir must not grow a directory tree.
    fs.mkdirSync(path.dirname(file));
    fd = fs.openSync(file, 'w');
  }
  try {
    // A real write: the server stamps the mtime (utimes would stamp our local clock instead).
    fs.writeSync(fd, String(process.pid));
    return fs.fstatSync(fd).mtimeMs;
  } finally {
    fs.closeSync(fd);
  }
}

/** Epoch ms on the file server of `setupDir`; probes `state/clock-probe` at most about once a second. */
export function fileServerNow(setupDir: string): number {
  const file = setupPaths(setupDir).clockProbe;
  const local = monoNow();
  const known = cache.get(file);
  if (known && local - known.probedAt < PROBE_EVERY_MS) return local + known.offset;
  let server: number;
  try {
    server = probe(file);
  } catch {
    // A read-only or vanished setup dir: keep the last known offset (or trust the local clock)
    // so that read-only commands like `themis status` still answer.
    return local + (known?.offset ?? Date.now() - local);
  }
  const after = monoNow();
  cache.set(file, { offset: server - after, probedAt: after });
  return server;
}
