import path from 'node:path';
import { ThemisError, throwIfProblems } from '../model/errors.js';
import type { Sample } from '../model/step.js';
import { valueText } from './tokens.js';

/**
 * Run-directory naming: `--run-dir-names` templates such as `runs/{run_id}`,
 * `out/{run_id:05}`, `visc={visc}/{run_id}`. `{run_id}` is the run id (zero-padded with `:0N`),
 * any other `{name}` is that sample value; `{{`/`}}` are literal braces. `/` nests directories;
 * the template may be absolute. Pure: no file system access.
 */
export type DirPart = string | { key: string; pad: number };

export interface DirTemplate {
  source: string;
  parts: DirPart[];
  /** Sample keys the template uses (not run_id). */
  keys: string[];
}

export function compileRunDirTemplate(source: string): DirTemplate {
  const where = `--run-dir-names ${JSON.stringify(source)}`;
  if (source.trim() === '') throw new ThemisError('INPUT', `${where}: empty; the default is runs/{run_id}`);
  const parts: DirPart[] = [];
  const keys: string[] = [];
  let lit = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      lit += '{';
      i++;
    } else if (c === '}' && source[i + 1] === '}') {
      lit += '}';
      i++;
    } else if (c === '}') {
      throw new ThemisError('INPUT', `${where}: unmatched "}" at character ${i + 1}; write "}}" for a literal brace`);
    } else if (c === '{') {
      const end = source.indexOf('}', i);
      if (end === -1) throw new ThemisError('INPUT', `${where}: unclosed "{" at character ${i + 1}; write "{{" for a literal brace`);
      const field = source.slice(i + 1, end);
      const [key, spec, ...rest] = field.split(':');
      if (!key || rest.length > 0) throw new ThemisError('INPUT', `${where}: bad field {${field}}; use {run_id}, {run_id:05} or {sample_key}`);
      let pad = 0;
      if (spec !== undefined) {
        if (!/^0\d+$/.test(spec) || key !== 'run_id') {
          throw new ThemisError('INPUT', `${where}: bad format {${field}}; only {run_id:0N} (zero padding to N digits) is supported`);
        }
        pad = Number.parseInt(spec, 10);
      }
      if (lit) parts.push(lit);
      lit = '';
      parts.push({ key, pad });
      if (key !== 'run_id' && !keys.includes(key)) keys.push(key);
      i = end;
    } else {
      lit += c;
    }
  }
  if (lit) parts.push(lit);
  return { source, parts, keys };
}

/** One run's directory relative to (or, for an absolute template, regardless of) the root; pushes problems. */
export function renderRunDir(t: DirTemplate, id: number, sample: Sample, problems: string[]): string | null {
  let out = '';
  let ok = true;
  for (const p of t.parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    if (p.key === 'run_id') {
      out += String(id).padStart(p.pad, '0');
      continue;
    }
    if (!Object.hasOwn(sample, p.key)) {
      problems.push(`run ${id}: --run-dir-names uses {${p.key}} but the sample has no ${JSON.stringify(p.key)}`);
      ok = false;
      continue;
    }
    const v = valueText(sample[p.key]);
    const bad =
      v === ''
        ? 'is empty'
        : v === '.' || v === '..'
          ? `is ${JSON.stringify(v)}`
          : v.includes('/')
            ? 'contains "/"'
            : // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
              /[\x00-\x1f\x7f]/.test(v)
              ? 'contains a control character (newline, tab, …)'
              : null;
    if (bad) {
      problems.push(
        `run ${id}: sample value ${p.key}=${JSON.stringify(v)} ${bad}, so it cannot name a directory in --run-dir-names ${JSON.stringify(t.source)}; ` +
          'change the value or leave that field out of the template',
      );
      ok = false;
      continue;
    }
    out += v;
  }
  return ok ? out : null;
}

export interface RunDirPlanInput {
  id: number;
  sample: Sample;
}

/**
 * Absolute run directories for `runs`, or one error listing every problem: bad values, a
 * directory that is the root or overlaps the setup directory, and two runs (new, or added earlier
 * and listed in `existing`) mapping to one directory, naming both ids.
 */
export function planRunDirs(template: DirTemplate, root: string, setupDir: string, runs: readonly RunDirPlanInput[], existing: ReadonlyMap<string, number> = new Map()): string[] {
  const problems: string[] = [];
  const taken = new Map<string, number>(existing);
  const setup = path.resolve(setupDir);
  const dirs: string[] = new Array(runs.length);
  for (let i = 0; i < runs.length; i++) {
    const { id, sample } = runs[i]!;
    const rel = renderRunDir(template, id, sample, problems);
    if (rel === null) continue;
    const abs = path.resolve(root, rel);
    dirs[i] = abs;
    const long = abs.split('/').find((part) => Buffer.byteLength(part) > 255);
    if (long !== undefined) {
      problems.push(`run ${id}: the name ${JSON.stringify(long.slice(0, 40) + '…')} in its run directory is longer than 255 bytes, which file systems refuse; shorten --run-dir-names`);
      continue;
    }
    if (abs === root || isInside(abs, root)) {
      problems.push(`run ${id}: run directory ${abs} would be the ensemble root or contain it; put {run_id} or a sample key in --run-dir-names`);
      continue;
    }
    if (abs === setup || isInside(setup, abs) || isInside(abs, setup)) {
      problems.push(`run ${id}: run directory ${abs} overlaps the setup directory ${setup}; choose another --run-dir-names or --setup-dir`);
      continue;
    }
    const other = taken.get(abs);
    if (other !== undefined) {
      problems.push(`runs ${other} and ${id} both map to the run directory ${abs}; make --run-dir-names ${JSON.stringify(template.source)} unique (add {run_id})`);
      continue;
    }
    taken.set(abs, id);
  }
  throwIfProblems('INPUT', `bad run directories (--run-dir-names ${JSON.stringify(template.source)})`, problems);
  return dirs;
}

/** Is `child` strictly inside `parent`? */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
