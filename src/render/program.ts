import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';

/**
 * Find a program the way a shell does: a name with a `/` is a path (relative to `cwd`), a bare
 * name is looked up on PATH. Returns the absolute path; a missing, non-executable or directory
 * program is an INPUT error naming it and `what` ("application", "run 3 step 2 args[0]").
 */
export function resolveProgram(name: string, what: string, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  if (name === '') throw new ThemisError('INPUT', `${what}: no program given`);
  if (name.includes('/')) {
    const abs = path.resolve(cwd, name);
    checkExecutable(abs, name, what);
    return abs;
  }
  const dirs = (env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  let notExecutable: string | null = null;
  for (const dir of dirs) {
    const candidate = path.resolve(cwd, dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(candidate);
    } catch {
      continue;
    }
    if (!st.isFile()) continue;
    if (isExecutable(candidate)) return candidate;
    notExecutable ??= candidate;
  }
  if (notExecutable !== null) {
    throw new ThemisError('INPUT', `${what}: ${notExecutable} is not executable; make it so with \`chmod +x ${notExecutable}\``);
  }
  const local = path.resolve(cwd, name);
  const hint = fs.existsSync(local) ? `; to use the file in this directory, write ./${name}` : '; give its path, or add its directory to PATH';
  throw new ThemisError('INPUT', `${what}: program ${JSON.stringify(name)} not found on PATH${hint}`);
}

function checkExecutable(abs: string, given: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new ThemisError('INPUT', `${what}: program ${JSON.stringify(given)} not found (no file at ${abs})`);
  }
  if (st.isDirectory()) throw new ThemisError('INPUT', `${what}: ${abs} is a directory, not a program`);
  if (!isExecutable(abs)) throw new ThemisError('INPUT', `${what}: ${abs} is not executable; make it so with \`chmod +x ${abs}\``);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
