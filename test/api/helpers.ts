import fs from 'node:fs';
import path from 'node:path';
import type { RunStatus } from '../../src/model/status.js';
import { STEP_DEFAULTS, type Sample, type StepSpec } from '../../src/model/step.js';
import { FORMAT_VERSION, runPaths, setupPaths } from '../../src/store/layout.js';
import { newStatus, writeEnsemble, writeResult, writeStatus, type EnsembleRecord, type RunRecord } from '../../src/store/records.js';
import { writeIndexBatch } from '../../src/store/run-index.js';
import { testEnsembleRecord } from '../helpers/ensemble.js';

/** A run to write by hand: what `gen` and the packer would have left on disk. */
export interface HandRun {
  sample?: Sample;
  sampleKeys?: string[];
  steps?: Partial<StepSpec>[];
  status?: RunStatus;
  step?: number;
  result?: unknown;
  /** Leave the run directory unrendered (no .themis at all). */
  missing?: boolean;
  reason?: string;
}

export function ensembleRecord(root: string, setupDir: string, extra: Partial<EnsembleRecord> = {}): EnsembleRecord {
  // A fixed date keeps exported golden files stable.
  return testEnsembleRecord(root, setupDir, { createdAt: '2026-01-01T00:00:00.000Z', application: '/bin/true', ...extra });
}

/**
 * Write an ensemble by hand under `root` (setup dir `root/.themis_setup`, runs in `root/runs/N`),
 * ids 1..N in order. Returns the setup directory.
 */
export function writeHandEnsemble(root: string, runs: HandRun[], extra: Partial<EnsembleRecord> = {}): string {
  const setupDir = path.join(root, '.themis_setup');
  const sp = setupPaths(setupDir);
  fs.mkdirSync(sp.root, { recursive: true });
  fs.mkdirSync(sp.stateDir, { recursive: true });
  writeEnsemble(setupDir, ensembleRecord(root, setupDir, extra));
  const entries = runs.map((_r, i) => ({ id: i + 1, dir: path.join(root, 'runs', String(i + 1)) }));
  writeIndexBatch(setupDir, root, 1, entries);
  for (const [i, r] of runs.entries()) writeHandRun(entries[i]!.dir, i + 1, r);
  return setupDir;
}

export function writeHandRun(dir: string, id: number, r: HandRun): void {
  if (r.missing) return;
  const rp = runPaths(dir);
  fs.mkdirSync(rp.meta, { recursive: true });
  const sample = r.sample ?? {};
  const steps: StepSpec[] = (r.steps ?? [{}]).map((s) => ({ ...STEP_DEFAULTS, args: ['/bin/true'], ...s }));
  const rec: RunRecord = { format: FORMAT_VERSION, id, sample, sampleKeys: r.sampleKeys ?? Object.keys(sample), steps };
  fs.writeFileSync(rp.run, JSON.stringify(rec));
  const st = newStatus(id);
  writeStatus(dir, { ...st, status: r.status ?? 'queued', step: r.step ?? 0, reason: r.reason ?? null });
  if (r.result !== undefined) writeResult(dir, r.result);
}

/** Run the CLI in this process, capturing what it prints (fast; most CLI tests use this). */
export async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { runCli } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const output = {
    out: (t: string) => {
      stdout += t.endsWith('\n') ? t : t + '\n';
    },
    err: (t: string) => {
      stderr += t.endsWith('\n') ? t : t + '\n';
    },
    interactive: false,
  };
  const code = await runCli(args, output);
  // runCli reports through its return value; leave no exit code behind for the test runner.
  process.exitCode = undefined;
  return { code, stdout, stderr };
}
