import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ledgerApp, makeEnsemble, maxOverlap, readLedger, startPack, statuses } from './helpers.js';

/** Pair each run's start and end lines into intervals. */
function intervals(ledger: string) {
  const ev = readLedger(ledger);
  const starts = new Map(ev.filter((e) => e.kind === 'start').map((e) => [`${e.id}:${e.step}`, e]));
  return ev
    .filter((e) => e.kind === 'end')
    .map((e) => {
      const s = starts.get(`${e.id}:${e.step}`)!;
      return { id: e.id, start: s.at, end: e.at, gpus: s.gpus };
    });
}

describe('packing onto cores and GPUs (real processes)', () => {
  it('--gpus 4 with runs needing 1 or 2 GPUs: each gets its own, no GPU shared at any instant', async () => {
    const e = makeEnsemble([]);
    const app = ledgerApp(e.root, 'app.sh', 'sleep 0.2');
    const ledger = path.join(e.root, 'ledger');
    const n = 16;
    const e2 = makeEnsemble(
      Array.from({ length: n }, (_, i) => ({ steps: [{ args: [app, ledger], gpusPerTask: i % 3 === 0 ? 2 : 1 }] })),
      { root: e.root },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '8', '--gpus', '4', '--heartbeat', '0.5']).done;
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(e2.root, n).every((s) => s.status === 'successful')).toBe(true);
    const iv = intervals(ledger);
    expect(iv).toHaveLength(n);
    for (const i of iv) {
      const want = (i.id - 1) % 3 === 0 ? 2 : 1;
      expect(i.gpus.split(',')).toHaveLength(want);
      for (const g of i.gpus.split(',')) expect(['0', '1', '2', '3']).toContain(g);
    }
    // Per GPU id: the intervals holding it never overlap.
    for (const g of ['0', '1', '2', '3']) {
      const holding = iv.filter((i) => i.gpus.split(',').includes(g)).map((i) => ({ start: i.start, end: i.end, weight: 1 }));
      expect(maxOverlap(holding), `GPU ${g}`).toBeLessThanOrEqual(1);
    }
    // And the GPUs were really shared out in parallel (not one run at a time).
    expect(maxOverlap(iv.map((i) => ({ start: i.start, end: i.end, weight: 1 })))).toBeGreaterThan(1);
  }, 30_000);

  it('never oversubscribes cores: runs of 1 to 3 cores on 4 cores stay within 4 at every instant', async () => {
    const e = makeEnsemble([]);
    const app = ledgerApp(e.root, 'app.sh', 'sleep 0.1');
    const ledger = path.join(e.root, 'ledger');
    const n = 24;
    const cores = (i: number) => 1 + (i % 3);
    const e2 = makeEnsemble(
      Array.from({ length: n }, (_, i) => ({ steps: [{ args: [app, ledger], coresPerTask: cores(i) }] })),
      { root: e.root },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '4', '--heartbeat', '0.5']).done;
    expect(r.code, r.stderr).toBe(0);
    const iv = intervals(ledger);
    expect(iv).toHaveLength(n);
    const peak = maxOverlap(iv.map((i) => ({ start: i.start, end: i.end, weight: cores(i.id - 1) })));
    expect(peak).toBeLessThanOrEqual(4);
    expect(peak).toBeGreaterThan(1);
  }, 30_000);

  it('a run that can never fit is not started and not failed; the packer says why and exits 3', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/true'], coresPerTask: 64 }] }, { steps: [{ args: ['/bin/true'] }] }]);
    const r = await startPack(['--setup-dir', e.setupDir, '--cores', '32', '--heartbeat', '0.5']).done;
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('needs 64 cores on one node, nodes have 32');
    const [big, small] = statuses(e.root, 2);
    expect(big!.status).toBe('queued');
    expect(big!.reason).toContain('needs 64 cores on one node, nodes have 32');
    expect(small!.status).toBe('successful');
  }, 30_000);

  it('--max-concurrency caps running steps', async () => {
    const e = makeEnsemble([]);
    const app = ledgerApp(e.root, 'app.sh', 'sleep 0.1');
    const ledger = path.join(e.root, 'ledger');
    const e2 = makeEnsemble(
      Array.from({ length: 8 }, () => ({ steps: [{ args: [app, ledger] }] })),
      { root: e.root },
    );
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '8', '--max-concurrency', '2']).done;
    expect(r.code, r.stderr).toBe(0);
    expect(maxOverlap(intervals(ledger).map((i) => ({ start: i.start, end: i.end, weight: 1 })))).toBeLessThanOrEqual(2);
  }, 30_000);
});
