import { parse as parseCsv } from 'csv-parse/sync';
import { ThemisError, throwIfProblems } from './errors.js';
import { parseBool, parseIntField, parseMinutes } from './run.js';
import type { StepLaunch } from './resources.js';
import { STEP_DEFAULTS, splitArgs, type Sample, type StepSpec } from './step.js';

/** Samples read from a file: every row's sample, the keys in first-seen order, each row's line. */
export interface ParsedSamples {
  keys: string[];
  samples: Sample[];
  /** 1-based line of each sample in its file (the line a multi-line CSV record ends on). */
  lines: number[];
}

export type SampleFormat = 'csv' | 'json' | 'jsonl';

/** The format a file name implies: `.json`, `.jsonl`/`.ndjson`, anything else is CSV. */
export function sampleFormatOf(file: string): SampleFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json')) return 'json';
  return 'csv';
}

/** Parse samples text; errors name the file, line and column. */
export function parseSamples(text: string, file: string, format: SampleFormat = sampleFormatOf(file)): ParsedSamples {
  if (format === 'json') return parseJsonSamples(text, file);
  if (format === 'jsonl') return parseJsonlSamples(text, file);
  const samples: Sample[] = [];
  let make: ((row: readonly string[]) => Sample) | null = null;
  // Rows become samples as they are parsed, so a 100,000-row file never holds both at once.
  const { header, lines } = parseCsvTable(text, file, 'samples', (row, head) => {
    make ??= sampleFactory(head);
    samples.push(make(row));
  });
  return { keys: header, samples, lines };
}

/**
 * Build sample objects for one header. Objects filled key by key turn into slow "dictionary"
 * objects in V8 past a dozen properties (about 3x the memory); an object literal with every key
 * stays compact, which matters at 100,000 runs. Keys are JSON-quoted, so any header text is safe;
 * `__proto__` (which a literal would treat as the prototype) takes the slow path.
 */
function sampleFactory(keys: readonly string[]): (row: readonly string[]) => Sample {
  if (keys.length === 0 || keys.includes('__proto__')) {
    return (row) => {
      const s: Sample = {};
      for (let c = 0; c < keys.length; c++) Object.defineProperty(s, keys[c]!, { value: row[c], enumerable: true, writable: true, configurable: true });
      return s;
    };
  }
  const body = `return {${keys.map((k, c) => `${JSON.stringify(k)}: r[${c}]`).join(', ')}};`;
  return new Function('r', body) as (row: readonly string[]) => Sample;
}

interface CsvTable {
  header: string[];
  rows: string[][];
  lines: number[];
}

/** CSV with a mandatory header row: BOM and CRLF handled; ragged rows, bad headers, open quotes refused. */
export function parseCsvTable(text: string, file: string, what: string, onRow?: (row: string[], header: string[]) => void): CsvTable {
  const records: string[][] = [];
  const lines: number[] = [];
  try {
    parseCsv(text, {
      bom: true,
      skip_empty_lines: true,
      on_record: (record: string[], ctx: { lines: number }) => {
        if (records.length === 0) {
          records.push(record);
          checkHeader(record, file, ctx.lines);
        } else if (onRow) {
          onRow(record, records[0]!);
        } else {
          records.push(record);
        }
        lines.push(ctx.lines);
        return null;
      },
    });
  } catch (e) {
    if (e instanceof ThemisError) throw e;
    throw csvError(e, file, what, lines[lines.length - 1] ?? 0, records[0]?.length);
  }
  if (records.length === 0) {
    throw new ThemisError('INPUT', `${file}: empty ${what} file; the first line must be a header row naming the columns`);
  }
  return { header: records[0]!, rows: records.slice(1), lines: lines.slice(1) };
}

