import fs from 'node:fs';
import path from 'node:path';
import { STEP_DEFAULTS, type StepSpec } from '../../src/model/step.js';
import { DEFAULT_ALLOCATION } from '../../src/render/generate.js';
import { FORMAT_VERSION, runPaths, setupPaths } from '../../src/store/layout.js';
import { newStatus, writeEnsemble, writeStatus, type EnsembleRecord, type RunRecord, type StatusRecord } from '../../src/store/records.js';
import { writeIndexBatch } from '../../src/store/run-index.js';
import { makeTempDir } from './cli.js';

/** An `ensemble.json` record for hand-written test ensembles: gen's defaults, local scheduler. */
export function testEnsembleRecord(root: string, setupDir: string, extra: Partial<EnsembleRecord> = {}): EnsembleRecord {
  return {
    format: FORMAT_VERSION,
    kind: 'themis-ensemble',
    createdAt: new Date().toISOString(),
    root,
    setupDir: path.resolve(setupDir),
    application: null,
    appIsBatchScript: false,
    runDirNames: 'runs/{run_id}',
    parse: [],
    copy: [],
    symlink: [],
    maxRestarts: 0,
    maxFailedRuns: null,
    abortOn: [],
    interface: null,
    scheduler: 'local',
    allocation: { ...DEFAULT_ALLOCATION },
    onCompletion: null,
    keepUnknownTokens: false,
    ...extra,
  };
}

/** One run of a hand-written ensemble: its steps (args default to /bin/true), sample and status fields. */
export interface FixtureRun {
  steps?: (Partial<StepSpec> & { args?: string[] })[];
  sample?: Record<string, unknown>;
  status?: Partial<StatusRecord>;
}

export interface FixtureEnsemble {
  root: string;
  setupDir: string;
  runDir: (id: number) => string;
}

/**
 * An ensemble on disk the way `gen` leaves it (ensemble.json, one index batch, `state/`, run dirs
 * `runs/N` with run.json and a status.json), without `gen`: store and packer tests only need the
 * on-disk contract. `runs` lists the runs, or counts them: N runs with sample `{x: id}` and one
 * `/bin/true` step (batch script, as gen's default), `opts.status(id)` for their status fields.
 * Listed runs' steps default to STEP_DEFAULTS with `batchScript: false` (they run as written).
 */
export function makeEnsemble(runs: FixtureRun[] | number, opts: Partial<EnsembleRecord> & { root?: string; status?: (id: number) => Partial<StatusRecord> } = {}): FixtureEnsemble {
  const { root: given, status, ...fields } = opts;
  const list: FixtureRun[] =
    typeof runs === 'number' ? Array.from({ length: runs }, (_, i) => ({ sample: { x: i + 1 }, steps: [{ ...STEP_DEFAULTS }], ...(status && { status: status(i + 1) }) })) : runs;
  const root = given ?? makeTempDir('themis-ens-');
  const setupDir = path.join(root, '.themis_setup');
  const runDir = (id: number) => path.join(root, 'runs', String(id));
  fs.mkdirSync(setupPaths(setupDir).stateDir, { recursive: true });
  writeEnsemble(setupDir, testEnsembleRecord(root, setupDir, fields));
  const entries = list.map((r, i) => {
    const id = i + 1;
    fs.mkdirSync(runPaths(runDir(id)).meta, { recursive: true });
    const steps: StepSpec[] = (r.steps ?? [{}]).map((s) => ({ ...STEP_DEFAULTS, batchScript: false, args: ['/bin/true'], ...s }));
    const sample = r.sample ?? {};
    const rec: RunRecord = { format: FORMAT_VERSION, id, sample, sampleKeys: Object.keys(sample), steps };
    fs.writeFileSync(runPaths(runDir(id)).run, JSON.stringify(rec));
    writeStatus(runDir(id), { ...newStatus(id), ...r.status });
    return { id, dir: runDir(id) };
  });
  writeIndexBatch(setupDir, root, 1, entries);
  return { root, setupDir, runDir };
}
