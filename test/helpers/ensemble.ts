import path from 'node:path';
import { DEFAULT_ALLOCATION } from '../../src/render/generate.js';
import { FORMAT_VERSION } from '../../src/store/layout.js';
import type { EnsembleRecord } from '../../src/store/records.js';

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