function checkHeader(header: readonly string[], file: string, line: number): void {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  header.forEach((name, i) => {
    if (name.trim() === '') {
      problems.push(`${file}:${line}: column ${i + 1} of the header has no name${i === header.length - 1 ? ' (a trailing comma?)' : ''}; name it or remove the column`);
    } else if (seen.has(name)) {
      problems.push(`${file}:${line}: columns ${seen.get(name)! + 1} and ${i + 1} are both named ${JSON.stringify(name)}; rename one`);
    } else {
      seen.set(name, i);
    }
  });
  throwIfProblems('INPUT', `${file}: bad header row`, problems);
}

function csvError(e: unknown, file: string, what: string, lastGoodLine: number, headerFields?: number): ThemisError {
  const err = e as { code?: string; lines?: number; column?: number; record?: unknown[]; message?: string };
  if (err.code === 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH') {
    const got = Array.isArray(err.record) ? err.record.length : '?';
    return new ThemisError(
      'INPUT',
      `${file}:${err.lines}: this row has ${got} field(s) but the header has ${headerFields ?? 'a different number'}; every ${what} row needs one value per column (quote values that contain commas)`,
      { cause: e },
    );
  }
  if (err.code === 'CSV_QUOTE_NOT_CLOSED') {
    return new ThemisError(
      'INPUT',
      `${file}:${lastGoodLine + 1}: unterminated quote: a quoted field starting on line ${lastGoodLine + 1} or later is never closed (the file ends at line ${err.lines}); add the closing "`,
      { cause: e },
    );
  }
  const where = err.lines ? `${file}:${err.lines}${err.column !== undefined ? `: column ${err.column + 1}` : ''}` : file;
  return new ThemisError('INPUT', `${where}: invalid CSV: ${err.message ?? String(e)}`, { cause: e });
}

