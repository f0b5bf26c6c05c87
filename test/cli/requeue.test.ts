import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStop, setStop } from '../../src/store/ensemble-state.js';
import { readStatus } from '../../src/store/records.js';
import { makeTempDir } from '../helpers/cli.js';
import { cli, writeHandEnsemble } from '../api/helpers.js';
import path from 'node:path';

let root: string;
let setupDir: string;
const dir = (id: number) => path.join(root, 'runs', String(id));
beforeEach(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, [
    { status: 'failed', steps: [{}, {}, {}], step: 2 },
    { status: 'failed', steps: [{}, {}], step: 1 },
    { status: 'successful', steps: [{}, {}], step: 1 },
    { status: 'queued' },
    { status: 'queued' },
  ]);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));
const S = () => ['--setup-dir', setupDir];

describe('themis requeue', () => {
  it('--status failed requeues every failed run at its step, and clears the max_failed_runs stop', async () => {
    setStop(setupDir, { reason: 'too many failures', by: 't', kind: 'max-failed-runs' });
    const r = await cli(['requeue', '--status', 'failed', ...S()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('requeued 2 runs: 1-2');
    expect(readStatus(dir(1))).toMatchObject({ status: 'queued', step: 2, restarts: 0 });
    expect(readStatus(dir(2))).toMatchObject({ status: 'queued', step: 1 });
    expect(readStop(setupDir)).toBeNull();
  });

  it('soft requeue of a successful run starts at step 0; --hard resets failed runs to 0 (alias restart)', async () => {
    expect((await cli(['requeue', '3', ...S()])).code).toBe(0);
    expect(readStatus(dir(3))).toMatchObject({ status: 'queued', step: 0 });
    expect((await cli(['restart', '1', '--hard', ...S()])).code).toBe(0);
    expect(readStatus(dir(1))).toMatchObject({ status: 'queued', step: 0 });
  });

  it('unknown ids are reported with exit 2; the known ones are still requeued', async () => {
    const r = await cli(['requeue', '1,8-9', ...S()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no such runs: 8-9');
    expect(readStatus(dir(1))?.status).toBe('queued');
  });

  it('already queued runs are left alone and said so; bad id lists and no selection are usage errors', async () => {
    const r = await cli(['requeue', '4', ...S()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('run 4 left as it is: already queued');
    expect((await cli(['requeue', '1-x', ...S()])).code).toBe(2);
    const none = await cli(['requeue', ...S()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--status');
    expect((await cli(['requeue', '--status', 'finished', ...S()])).code).toBe(2);
  });

  it('--json reports changed, pending, skipped and unknown', async () => {
    const r = await cli(['requeue', '2', '4', '99', '--json', ...S()]);
    expect(JSON.parse(r.stdout)).toEqual({ changed: [2], pending: [], skipped: [{ id: 4, reason: 'already queued' }], unknown: [99] });
  });
});

describe('themis dequeue', () => {
  it('queued runs become killed and are never started; finished ones are left alone (alias kill)', async () => {
    const r = await cli(['dequeue', '3-5', ...S()]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dequeued 2 runs: 4-5');
    expect(r.stderr).toContain('run 3 left as it is: already successful');
    expect(readStatus(dir(4))).toMatchObject({ status: 'killed', reason: 'dequeued' });
    expect((await cli(['kill', '--status', 'queued', ...S()])).stdout).toContain('no run changed');
    const many = await cli(['dequeue', '1-5', ...S()]);
    expect(many.stderr).toBe('runs 1-2 left as they are: already failed\nrun 3 left as it is: already successful\nruns 4-5 left as they are: already killed\n');
  });
});
