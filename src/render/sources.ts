import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ThemisError, describeFsError, throwIfProblems } from '../model/errors.js';
import { RUN_META_DIR } from '../store/layout.js';
import { compileTokens, decodeTextFile, type TokenTemplate } from './tokens.js';

/** fast-glob costs ~30 ms to import: only `gen` expanding patterns needs it. */
let fastGlob: typeof import('fast-glob') | null = null;
const fg = (): typeof import('fast-glob') => (fastGlob ??= createRequire(import.meta.url)('fast-glob') as typeof import('fast-glob'));

/**
 * The files every run directory gets: `--parse` (token-replaced copies), `--copy`, `--symlink`.
 * Patterns are expanded once at `gen` and stored absolute in ensemble.json, so `add` gives new
 * runs the same files.
 */
export type SourceKind = 'parse' | 'copy' | 'symlink';

/** Expand paths/globs (relative to `cwd`) to absolute paths; a pattern matching nothing is an error. */
export function expandSources(patterns: readonly string[], flag: string, cwd: string): string[] {
  const out: string[] = [];
  const problems: string[] = [];
  for (const pattern of patterns) {
    const literal = path.resolve(cwd, pattern);
    if (fs.existsSync(literal) || isBrokenLink(literal)) {
      out.push(literal);
      continue;
    }
    let matches: string[] = [];
    if (fg().isDynamicPattern(pattern)) {
      matches = fg().sync(pattern, { cwd, absolute: true, onlyFiles: false, dot: true, followSymbolicLinks: false }).sort();
    }
    if (matches.length === 0) problems.push(`${flag} ${pattern}: no such file${fg().isDynamicPattern(pattern) ? ' (the pattern matches nothing)' : ''} in ${cwd}`);
    out.push(...matches.map((m) => path.resolve(m)));
  }
  throwIfProblems('INPUT', `${flag}: missing files`, problems);
  return [...new Set(out)];
}

function isBrokenLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** One parsed template: its source, compiled text, mode bits, and name inside the run directory. */
export interface ParseSource {
  src: string;
  name: string;
  template: TokenTemplate;
  mode: number;
}

export interface CopySource {
  src: string;
  name: string;
  isDir: boolean;
  /** Small files are read once and written from memory (fewer syscalls than a copy per run). */
  data: Buffer | null;
  mode: number;
}

/** Files up to this size are copied from memory. */
const SMALL_COPY = 1 << 20;

export interface RunFiles {
  parse: ParseSource[];
  copy: CopySource[];
  symlink: { src: string; name: string }[];
}

/**
 * Read and compile every `--parse` file once, check copies exist, and make sure no two sources
 * land on the same name in a run directory (or on `.themis`). `reserved` holds names already
 * taken (batch-script copies) with who took them.
 */
export function loadRunFiles(lists: { parse: readonly string[]; copy: readonly string[]; symlink: readonly string[] }, reserved: Map<string, string>): RunFiles {
  const problems: string[] = [];
  const names = new Map(reserved);
  const claim = (name: string, who: string) => {
    if (name === RUN_META_DIR) problems.push(`${who}: the name ${RUN_META_DIR} is reserved for themis inside run directories; rename the file`);
    const prev = names.get(name);
    if (prev !== undefined) problems.push(`${prev} and ${who} would both be ${JSON.stringify(name)} in every run directory; rename one`);
    else names.set(name, who);
  };
  const parse: ParseSource[] = [];
  for (const src of lists.parse) {
    claim(path.basename(src), `--parse ${src}`);
    let st: fs.Stats;
    let data: Buffer;
    try {
      st = fs.statSync(src);
      if (st.isDirectory()) {
        problems.push(`--parse ${src} is a directory; --parse takes text files (use --copy for a directory)`);
        continue;
      }
      data = fs.readFileSync(src);
    } catch (e) {
      problems.push(`--parse ${src}: cannot read: ${describeFsError(e)}`);
      continue;
    }
    try {
      parse.push({ src, name: path.basename(src), template: compileTokens(decodeTextFile(data, src), src), mode: st.mode & 0o7777 });
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const copy: CopySource[] = [];
  for (const src of lists.copy) {
    claim(path.basename(src), `--copy ${src}`);
    try {
      const st = fs.statSync(src);
      const small = st.isFile() && st.size <= SMALL_COPY;
      copy.push({ src, name: path.basename(src), isDir: st.isDirectory(), data: small ? fs.readFileSync(src) : null, mode: st.mode & 0o7777 });
    } catch (e) {
      problems.push(`--copy ${src}: cannot read: ${describeFsError(e)}`);
    }
  }
  const symlink = lists.symlink.map((src) => {
    claim(path.basename(src), `--symlink ${src}`);
    return { src, name: path.basename(src) };
  });
  throwIfProblems('INPUT', 'bad run files (--parse, --copy, --symlink)', problems);
  return { parse, copy, symlink };
}

/** A batch-script program, read and compiled once however many runs use it. */
export function loadScriptTemplate(src: string): { template: TokenTemplate; mode: number } {
  let data: Buffer;
  let st: fs.Stats;
  try {
    st = fs.statSync(src);
    data = fs.readFileSync(src);
  } catch (e) {
    throw new ThemisError('INPUT', `batch script ${src}: cannot read: ${describeFsError(e)}`, { cause: e });
  }
  const text = decodeTextFile(data, src, 'it is run as a batch script, which themis parses for %%tokens%%: pass --no-batch-script (or batch_script=false) for a compiled program');
  return { template: compileTokens(text, src), mode: st.mode & 0o7777 };
}