function parseJsonSamples(text: string, file: string): ParsedSamples {
  let data: unknown;
  try {
    data = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    // V8 names the position only in some versions; name the line when it does.
    const m = /position (\d+)/.exec((e as Error).message);
    const where = m ? `${file}:${text.slice(0, Number(m[1])).split('\n').length}` : file;
    throw new ThemisError('INPUT', `${where}: invalid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(data)) {
    throw new ThemisError('INPUT', `${file}: JSON samples must be an array of objects ([{"x": 1}, …]), got ${typeof data}`);
  }
  const keys = new Set<string>();
  const problems: string[] = [];
  data.forEach((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      problems.push(`${file}: element ${i} of the array: a sample must be an object, got ${JSON.stringify(item)}`);
    } else {
      for (const k of Object.keys(item)) keys.add(k);
    }
  });
  throwIfProblems('INPUT', `${file}: bad samples`, problems);
  return { keys: [...keys], samples: data as Sample[], lines: data.map((_, i) => i + 1) };
}

function parseJsonlSamples(text: string, file: string): ParsedSamples {
  const keys = new Set<string>();
  const samples: Sample[] = [];
  const lines: number[] = [];
  const problems: string[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '') return;
      let item: unknown;
      try {
        item = JSON.parse(line);
      } catch (e) {
        problems.push(`${file}:${i + 1}: invalid JSON: ${(e as Error).message}`);
        return;
      }
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        problems.push(`${file}:${i + 1}: a sample must be a JSON object, got ${line.slice(0, 40)}`);
        return;
      }
      for (const k of Object.keys(item)) keys.add(k);
      samples.push(item as Sample);
      lines.push(i + 1);
    });
  throwIfProblems('INPUT', `${file}: bad samples`, problems);
  return { keys: [...keys], samples, lines };
}

/** The step-file columns, as users write them. */
export const STEP_COLUMNS = ['args', 'tasks', 'cores_per_task', 'gpus_per_task', 'timeout', 'batch_script', 'cwd'] as const;

/**
 * A steps CSV (`--steps`): any subset of STEP_COLUMNS, one row per step; empty cells take the
 * defaults (`defaults`, then STEP_DEFAULTS). Programs are left as written (the writer resolves them on PATH).
 */
export function parseStepsCsv(text: string, file: string, defaults: Partial<Omit<StepSpec, 'args'>> = {}): StepSpec[] {
  const { header, rows, lines } = parseCsvTable(text, file, 'steps');
  const problems: string[] = [];
  header.forEach((name, i) => {
    if (!(STEP_COLUMNS as readonly string[]).includes(name.trim())) {
      problems.push(`${file}:1: column ${i + 1} ${JSON.stringify(name)} is not a step field; use ${STEP_COLUMNS.join(', ')}`);
    }
  });
  if (!header.map((h) => h.trim()).includes('args')) problems.push(`${file}:1: no "args" column: each step needs a program to run`);
  throwIfProblems('INPUT', `${file}: bad steps file`, problems);
  if (rows.length === 0) throw new ThemisError('INPUT', `${file}: no steps: add one row per step below the header`);
  const steps = rows.map((row, r) => {
    const step: StepSpec = { args: [], ...STEP_DEFAULTS, ...defaults };
    const at = (c: number) => `${file}:${lines[r]}: column ${c + 1} (${header[c]!.trim()})`;
    header.forEach((rawName, c) => {
      const name = rawName.trim();
      const cell = row[c] ?? '';
      if (cell.trim() === '' && name !== 'args') return;
      const take = (v: number | boolean | string, set: (x: never) => void) => {
        if (typeof v === 'string') problems.push(`${at(c)}: ${v}`);
        else set(v as never);
      };
      switch (name) {
        case 'args':
          try {
            step.args = splitArgs(cell, at(c));
          } catch (e) {
            problems.push((e as Error).message);
          }
          if (step.args.length === 0) problems.push(`${at(c)}: empty: each step needs a program to run`);
          break;
        case 'tasks':
          take(parseIntField(cell, 'tasks', 1), (v: number) => (step.tasks = v));
          break;
        case 'cores_per_task':
          take(parseIntField(cell, 'coresPerTask', 0), (v: number) => (step.coresPerTask = v));
          break;
        case 'gpus_per_task':
          take(parseIntField(cell, 'gpusPerTask', 0), (v: number) => (step.gpusPerTask = v));
          break;
        case 'timeout':
          take(parseMinutes(cell), (v: number) => (step.timeout = v));
          break;
        case 'batch_script':
          take(parseBool(cell, 'batch_script'), (v: boolean) => (step.batchScript = v));
          break;
        case 'cwd':
          step.cwd = cell;
          break;
      }
    });
    return step;
  });
  throwIfProblems('INPUT', `${file}: bad steps`, problems);
  return steps;
}

/** Program and resources of one run with `--vary-all`: same-named sample columns override the CLI values. */
export interface VaryAllResources extends StepLaunch {
  args: string[] | null;
}

export const VARY_ALL_COLUMNS = ['args', 'tasks', 'cores_per_task', 'gpus_per_task', 'timeout'] as const;

/**
 * Read `--vary-all` columns from a sample; empty or absent cells fall back to `defaults`.
 * Problems are pushed as "where: field: what" strings. The columns stay in the sample (tokens may use them).
 */
export function varyAll(sample: Sample, defaults: VaryAllResources, where: string, problems: string[]): VaryAllResources {
  const out: VaryAllResources = { ...defaults };
  const cell = (k: string): string | null => {
    const v = sample[k];
    if (v === undefined || v === null) return null;
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return s.trim() === '' ? null : s;
  };
  const a = cell('args');
  if (a !== null) {
    try {
      out.args = splitArgs(a, `${where}: args`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const ints: [string, 'tasks' | 'coresPerTask' | 'gpusPerTask', number][] = [
    ['tasks', 'tasks', 1],
    ['cores_per_task', 'coresPerTask', 0],
    ['gpus_per_task', 'gpusPerTask', 0],
  ];
  for (const [col, key, min] of ints) {
    const v = cell(col);
    if (v === null) continue;
    const n = parseIntField(v, key, min);
    if (typeof n === 'string') problems.push(`${where}: ${n}`);
    else out[key] = n;
  }
  const t = cell('timeout');
  if (t !== null) {
    const n = parseMinutes(t);
    if (typeof n === 'string') problems.push(`${where}: ${n}`);
    else out.timeout = n;
  }
  return out;
}
