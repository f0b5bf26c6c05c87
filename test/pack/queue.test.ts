import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanQueue } from '../../src/pack/queue.js';
import { newStatus, withHistory, writeStatus } from '../../src/store/records.js';
import { makeEnsemble } from './helpers.js';

describe('reading the queue', () => {
  it('plan first, then the rest in id order; skips finished, held and foreign-running runs; reports unreadable ones', async () => {
    const e = makeEnsemble(Array.from({ length: 8 }, () => ({ steps: [{ args: ['/bin/true'] }, { args: ['/bin/true'] }] })));
    // As themis writes it (indented), compact, and with keys in another order: all read the same.
    writeStatus(e.runDir(2), withHistory({ ...newStatus(2), step: 1 }, 'requeued', 'a "quoted" detail with "step": 9'));
    const s3 = { ...newStatus(3), status: 'successful' };
    fs.writeFileSync(path.join(e.runDir(3), '.themis/status.json'), JSON.stringify({ history: s3.history, ...s3 }));
    fs.writeFileSync(path.join(e.runDir(4), '.themis/status.json'), '{"format":1,');
    writeStatus(e.runDir(5), { ...newStatus(5), status: 'running' });
    const scan = await scanQueue(e.setupDir, {
      plan: [7, 6],
      steal: true,
      skip: new Set([8]),
      now: 0,
      claimState: (dir) => (dir === e.runDir(5) ? 'live' : 'stale'),
    });
    expect(scan.candidates.map((c) => [c.id, c.step])).toEqual([
      [7, 0],
      [6, 0],
      [1, 0],
      [2, 1],
    ]);
    expect(scan.problems.map((p) => p.id)).toEqual([4]);
    expect(scan.pending).toBe(7 - 1); // 1,2,5,6,7,8 (3 finished, 4 unreadable)
    const onlyPlan = await scanQueue(e.setupDir, { plan: [7, 6], steal: false, skip: new Set(), now: 0, claimState: () => 'live' });
    expect(onlyPlan.candidates.map((c) => c.id)).toEqual([7, 6]);
  });
});
