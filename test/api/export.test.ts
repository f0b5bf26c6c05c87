import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseYaml } from 'yaml';
import { buildTable, formatCsv, formatJson, formatYaml, tableRecords, type RunExport } from '../../src/api/export.js';
import { STEP_DEFAULTS, type StepSpec } from '../../src/model/step.js';
import { FIXTURES } from '../helpers/cli.js';

const step = (s: Partial<StepSpec> = {}): StepSpec => ({ ...STEP_DEFAULTS, args: ['/bin/app', '-x'], ...s });

/** Runs covering the awkward cases: mixed results, keys out of order, commas, quotes, newlines. */
export const EXPORT_RUNS: RunExport[] = [
  {
    id: 1,
    status: 'successful',
    sample: { zeta: '1', alpha: 'a,b' },
    sampleKeys: ['zeta', 'alpha'],
    steps: [step({ tasks: 2, coresPerTask: 3, gpusPerTask: 1 })],
    step: 0,
    result: { energy: 1.5, label: 'say "hi"' },
  },
  {
    id: 2,
    status: 'failed',
    sample: { zeta: '2', alpha: 'line\nbreak', extra: 'x' },
    sampleKeys: ['zeta', 'alpha', 'extra'],
    steps: [step(), step({ args: ['/bin/post'], tasks: 4 })],
    step: 1,
    result: 42,
  },
  { id: 3, status: 'queued', sample: { zeta: '3', alpha: ' padded ' }, sampleKeys: ['zeta', 'alpha'], steps: [step()], step: 0, result: null },
  {
    id: 4,
    status: 'aborted',
    sample: { zeta: '4', alpha: 'z', status: 'mine' },
    sampleKeys: ['zeta', 'alpha', 'status'],
    steps: [step({ coresPerTask: 0 })],
    step: 0,
    result: { zeta: 'clash', nested: [1, 2] },
  },
];

const golden = (name: string) => path.join(FIXTURES, 'export', name);

/** Compare with a golden file; THEMIS_UPDATE_GOLDEN=1 rewrites it (review the diff). */
function expectGolden(name: string, actual: string): void {
  if (process.env.THEMIS_UPDATE_GOLDEN === '1') fs.writeFileSync(golden(name), actual);
  expect(actual).toBe(fs.readFileSync(golden(name), 'utf8'));
}

describe('export', () => {
  it('CSV: fixed columns filled from the current step, sample columns in input order, result columns', () => {
    const table = buildTable(EXPORT_RUNS);
    expect(table.columns).toEqual(['run_id', 'status', 'tasks', 'cores_per_task', 'gpus_per_task', 'zeta', 'alpha', 'extra', 'sample.status', 'energy', 'label', 'result.zeta', 'nested', 'result']);
    const csv = formatCsv(table);
    expectGolden('runs.csv', csv);
    const parsed = parseCsv(csv, { columns: false }) as string[][];
    expect(parsed[1]!.slice(0, 5)).toEqual(['1', 'successful', '2', '3', '1']);
    expect(parsed[2]!.slice(0, 5)).toEqual(['2', 'failed', '4', '1', '0']);
    expect(parsed[2]![6]).toBe('line\nbreak');
    expect(parsed[3]![6]).toBe(' padded ');
    expect(parsed[1]![10]).toBe('say "hi"');
    expect(parsed[2]![13]).toBe('42');
  });

  it('JSON and YAML hold id, status, sample, steps, result as plain data', () => {
    const json = formatJson(EXPORT_RUNS);
    expectGolden('runs.json', json);
    const back = JSON.parse(json);
    expect(back[1]).toEqual({
      run_id: 2,
      status: 'failed',
      sample: { zeta: '2', alpha: 'line\nbreak', extra: 'x' },
      steps: [
        { args: ['/bin/app', '-x'], tasks: 1, cores_per_task: 1, gpus_per_task: 0, timeout: 0, batch_script: true, cwd: '.' },
        { args: ['/bin/post'], tasks: 4, cores_per_task: 1, gpus_per_task: 0, timeout: 0, batch_script: true, cwd: '.' },
      ],
      result: 42,
    });
    const yaml = formatYaml(EXPORT_RUNS);
    expectGolden('runs.yaml', yaml);
    expect(yaml).not.toContain('!!');
    expect(parseYaml(yaml)).toEqual(back);
  });

  it('records: one plain object per run', () => {
    const recs = tableRecords(buildTable(EXPORT_RUNS.slice(0, 2)));
    expect(recs[0]).toMatchObject({ run_id: 1, status: 'successful', zeta: '1', energy: 1.5 });
    expect(recs[1]).toMatchObject({ run_id: 2, result: 42, energy: null });
  });

  it('an empty ensemble exports a header line, [] and an empty YAML list', () => {
    expect(formatCsv(buildTable([]))).toBe('run_id,status,tasks,cores_per_task,gpus_per_task\n');
    expect(formatJson([])).toBe('[]\n');
    expect(parseYaml(formatYaml([]))).toEqual([]);
  });
});
