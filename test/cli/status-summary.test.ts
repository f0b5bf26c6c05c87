import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectSameAsFull, genEnsemble, summaryTemps, themis } from '../helpers/summary.js';

/**
 * The summary of finished runs, through the real CLI: `themis status` answers from it and reads
 * only the runs it does not cover, and always says what `themis status --full` says. Damage to the
 * summary itself is in test/torture/summary.test.ts.
 */

afterAll(() => {
  for (const d of summaryTemps) fs.rmSync(d, { recursive: true, force: true });
});

describe('themis status and the summary of finished runs (real CLI)', () => {
  it('after a run, every finished run is answered from the summary: no status file read', async () => {
    const root = genEnsemble(24);
    themis(root, 'run', '--cores', '2');
    const r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 18, failed: 6 });
    expect(r.summary).toMatchObject({ used: true, covered: 24, read: 0, problem: null });
    expect(JSON.parse(themis(root, 'progress', '--json').stdout)).toMatchObject({ completed: 24, total: 24 });
  }, 60_000);
  it('requeue makes its runs uncovered first; after they run again they are covered again', async () => {
    const root = genEnsemble(24);
    themis(root, 'run', '--cores', '2');
    themis(root, 'requeue', '--status', 'failed');
    let r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 18, queued: 6, failed: 0 });
    expect(r.summary).toMatchObject({ used: true, covered: 18, read: 6 });
    themis(root, 'requeue', '--hard', '1-3');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 15, queued: 9 });
    themis(root, 'run', '--cores', '2');
    r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 24, read: 0 });
  }, 60_000);
  it('added runs are read until they finish; dequeued runs are right either way', async () => {
    const root = genEnsemble(8);
    themis(root, 'run', '--cores', '2');
    fs.writeFileSync(path.join(root, 'more.csv'), 'i,code\n9,0\n10,1\n11,0\n');
    themis(root, 'add', 'more.csv');
    let r = await expectSameAsFull(root);
    expect(r.summary).toMatchObject({ used: true, covered: 8, read: 3 });
    themis(root, 'dequeue', '10');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ queued: 2, killed: 1 });
    themis(root, 'run', '--cores', '2');
    r = await expectSameAsFull(root);
    expect(r.counts).toMatchObject({ successful: 8, failed: 2, killed: 1 });
  }, 60_000);
});
