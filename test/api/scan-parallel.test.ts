import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as srcParallel from '../../src/api/scan-parallel.js';
import { scanRuns } from '../../src/store/scan.js';
import { readRunExports } from '../../src/api/read-runs.js';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';
import { ensureBuilt } from './build.js';
import { writeHandEnsemble, type HandRun } from './helpers.js';

let root: string;
let setupDir: string;
beforeAll(() => {
  ensureBuilt();
  root = makeTempDir();
  const statuses = ['queued', 'running', 'successful', 'failed', 'killed', 'aborted'] as const;
  const runs: HandRun[] = Array.from({ length: 301 }, (_, i) => ({
    sample: { i: String(i) },
    status: statuses[i % 6],
    missing: i === 17,
    ...(i % 5 === 0 ? { result: { v: i } } : {}),
  }));
  setupDir = writeHandEnsemble(root, runs);
  fs.writeFileSync(path.join(root, 'runs', '42', '.themis', 'status.json'), '{"format":1,'); // torn
}, 120_000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('parallel scan', () => {
  it('worker threads (built module) give exactly the sequential answer, in id order, problems included', async () => {
    const built = (await import(pathToFileURL(path.join(PROJECT_ROOT, 'dist/api/scan-parallel.js')).href)) as typeof srcParallel;
    const seq = scanRuns(setupDir);
    const par = await built.scanRunsParallel(setupDir, { workers: 4 });
    expect(par.runs).toEqual(seq.runs);
    expect(par.runs[17]!.problem).toContain('missing');
    expect(par.runs[41]!.problem).toContain('not valid JSON');
    const some = await built.scanRunsParallel(setupDir, { workers: 3, ids: [5, 300, 7, 999] });
    expect(some.runs.map((r) => r.id)).toEqual([5, 7, 300]);
    // The thread itself answers (no silent fallback behind the equality above).
    const slice = seq.runs.slice(10, 20).map((r) => ({ id: r.id, dir: r.dir }));
    expect(await built.scanSlice(slice)).toEqual(seq.runs.slice(10, 20));
    // Exports (run.json + result.json) read in threads match too.
    expect(await built.readExportsParallel(root, seq.runs, 4)).toEqual(readRunExports(seq.runs));
  });

  it("the packer's scan reads status heads in threads too (built module): the same peeks as here, in index order", async () => {
    const built = (await import(pathToFileURL(path.join(PROJECT_ROOT, 'dist/store/parallel-read.js')).href)) as typeof import('../../src/store/parallel-read.js');
    const { peekStatus } = await import('../../src/store/peek.js');
    const entries = scanRuns(setupDir).runs.map((r) => ({ id: r.id, dir: r.dir }));
    const here = entries.map(peekStatus);
    expect(await built.peekStatusesParallel(entries, 4)).toEqual(here);
    expect(await built.peekSlice(entries.slice(40, 45))).toEqual(here.slice(40, 45));
    expect(here[41]).toMatchObject({ id: 42, problem: expect.stringContaining('not valid JSON') });
    expect(built.scanWorkersFor(10, root, { THEMIS_SCAN_WORKERS: '3' })).toBe(3);
    expect(built.scanWorkersFor(10_000, root, {})).toBe(1); // a local disk: one thread
  });

  it('falls back to reading here when threads cannot start; local disks are not "network"', async () => {
    // From the TypeScript sources the worker file does not exist: same answer, sequentially.
    expect((await srcParallel.scanRunsParallel(setupDir, { workers: 4 })).runs).toEqual(scanRuns(setupDir).runs);
    expect(srcParallel.onNetworkFs(root)).toBe(false);
    expect(srcParallel.onNetworkFs(path.join(root, 'no-such-dir'))).toBe(false);
    await expect(srcParallel.scanSlice([{ id: 1, dir: root }])).rejects.toBeTruthy();
  });
});
