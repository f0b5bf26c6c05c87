import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import { setupPaths } from './layout.js';
import { deadHere, thisProcess } from './proc.js';

interface LockOwner {
  host: string;
  pid: number;
  pidStart: string | null;
  pidNs?: string | null;
  at: string;
  command: string;
}

/**
 * Take the ensemble's write lock (`write.lock`, a mkdir, atomic on NFS) so `gen --resume`, `add`
 * and `clear` never interleave. A lock left by a dead process on this host is broken; one held
 * elsewhere is reported with who holds it. Returns the release function.
 */
export function acquireWriteLock(setupDir: string, command: string): () => void {
  const lock = setupPaths(setupDir).writeLock;
  const owner = path.join(lock, 'owner.json');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.mkdirSync(lock);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new ThemisError('IO', `cannot create ${lock}: ${describeFsError(e)}`, { cause: e });
      let held: LockOwner | null = null;
      try {
        held = JSON.parse(fs.readFileSync(owner, 'utf8')) as LockOwner;
      } catch {
        held = null;
      }
      if (held && deadHere(held) && attempt === 0) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      const who = held ? `\`themis ${held.command}\` (pid ${held.pid} on ${held.host}, since ${held.at})` : 'another themis command';
      throw new ThemisError('STATE', `${who} is changing this ensemble (${lock} exists); wait for it to finish, or if it died, remove ${lock} and retry`);
    }
    const me: LockOwner = { ...thisProcess(), at: new Date().toISOString(), command };
    fs.writeFileSync(owner, JSON.stringify(me) + '\n');
    return () => fs.rmSync(lock, { recursive: true, force: true });
  }
  throw new ThemisError('STATE', `cannot take ${lock}; remove it if no themis command is running and retry`);
}
