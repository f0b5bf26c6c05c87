import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanQueue } from '../../src/pack/queue.js';
import { RunQueue, windowFor } from '../../src/pack/run-queue.js';
import type { PackerConfig } from '../../src/pack/types.js';
import { newStatus, withHistory, writeStatus } from '../../src/store/records.js';
import { makeEnsemble, startPack, statuses } from './helpers.js';

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

describe("the packer's run queue", () => {
  it('sizes its decision window by the allocation: 4 per core, 32 to 256', () => {
    expect([1, 2, 8, 16, 64, 1000].map(windowFor)).toEqual([32, 32, 32, 64, 256, 256]);
  });

  it('offers a window of loaded candidates, drops unreadable and claimed-meanwhile runs, keeps what it knew across scans', async () => {
    const e = makeEnsemble(Array.from({ length: 40 }, () => ({ steps: [{ args: ['/bin/true'], coresPerTask: 2 }] })));
    fs.writeFileSync(path.join(e.runDir(3), '.themis/run.json'), 'not json');
    const logged: string[] = [];
    const cfg = { setupDir: e.setupDir, plan: [], steal: true, leaseMs: 60_000, now: () => Date.now(), log: (l: string) => logged.push(l) } as unknown as PackerConfig;
    const q = new RunQueue(cfg, { leaseMs: 60_000, now: () => Date.now() }, 32);
    await q.scan(new Set([1]), (id) => id === 2);
    expect(q.pending).toBe(40);
    const w = q.window();
    expect(w).toHaveLength(32);
    expect(w[0]!.id).toBe(4); // 1 skipped, 2 ours meanwhile, 3 unreadable
    expect(w.every((c) => c.need!.coresPerTask === 2 && c.record !== undefined)).toBe(true);
    w[0]!.passedOver = 5;
    w[1]!.gone = true;
    expect(q.window()[0]).toBe(w[0]);
    expect(q.window().map((c) => c.id)).not.toContain(5);
    // A rescan keeps the waiting entry (its passedOver count) and offers the taken one again.
    await q.scan(new Set(), () => false);
    const again = q.window();
    expect(again.find((c) => c.id === 4)!.passedOver).toBe(5);
    expect(again.map((c) => c.id).slice(0, 4)).toEqual([1, 2, 4, 5]);
  });
});

describe("the packer's scans read in threads (THEMIS_SCAN_WORKERS, as on a network file system)", () => {
  it('drain the ensemble exactly as a scan here does: every run once, all successful', async () => {
    const e = makeEnsemble([]);
    const out = path.join(e.root, 'ran');
    const app = ['/bin/sh', '-c', 'echo "$THEMIS_RUN_ID" >> "$0"', out];
    const n = 30;
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: app }] })),
      { root: e.root },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '2', '--heartbeat', '0.2'], { THEMIS_SCAN_WORKERS: '3' }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('scans read the status files with 3 threads');
    expect(statuses(e2.root, n).every((s) => s.status === 'successful')).toBe(true);
    const ran = fs
      .readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map(Number)
      .sort((a, b) => a - b);
    expect(ran).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }, 60_000);
});
