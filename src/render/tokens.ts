import { ThemisError, throwIfProblems } from '../model/errors.js';

/**
 * `%%name%%` text replacement. A name is letters, digits, `_`, `.`, `-` with no whitespace, so
 * shell constructs like `${a%%x}${b%%y}` are never mistaken for tokens. Values are inserted as
 * plain text (never HTML-escaped); everything else, line endings included, is kept byte for byte.
 */
export const TOKEN_RE = /%%([A-Za-z0-9_][A-Za-z0-9_.-]*)%%/g;

/** Built-in tokens every parsed file gets. */
export const BUILTIN_TOKENS = ['themis_run_id', 'themis_run_dir'] as const;
/** Only in batch-script steps: the launcher prefix for that step's resources. */
export const LAUNCH_TOKEN = 'themis_launch';

export interface TokenUse {
  name: string;
  /** 1-based line number. */
  line: number;
}

/** Every token in `text` with its line, in order. */
export function findTokens(text: string): TokenUse[] {
  const out: TokenUse[] = [];
  let line = 1;
  let pos = 0;
  for (const m of text.matchAll(TOKEN_RE)) {
    line += countNewlines(text, pos, m.index);
    pos = m.index;
    out.push({ name: m[1]!, line });
  }
  return out;
}

function countNewlines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = text.indexOf('\n', from); i !== -1 && i < to; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** A sample value as text: strings as they are, numbers/booleans via String(), objects as JSON. */
export function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * A template split once into literal parts and token names, so rendering many runs is a join:
 * `parts[0] + value(names[0]) + parts[1] + …`.
 */
export interface TokenTemplate {
  file: string;
  parts: string[];
  names: string[];
  lines: number[];
}

/** Split a run file (`--parse`, a batch-script step) at its `%%tokens%%`; batch scripts use Handlebars (`handlebars.ts`) instead. */
export function compileTokens(text: string, file: string): TokenTemplate {
  const parts: string[] = [];
  const names: string[] = [];
  const lines: number[] = [];
  let last = 0;
  let line = 1;
  for (const m of text.matchAll(TOKEN_RE)) {
    line += countNewlines(text, last, m.index);
    parts.push(text.slice(last, m.index));
    names.push(m[1]!);
    lines.push(line);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return { file, parts, names, lines };
}

/**
 * Render a compiled template. `lookup` returns the text for a name, or undefined when unknown:
 * then the token is kept verbatim (callers check unknown tokens up front with `unknownTokens`).
 */
export function renderTemplate(t: TokenTemplate, lookup: (name: string) => string | undefined): string {
  if (t.names.length === 0) return t.parts[0]!;
  let out = t.parts[0]!;
  for (let i = 0; i < t.names.length; i++) {
    const name = t.names[i]!;
    const v = lookup(name);
    out += (v === undefined ? `%%${name}%%` : v) + t.parts[i + 1]!;
  }
  return out;
}

/** `file:line: %%name%%` for every token `known` does not cover. */
export function unknownTokens(t: TokenTemplate, known: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < t.names.length; i++) {
    if (!known(t.names[i]!)) out.push(`${t.file}:${t.lines[i]}: %%${t.names[i]}%%`);
  }
  return out;
}

/**
 * Replace every `%%name%%` in one text. Unknown names are an error listing each `file:line:
 * %%name%%`, unless `keepUnknown` (then they stay as they are).
 * @example replaceTokens('x = %%x%%\n', { x: 1 }, { file: 'deck.in' }) // 'x = 1\n'
 */
export function replaceTokens(text: string, values: Record<string, unknown>, options: { file?: string; keepUnknown?: boolean } = {}): string {
  const t = compileTokens(text, options.file ?? '<text>');
  const has = (n: string) => Object.hasOwn(values, n);
  if (!options.keepUnknown) {
    throwIfProblems('INPUT', unknownHeading(), unknownTokens(t, has));
  }
  return renderTemplate(t, (n) => (has(n) ? valueText(values[n]) : undefined));
}

export function unknownHeading(): string {
  return 'unknown tokens (no sample value of that name); fix the name, add the column to the samples, ' + 'or pass --keep-unknown-tokens to leave them as they are';
}

/**
 * Decode a file to be parsed; binary content (a NUL byte, or bytes that are not UTF-8) is an error,
 * because replacing text inside it would corrupt it.
 */
export function decodeTextFile(data: Uint8Array, file: string, fix = '--parse is for text files: use --copy or --symlink for it'): string {
  const head = data.subarray(0, 8192);
  if (head.includes(0)) throw new ThemisError('INPUT', `${file} looks binary (it contains NUL bytes); ${fix}`);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
  } catch {
    throw new ThemisError('INPUT', `${file} is not UTF-8 text; ${fix}`);
  }
}
