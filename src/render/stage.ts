import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ThemisError, describeFsError } from '../model/errors.js';
import { RUN_META_DIR, setupPaths } from '../store/layout.js';
import { deadHere, thisProcess } from '../store/proc.js';

const OWNER = 'owner.json';

/**
 * Staging for atomic `gen`/`add`: every run directory and the setup directory are written under
 * one hidden staging directory next to the setup directory, then renamed into place only when
 * all of it was written. A failure before the commit removes the staging directory and leaves
 * nothing; a failure during the commit removes what was already moved.
 */
export class Stage {
  readonly dir: string;
  /** The staged setup directory (renamed onto the real one by `commitSetup`). */
  readonly setup: string;
  private readonly tree: string;
  private readonly abs: string;
  /** Final paths renamed into place so far (removed again by `rollback`). */
  readonly committed: string[] = [];
  /** The outermost parent directory the stage had to create (removed when the gen fails). */
  private readonly createdParent: string | null;
  /** Bits the process umask removes from new files' modes (restored with chmod where needed). */
  readonly umask: number;

  constructor(
    setupDir: string,
    private readonly root: string,
  ) {
    this.dir = setupPaths(setupDir).stagingPrefix + randomBytes(4).toString('hex');
    try {
      // mkdir -p returns the first directory it made: a parent of the setup directory that a failed gen must remove again.
      this.createdParent = fs.mkdirSync(path.dirname(this.dir), { recursive: true }) ?? null;
      fs.mkdirSync(this.dir);
    } catch (e) {
      throw new ThemisError('IO', `cannot create the staging directory ${this.dir}: ${describeFsError(e)}`, { cause: e });
    }
    // Who is staging, so a later gen can remove what a killed one left behind.
    fs.writeFileSync(path.join(this.dir, OWNER), JSON.stringify(thisProcess()));
    this.setup = path.join(this.dir, 'setup');
    this.tree = path.join(this.dir, 'tree');
    this.abs = path.join(this.dir, 'abs');
    const probe = path.join(this.dir, 'umask-probe');
    fs.writeFileSync(probe, '', { mode: 0o777 });
    this.umask = 0o777 & ~fs.statSync(probe).mode;
    fs.unlinkSync(probe);
  }

  /** Where a run directory is staged: mirrored under tree/ (inside the root) or abs/ (elsewhere). */
  stagedPath(finalDir: string): string {
    const rel = path.relative(this.root, finalDir);
    if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) return path.join(this.tree, rel);
    return path.join(this.abs, finalDir);
  }

  /** Write a file with the source's mode bits, as far as the user's umask allows them. */
  writeFile(file: string, data: string | Uint8Array, mode: number): void {
    fs.writeFileSync(file, data, { mode });
    this.fixMode(file, mode);
  }

  /**
   * open() applied the umask: give back only the owner's execute bit it may have taken (a script
   * must stay runnable), never what the umask withholds (a 0666 source under umask 077 is 0600,
   * not world-writable). Also for copies made by copyFile, which copies the mode as it is.
   */
  fixMode(file: string, mode: number): void {
    const want = (mode & ~this.umask & 0o7777) | (mode & 0o100);
    if ((fs.statSync(file).mode & 0o7777) !== want) fs.chmodSync(file, want);
  }

  /** Move the staged run directories into place: a new top directory moves whole, an existing one is merged into. */
  commitRuns(): void {
    if (fs.existsSync(this.tree)) this.merge(this.tree, this.root);
    if (fs.existsSync(this.abs)) this.merge(this.abs, path.parse(this.root).root);
  }

  private merge(staged: string, final: string): void {
    let st: fs.Stats | null = null;
    try {
      st = fs.lstatSync(final);
    } catch {
      st = null;
    }
    if (st === null) {
      moveDir(staged, final);
      this.committed.push(final);
      return;
    }
    if (fs.existsSync(path.join(staged, RUN_META_DIR))) {
      throw new ThemisError('EXISTS', `run directory ${final} appeared while rendering (another gen or add?); nothing was changed`);
    }
    if (!st.isDirectory()) throw new ThemisError('EXISTS', `${final} is in the way of run directories (it is not a directory); move it away`);
    for (const name of fs.readdirSync(staged)) this.merge(path.join(staged, name), path.join(final, name));
  }

  /** Rename the staged setup directory onto `setupDir` (which must not exist, or be empty). */
  commitSetup(setupDir: string): void {
    const final = path.resolve(setupDir);
    fs.mkdirSync(path.dirname(final), { recursive: true });
    try {
      fs.renameSync(this.setup, final);
    } catch (e) {
      throw new ThemisError('IO', `cannot move the new setup directory into ${final}: ${describeFsError(e)}`, { cause: e });
    }
    this.committed.push(final);
  }

  /** Undo a commit that failed half way (or give up before it), then remove the staging directory. */
  rollback(): void {
    for (const p of this.committed.reverse()) removeTree(p);
    this.committed.length = 0;
    this.cleanup();
    if (this.createdParent !== null) removeTree(this.createdParent);
  }

  cleanup(): void {
    removeTree(this.dir);
  }
}

/** rename(), or copy then remove when the target is on another file system. */
function moveDir(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') {
      throw new ThemisError('IO', `cannot move ${from} to ${to}: ${describeFsError(e)}`, { cause: e });
    }
    try {
      fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false });
    } catch (e2) {
      removeTree(to);
      throw new ThemisError('IO', `cannot copy ${from} to ${to}: ${describeFsError(e2)}`, { cause: e2 });
    }
    removeTree(from);
  }
}

export function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // Best effort: removal runs while already failing, or on paths the user may have changed.
  }
}

/**
 * Remove an old ensemble for `--overwrite`: its run directories (from its index), the parents
 * they leave empty up to the root, and its setup directory.
 */
export function removeEnsembleTree(setupDir: string, root: string, runDirs: readonly string[]): void {
  const parents = new Set<string>();
  for (const d of runDirs) {
    removeTree(d);
    parents.add(path.dirname(d));
  }
  // Deepest first, so nested name templates (a/b/c) collapse fully.
  const sorted = [...parents].sort((a, b) => b.length - a.length);
  for (let p of sorted) {
    while (p !== root && p.startsWith(root + path.sep)) {
      try {
        fs.rmdirSync(p);
      } catch {
        break; // not empty: it holds something that is not ours
      }
      p = path.dirname(p);
    }
  }
  removeTree(path.resolve(setupDir));
}

/** Remove staging directories of gens that were killed (same host, process gone); others are left alone. */
export function removeStaleStages(setupDir: string): void {
  const prefix = setupPaths(setupDir).stagingPrefix;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(path.dirname(prefix), name);
    if (!dir.startsWith(prefix)) continue;
    try {
      const o = JSON.parse(fs.readFileSync(path.join(dir, OWNER), 'utf8')) as { host: string; pid: number; pidStart: string | null; pidNs?: string | null };
      if (deadHere(o)) removeTree(dir);
    } catch {
      // No readable owner: too young to judge, or not ours; leave it.
    }
  }
}
