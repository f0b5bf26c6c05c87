import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError } from '../model/errors.js';
import type { Sample, SampleValue } from '../model/step.js';
import { decodeTextFile, replaceTokens } from '../render/tokens.js';
import { readJsonSync, writeFileAtomicSync } from '../store/atomic.js';
import { ENV, runPaths, setupPaths } from '../store/layout.js';
import { readRunRecord, writeResult, type EnsembleRecord, type RunRecord } from '../store/records.js';

/** Where to look for the current run: the environment and working directory (tests pass their own). */
export interface RuntimeOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** The run an application is part of, found from `THEMIS_RUN_DIR` or the working directory. */
export interface CurrentRun {
  id: number;
  dir: string;
  record: RunRecord;
  /** The setup directory from `THEMIS_SETUP_DIR`, or null when unset. */
  setupDir: string | null;
}

/**
 * Find the run this process belongs to: `THEMIS_RUN_DIR` when set, else the nearest directory
 * from the working directory upward that holds `.themis/run.json` (a step's cwd may be a
 * subdirectory of its run directory).
 * @example
 * const run = currentRun(); // inside a step: { id: 7, dir: '/scratch/ens/runs/7', … }
 */
export function currentRun(options: RuntimeOptions = {}): CurrentRun {
  const env = options.env ?? process.env;
  const setupDir = env[ENV.setupDir] ? path.resolve(env[ENV.setupDir]!) : null;
  const fromEnv = env[ENV.runDir];
  if (fromEnv) {
    const dir = path.resolve(options.cwd ?? process.cwd(), fromEnv);
    if (!fs.existsSync(runPaths(dir).run)) {
      throw new ThemisError('NOT_FOUND', `${ENV.runDir}=${fromEnv} is not a themis run directory (no ${runPaths(dir).run}); unset it or point it at a run directory`);
    }
    const record = readRunRecord(dir);
    return { id: record.id, dir, record, setupDir };
  }
  let dir = path.resolve(options.cwd ?? process.cwd());
  for (;;) {
    if (fs.existsSync(runPaths(dir).run)) {
      const record = readRunRecord(dir);
      return { id: record.id, dir, record, setupDir };
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new ThemisError(
    'NOT_FOUND',
    `not inside a themis run: ${ENV.runDir} is unset and no directory from ${path.resolve(options.cwd ?? process.cwd())} upward holds .themis/run.json; ` +
      'run this from a step that themis launched, or cd into a run directory',
  );
}

/**
 * The current run's sample, or one value of it.
 * @example
 * const viscosity = Number(sample('viscosity'));
 */
export function sample(key?: undefined, options?: RuntimeOptions): Sample;
export function sample(key: string, options?: RuntimeOptions): SampleValue;
export function sample(key?: string, options: RuntimeOptions = {}): Sample | SampleValue {
  const run = currentRun(options);
  if (key === undefined) return orderedSample(run.record);
  if (!Object.hasOwn(run.record.sample, key)) {
    const keys = run.record.sampleKeys.length ? run.record.sampleKeys.join(', ') : '(the sample is empty)';
    throw new ThemisError('INPUT', `run ${run.id} has no sample key ${JSON.stringify(key)}; its keys are: ${keys}`);
  }
  return run.record.sample[key];
}

function orderedSample(rec: RunRecord): Sample {
  const out: Sample = {};
  for (const k of rec.sampleKeys) if (k in rec.sample) out[k] = rec.sample[k];
  for (const k of Object.keys(rec.sample)) if (!(k in out)) out[k] = rec.sample[k];
  return out;
}

/** Throw unless `value` survives a JSON round trip (results are stored as JSON). */
export function checkJsonResult(value: unknown, where: string): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new ThemisError('INPUT', `${where}: the result is not JSON-serialisable (${(e as Error).message}); return plain data (objects, arrays, strings, numbers, booleans, null)`);
  }
  if (text === undefined) {
    throw new ThemisError('INPUT', `${where}: the result is ${typeof value}, which JSON cannot hold; return plain data or null`);
  }
}

/**
 * Store the current run's result (`.themis/result.json`); it shows in `themis write csv`.
 * @example
 * await setResult({ energy: 1.25, converged: true });
 */
export async function setResult(value: unknown, options: RuntimeOptions = {}): Promise<void> {
  const run = currentRun(options);
  checkJsonResult(value, `run ${run.id}`);
  writeResult(run.dir, value);
}

/**
 * Store a file's contents as the current run's result: parsed as JSON when it is JSON
 * (`{"energy": 1.2}` becomes an object, `42` a number), otherwise the text as a string.
 * @example
 * await resultFromFile('out/summary.json');
 */
export async function resultFromFile(file: string, options: RuntimeOptions = {}): Promise<unknown> {
  const run = currentRun(options);
  const abs = path.resolve(options.cwd ?? process.cwd(), file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(abs);
  } catch (e) {
    throw new ThemisError('NOT_FOUND', `run ${run.id}: cannot read result file ${abs}: ${describeFsError(e)}`, { cause: e });
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  if (text.includes('\uFFFD') || buf.includes(0)) {
    throw new ThemisError('INPUT', `run ${run.id}: result file ${abs} is not UTF-8 text; results are stored as JSON: convert it, or store a path to it`);
  }
  let value: unknown = text;
  try {
    value = JSON.parse(text);
  } catch {
    value = text;
  }
  writeResult(run.dir, value);
  return value;
}

/**
 * Replace `%%tokens%%` in `src` with the current run's sample (plus `themis_run_id` and
 * `themis_run_dir`) and write `dest`, keeping `src`'s mode bits. Unknown tokens are an error
 * unless the ensemble was made with `--keep-unknown-tokens`.
 * @example
 * await parseFile('deck.in.tmpl', 'deck.in');
 */
export async function parseFile(src: string, dest: string, options: RuntimeOptions = {}): Promise<void> {
  const run = currentRun(options);
  const base = options.cwd ?? process.cwd();
  const absSrc = path.resolve(base, src);
  const absDest = path.resolve(base, dest);
  let data: Buffer;
  let mode: number;
  try {
    data = fs.readFileSync(absSrc);
    mode = fs.statSync(absSrc).mode & 0o7777;
  } catch (e) {
    throw new ThemisError('NOT_FOUND', `run ${run.id}: cannot read ${absSrc}: ${describeFsError(e)}`, { cause: e });
  }
  const text = decodeTextFile(data, absSrc, '`themis parse`');
  const values: Record<string, unknown> = { ...run.record.sample, themis_run_id: run.id, themis_run_dir: run.dir };
  const keepUnknown = keepUnknownTokens(run.setupDir);
  const out = replaceTokens(text, values, { file: absSrc, keepUnknown });
  writeFileAtomicSync(absDest, out, { mode });
  fs.chmodSync(absDest, mode);
}

function keepUnknownTokens(setupDir: string | null): boolean {
  if (setupDir === null) return false;
  const ens = readJsonSync<EnsembleRecord>(setupPaths(setupDir).ensemble);
  return ens?.keepUnknownTokens ?? false;
}
