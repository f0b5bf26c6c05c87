import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPaths } from '../../src/store/layout.js';
import { countByStatus, scanRuns, scanRunsAsync } from '../../src/store/scan.js';
import { makeEnsemble } from '../helpers/ensemble.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

const STATUSES = ['queued', 'running', 'successful', 'failed', 'killed', 'aborted'] as const;

describe('scanRuns', () => {
  it('reads every run in index order and counts by status', () => {
    const e = makeEnsemble(12, { status: (id) => ({ status: STATUSES[id % 6]! }) });
    temps.push(e.root);
    const { ensemble, runs } = scanRuns(e.setupDir);
    expect(ensemble.root).toBe(e.root);
    expect(runs.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(runs[0]).toMatchObject({ id: 1, dir: e.runDir(1), problem: null, status: { status: 'running', step: 0 } });
    expect(countByStatus(runs)).toEqual({ total: 12, unreadable: 0, queued: 2, running: 2, successful: 2, failed: 2, killed: 2, aborted: 2 });
  });

  it('turns corrupt, truncated, empty, foreign and missing status files into problems, not crashes', async () => {
    const e = makeEnsemble(8);
    temps.push(e.root);
    const status = (id: number) => runPaths(e.runDir(id)).status;
    const good = fs.readFileSync(status(1), 'utf8');
    fs.writeFileSync(status(2), good.slice(0, 20)); // truncated
    fs.writeFileSync(status(3), ''); // empty
    fs.writeFileSync(status(4), JSON.stringify({ ...JSON.parse(good), id: 4, status: 'exploded' }));
    fs.writeFileSync(status(5), JSON.stringify({ ...JSON.parse(good), id: 5, format: 99 }));
    fs.rmSync(status(6));
    fs.rmSync(e.runDir(7), { recursive: true });
    fs.writeFileSync(status(8), JSON.stringify({ ...JSON.parse(good), id: 3 }));
    for (const result of [scanRuns(e.setupDir), await scanRunsAsync(e.setupDir, { sliceSize: 3 })]) {
      const p = Object.fromEntries(result.runs.map((r) => [r.id, r.problem]));
      expect(p[1]).toBeNull();
      expect(p[2]).toMatch(/runs\/2\/\.themis\/status\.json is not valid JSON \(truncated or corrupt\?\).*themis doctor/);
      expect(p[3]).toMatch(/status\.json is empty/);
      expect(p[4]).toMatch(/field "status" is "exploded", expected one of queued, running/);
      expect(p[5]).toMatch(/format 99, newer than this themis.*upgrade/);
      expect(p[6]).toMatch(/runs\/6\/\.themis\/status\.json is missing/);
      expect(p[7]).toMatch(/run directory .*runs\/7 is missing/);
      expect(p[8]).toMatch(/field "id" is 3 but the index says run 8/);
      expect(countByStatus(result.runs)).toMatchObject({ total: 8, unreadable: 7, queued: 1 });
    }
  });

  it('reads only the ids asked for and leaves out unknown ones', async () => {
    const e = makeEnsemble(10);
    temps.push(e.root);
    expect(scanRuns(e.setupDir, { ids: [3, 7, 99] }).runs.map((r) => r.id)).toEqual([3, 7]);
    expect((await scanRunsAsync(e.setupDir, { ids: new Set([10]) })).runs.map((r) => r.id)).toEqual([10]);
  });

  it('names the missing ensemble', () => {
    expect(() => scanRuns('/nonexistent/setup')).toThrow(/no ensemble in \/nonexistent\/setup.*themis gen/);
  });

  it('scans 5,000 runs, and the async scan yields to the event loop', async () => {
    const e = makeEnsemble(5000, { status: (id) => ({ status: id % 10 === 0 ? 'failed' : 'successful' }) });
    temps.push(e.root);
    const { runs } = scanRuns(e.setupDir);
    expect(runs).toHaveLength(5000);
    expect(countByStatus(runs)).toMatchObject({ successful: 4500, failed: 500, unreadable: 0 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const asyncRuns = (await scanRunsAsync(e.setupDir, { sliceSize: 250 })).runs;
    clearInterval(timer);
    expect(asyncRuns).toHaveLength(5000);
    expect(asyncRuns.map((r) => r.status?.status)).toEqual(runs.map((r) => r.status?.status));
    expect(ticks).toBeGreaterThan(0);
    expect(path.isAbsolute(asyncRuns[0]!.dir)).toBe(true);
  });
});
