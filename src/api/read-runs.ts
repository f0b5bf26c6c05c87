import fs from 'node:fs';
import path from 'node:path';
import { FORMAT_VERSION, RUN_META_DIR } from '../store/layout.js';
import type { ResultRecord, RunRecord } from '../store/records.js';
import type { RunState } from '../store/scan.js';
import type { RunExport } from './export.js';

/**
 * Read what the exporters need for many runs: `run.json` and `result.json` beside each status.
 * Hot on 100k-run ensembles, so paths are built by hand (not `runPaths`, which makes ten) and a
 * run without a result costs one failed open. A run whose run.json cannot be read is exported
 * with an empty sample and no steps rather than failing the whole export.
 */
export function readRunExports(states: readonly RunState[]): RunExport[] {
  const out = new Array<RunExport>(states.length);
  for (let i = 0; i < states.length; i++) {
    const r = states[i]!;
    const meta = r.dir + path.sep + RUN_META_DIR + path.sep;
    const record = readJson<RunRecord>(meta + 'run.json');
    const usable = record !== null && typeof record.format === 'number' && record.format <= FORMAT_VERSION && Array.isArray(record.steps);
    const result = readJson<ResultRecord>(meta + 'result.json');
    out[i] = {
      id: r.id,
      status: r.status?.status ?? null,
      sample: usable && record.sample && typeof record.sample === 'object' ? record.sample : {},
      sampleKeys: usable && Array.isArray(record.sampleKeys) ? record.sampleKeys : [],
      steps: usable ? record.steps : [],
      step: r.status?.step ?? 0,
      result: result === null || result.result === undefined ? null : result.result,
    };
  }
  return out;
}

function readJson<T>(file: string): T | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}
