import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StatusRecord } from '../../src/store/records.js';
import { runPaths } from '../../src/store/layout.js';
import { FAST, LEDGER_APP, LONG, SEED, bump, checkConsistency, flushFigures, genLedgerEnsemble, newFigures, readLedger, recordTrial, rng, sleep, startPacker, themisAsync } from './helpers.js';

/**
 * Two to four packers drain one ensemble while `themis requeue`, `themis dequeue` and `themis add`
 * run against it. Expected ledger: a requeued run ends once more per requeue that took effect; a
 * dequeued run ends killed (never completed after its dequeue) or successful (finished first);
 * every other run, including the added ones, ends successful exactly once.
 */

const figures = newFigures();
afterAll(() => flushFigures('concurrent', figures));

const TRIALS = LONG ? 8 : 3;

describe('packers racing requeue, dequeue and add', () => {
  it.each(Array.from({ length: TRIALS }, (_, i) => ({ i, seed: SEED + 1000 + i })))(
    'trial $i (seed $seed)',
    async ({ i, seed }) => {
      const r = rng(seed);
      const n = 30;
      const e = genLedgerEnsemble(n, 0.4);
      const packers = 2 + (i % 3);
      const ps = Array.from({ length: packers }, () => startPacker(e.setupDir, { args: [...FAST.slice(0, 1), '2', ...FAST.slice(2)] }));
      bump(figures.faults, `${packers} packers at once`);
      const ends = () => readLedger(e.ledger).ends;
      // dequeue right away (some of its runs queued, some maybe running); the rest once work is done.
      const dequeueIds = [n - 2, n - 1, n, 6 + Math.floor(r() * 4)];
      const dqP = (async () => {
        await sleep(Math.floor(r() * 800));
        return themisAsync(['dequeue', '--json', ...dequeueIds.map(String)], e.root);
      })();
      // Wait for some work to finish, then fire the commands while the packers run.
      const until = Date.now() + 20_000;
      while ([...ends().values()].length < 4 + Math.floor(r() * 4) && Date.now() < until) await sleep(20);
      const done = [...ends().keys()].slice(0, 3);
      const more = path.join(e.root, 'more.csv');
      fs.writeFileSync(more, 'x\n101\n102\n103\n104\n105\n106\n');
      const [rq, dq, add, rq2] = await Promise.all([
        themisAsync(['requeue', '--hard', '--json', ...done.map(String)], e.root),
        dqP,
        themisAsync(['add', more, '--no-batch-script', '-a', `${e.ledger} 0.15`, '--json'], e.root),
        (async () => {
          await sleep(Math.floor(r() * 300));
          return themisAsync(['requeue', '--json', ...done.map(String)], e.root);
        })(),
      ]);
      bump(figures.faults, 'concurrent requeue', 2);
      bump(figures.faults, 'concurrent dequeue');
      bump(figures.faults, 'concurrent add');
      for (const c of [rq, dq, add, rq2]) expect(c.code, c.stderr).toBe(0);
      const results = await Promise.all(ps.map((p) => p.done));
      for (const res of results) expect([0, 4], res.stderr).toContain(res.code);
      // Added runs may have landed after every packer had decided there was nothing left: one more drains them.
      const last = await startPacker(e.setupDir).done;
      expect(last.code, last.stderr).toBe(0);
      await sleep(50);

      const total = n + 6;
      const c = checkConsistency(e.setupDir, { leaseMs: 1000 });
      expect(c.problems).toEqual([]);
      expect(c.total).toBe(total);
      const ledger = readLedger(e.ledger);
      const status = (id: number): StatusRecord => JSON.parse(fs.readFileSync(runPaths(path.join(e.root, 'runs', String(id))).status, 'utf8')) as StatusRecord;
      const requeues = (id: number) => status(id).history.filter((h) => h.event === 'requeued' && /, was (successful|failed|killed|aborted)/.test(h.detail ?? '')).length;
      const twice: number[] = [];
      const lost: number[] = [];
      for (let id = 1; id <= total; id++) {
        const s = status(id);
        const got = ledger.ends.get(id) ?? 0;
        if (dequeueIds.includes(id)) {
          if (s.status === 'killed' ? got > 1 : s.status !== 'successful' || got !== 1) lost.push(id);
          continue;
        }
        const want = 1 + (done.includes(id) ? requeues(id) : 0);
        if (s.status !== 'successful') lost.push(id);
        else if (got > want) twice.push(id);
        else if (got < want) lost.push(id);
      }
      recordTrial(figures, { ...c, lost, completedTwice: twice });
      expect({ twice, lost }, JSON.stringify({ done, dequeueIds, rq: rq.stdout, rq2: rq2.stdout, dq: dq.stdout })).toEqual({ twice: [], lost: [] });
      // The requeue really did run them again, and the dequeue really did stop something queued.
      expect(done.some((id) => (ledger.ends.get(id) ?? 0) >= 2)).toBe(true);
      expect(dequeueIds.filter((id) => status(id).status === 'killed').length).toBeGreaterThan(0);
      void LEDGER_APP;
      fs.rmSync(e.root, { recursive: true, force: true });
    },
    120_000,
  );
});
