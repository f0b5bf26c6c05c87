import { createRequire } from 'node:module';
import type { RunStatus } from '../model/status.js';
import type { Sample, StepSpec } from '../model/step.js';

/** Everything the exporters need about one run, read from its run directory. */
export interface RunExport {
  id: number;
  /** null when the run's status file is missing or unreadable. */
  status: RunStatus | null;
  sample: Sample;
  /** Sample keys in their input order (RunRecord.sampleKeys). */
  sampleKeys: readonly string[];
  steps: readonly StepSpec[];
  /** Index of the step being run, or that ran last (StatusRecord.step). */
  step: number;
  result: unknown;
}

/** A step as users see it in exports: the seed's snake_case field names. */
export interface ExportedStep {
  args: string[];
  tasks: number;
  cores_per_task: number;
  gpus_per_task: number;
  timeout: number;
  batch_script: boolean;
  cwd: string;
}

/** One run in `write json` / `write yaml`: plain data only. */
export interface ExportedRun {
  run_id: number;
  status: RunStatus | 'unknown';
  sample: Sample;
  steps: ExportedStep[];
  result: unknown;
}

export const FIXED_COLUMNS = ['run_id', 'status', 'tasks', 'cores_per_task', 'gpus_per_task'] as const;

/** A table: column names and one row of native values per run. */
export interface ExportTable {
  columns: string[];
  rows: unknown[][];
}

export function exportStep(step: StepSpec): ExportedStep {
  return {
    args: [...step.args],
    tasks: step.tasks,
    cores_per_task: step.coresPerTask,
    gpus_per_task: step.gpusPerTask,
    timeout: step.timeout,
    batch_script: step.batchScript,
    cwd: step.cwd,
  };
}

export function exportRun(run: RunExport): ExportedRun {
  return {
    run_id: run.id,
    status: run.status ?? 'unknown',
    sample: orderedSample(run),
    steps: run.steps.map(exportStep),
    result: run.result === undefined ? null : run.result,
  };
}

/** The sample with its keys in input order (then any key the order list misses). */
function orderedSample(run: RunExport): Sample {
  const out: Sample = {};
  for (const k of run.sampleKeys) if (k in run.sample) out[k] = run.sample[k];
  for (const k of Object.keys(run.sample)) if (!(k in out)) out[k] = run.sample[k];
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The step whose resources a row shows: the one running or that ran last, clamped to the list. */
function shownStep(run: RunExport): StepSpec | undefined {
  if (run.steps.length === 0) return undefined;
  const i = Math.min(Math.max(run.step, 0), run.steps.length - 1);
  return run.steps[i];
}

/**
 * Build the CSV table: fixed columns, then sample columns (union across runs, first-seen input
 * order), then result columns (an object result gives one column per key, anything else `result`).
 * A sample key named like a fixed column becomes `sample.<key>`; a result key that collides with
 * an earlier column becomes `result.<key>`.
 */
export function buildTable(runs: readonly RunExport[]): ExportTable {
  const sampleCols: string[] = [];
  const seenSample = new Set<string>();
  for (const r of runs) {
    for (const k of orderedKeys(r)) {
      if (!seenSample.has(k)) {
        seenSample.add(k);
        sampleCols.push(k);
      }
    }
  }
  // A sample key named like a fixed column would give a CSV two columns of one name.
  const fixed = new Set<string>(FIXED_COLUMNS);
  const sampleNames = sampleCols.map((k) => (fixed.has(k) ? `sample.${k}` : k));
  const taken = new Set<string>([...FIXED_COLUMNS, ...sampleNames]);
  const resultKeys: string[] = [];
  const seenResult = new Set<string>();
  let scalarResult = false;
  for (const r of runs) {
    if (isPlainObject(r.result)) {
      for (const k of Object.keys(r.result)) {
        if (!seenResult.has(k)) {
          seenResult.add(k);
          resultKeys.push(k);
        }
      }
    } else if (r.result !== null && r.result !== undefined) {
      scalarResult = true;
    }
  }
  const resultColName = (k: string) => (taken.has(k) ? `result.${k}` : k);
  const resultCols = resultKeys.map(resultColName);
  const scalarCol = scalarResult ? (taken.has('result') || seenResult.has('result') ? 'result.value' : 'result') : null;
  const columns = [...FIXED_COLUMNS, ...sampleNames, ...resultCols, ...(scalarCol ? [scalarCol] : [])];
  const rows = runs.map((r) => {
    const step = shownStep(r);
    const row: unknown[] = [r.id, r.status ?? 'unknown', step?.tasks ?? null, step?.coresPerTask ?? null, step?.gpusPerTask ?? null];
    for (const k of sampleCols) row.push(Object.hasOwn(r.sample, k) ? r.sample[k] : null);
    const obj = isPlainObject(r.result) ? r.result : null;
    for (const k of resultKeys) row.push(obj && Object.hasOwn(obj, k) ? obj[k] : null);
    if (scalarCol) row.push(obj === null && r.result !== undefined ? r.result : null);
    return row;
  });
  return { columns, rows };
}

function orderedKeys(r: RunExport): string[] {
  const keys = r.sampleKeys.filter((k) => k in r.sample);
  for (const k of Object.keys(r.sample)) if (!keys.includes(k)) keys.push(k);
  return keys;
}

/** A value as CSV cell text: strings as they are, null empty, other values as JSON. */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

/** RFC 4180 quoting: a cell with a comma, quote, CR or LF (or edge spaces) is quoted, quotes doubled. */
export function csvCell(text: string): string {
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatCsv(table: ExportTable): string {
  const line = (cells: readonly unknown[]) => cells.map((c) => csvCell(cellText(c))).join(',');
  return [line(table.columns), ...table.rows.map(line)].join('\n') + '\n';
}

export function formatJson(runs: readonly RunExport[]): string {
  return JSON.stringify(runs.map(exportRun), null, 2) + '\n';
}

/** Plain YAML (no language-specific tags, unlike the seed's PyYAML output). */
export function formatYaml(runs: readonly RunExport[]): string {
  // Loaded on first use: `yaml` costs ~25 ms to import, and most commands never write YAML.
  const { stringify } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return stringify(runs.map(exportRun), { aliasDuplicateObjects: false });
}

/** One plain object per run (the seed's `as_dataframe`): the CSV table's rows as objects. */
export function tableRecords(table: ExportTable): Record<string, unknown>[] {
  return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
}
