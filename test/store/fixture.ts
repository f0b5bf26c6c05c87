import fs from 'node:fs';
import path from 'node:path';
import { FORMAT_VERSION, runPaths, setupPaths } from '../../src/store/layout.js';
import { newStatus, writeEnsemble, writeStatus, type EnsembleRecord, type StatusRecord } from '../../src/store/records.js';
import { writeIndexBatch } from '../../src/store/run-index.js';
import { STEP_DEFAULTS } from '../../src/model/step.js';
import { makeTempDir } from '../helpers/cli.js';
import { testEnsembleRecord } from '../helpers/ensemble.js';

/** A minimal ensemble on disk: ensemble.json, one index batch, run dirs with status.json. */
export function makeEnsemble(n: number, status: (id: number) => Partial<StatusRecord> = () => ({})): { root: string; setup: string; dir: (id: number) => string } {
  const root = makeTempDir('themis-store-');
  const setup = path.join(root, '.themis_setup');
  fs.mkdirSync(setup, { recursive: true });
  const ens: EnsembleRecord = testEnsembleRecord(root, setup, { application: '/bin/true', keepUnknownTokens: true });
  writeEnsemble(setup, ens);
  const dir = (id: number) => path.join(root, 'runs', String(id));
  const entries = [];
  for (let id = 1; id <= n; id++) {
    fs.mkdirSync(runPaths(dir(id)).meta, { recursive: true });
    const run = { format: FORMAT_VERSION, id, sample: { x: id }, sampleKeys: ['x'], steps: [{ ...STEP_DEFAULTS, args: ['/bin/true'] }] };
    fs.writeFileSync(runPaths(dir(id)).run, JSON.stringify(run));
    writeStatus(dir(id), { ...newStatus(id), ...status(id) });
    entries.push({ id, dir: dir(id) });
  }
  writeIndexBatch(setup, root, 1, entries);
  fs.mkdirSync(setupPaths(setup).stateDir, { recursive: true });
  return { root, setup, dir };
}
