import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ThemisError } from '../../src/model/errors.js';
import { releaseClaim, tryClaim, type ClaimOwner } from '../../src/store/claim.js';
import { failedCount, markFailed, readGeneration, readStop, setStop } from '../../src/store/ensemble-state.js';
import { runPaths } from '../../src/store/layout.js';
import { hostName, pidStartTime } from '../../src/store/proc.js';
import { readStatus, type StatusRecord } from '../../src/store/records.js';
import { dequeueRuns, parseIdList, requeueRuns } from '../../src/store/run-ops.js';
import { appendJournal } from '../helpers/journal.js';
import { makeEnsemble } from '../helpers/ensemble.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

function ens(n: number, status: (id: number) => Partial<StatusRecord>) {
  const e = makeEnsemble(n, { status });
  temps.push(e.root);
  return e;
}
const st = (dir: string) => readStatus(dir)!;
const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

function plantOwner(runDir: string, owner: Partial<ClaimOwner>): void {
  const p = runPaths(runDir);
  fs.mkdirSync(p.claim);
  const full: ClaimOwner = { host: hostName(), pid: process.pid, pidStart: null, jobId: '99', packerId: 'planted', token: 'tok', since: '', ...owner };
  fs.writeFileSync(p.claimOwner, JSON.stringify(full));
}

describe('requeueRuns', () => {
  it('soft: resumes a failed run at its step, a successful one at 0; resets budget; clears markers and a max-failed stop', () => {
    const e = ens(4, (id) =>
      id === 1
        ? { status: 'failed', step: 2, attempt: 3, restarts: 2, exitCode: 1, reason: 'exit 1' }
        : id === 2
          ? { status: 'successful', step: 3 }
          : id === 3
            ? { status: 'killed', step: 1 }
            : { status: 'aborted', step: 1, exitCode: 7 },
    );
    markFailed(e.setupDir, 1);
    markFailed(e.setupDir, 4);
    setStop(e.setupDir, { reason: 'too many failed', by: 'p', kind: 'max-failed-runs' });
    const gen = readGeneration(e.setupDir);
    const r = requeueRuns(e.setupDir, [1, 2, 3, 4]);
    expect(r).toEqual({ changed: [1, 2, 3, 4], pending: [], skipped: [], unknown: [] });
    expect(st(e.runDir(1))).toMatchObject({ status: 'queued', step: 2, attempt: 0, restarts: 0, exitCode: null, reason: null });
    expect(st(e.runDir(1)).history.at(-1)).toMatchObject({ event: 'requeued', detail: 'soft, was failed, resumes at step 2' });
    expect(st(e.runDir(2))).toMatchObject({ status: 'queued', step: 0 });
    expect(st(e.runDir(3))).toMatchObject({ status: 'queued', step: 1 });
    expect(st(e.runDir(4))).toMatchObject({ status: 'queued', step: 1, exitCode: null });
    expect(failedCount(e.setupDir)).toBe(0);
    expect(readStop(e.setupDir)).toBeNull();
    expect(readGeneration(e.setupDir)).toBe(gen + 1);
    for (let id = 1; id <= 4; id++) expect(fs.existsSync(runPaths(e.runDir(id)).claim)).toBe(false);
  });

  it('hard: starts again at step 0; keeps a stop asked for by stopEnsemble', () => {
    const e = ens(1, () => ({ status: 'failed', step: 2 }));
    setStop(e.setupDir, { reason: 'user asked', by: 'hook', kind: 'stop-ensemble' });
    expect(requeueRuns(e.setupDir, [1], { hard: true }).changed).toEqual([1]);
    expect(st(e.runDir(1))).toMatchObject({ status: 'queued', step: 0 });
    expect(st(e.runDir(1)).history.at(-1)!.detail).toMatch(/^hard/);
    expect(readStop(e.setupDir)!.kind).toBe('stop-ensemble');
  });

  it('skips queued and running runs with a reason, reports unknown ids, changes nothing then', () => {
    const e = ens(2, (id) => ({ status: id === 1 ? 'queued' : 'running' }));
    const gen = readGeneration(e.setupDir);
    const r = requeueRuns(e.setupDir, [1, 2, 3, 1000]);
    expect(r.changed).toEqual([]);
    expect(r.unknown).toEqual([3, 1000]);
    expect(r.skipped).toEqual([
      { id: 1, reason: 'already queued' },
      { id: 2, reason: expect.stringMatching(/running; dequeue it first/) },
    ]);
    expect(readGeneration(e.setupDir)).toBe(gen);
  });

  it('leaves a completed run alone while a live packer holds its claim; breaks a dead one and says so', () => {
    const e = ens(2, () => ({ status: 'failed', step: 0 }));
    plantOwner(e.runDir(1), { host: 'node7', packerId: 'p-live' });
    plantOwner(e.runDir(2), { pid: deadPid(), packerId: 'p-dead' });
    const r = requeueRuns(e.setupDir, [1, 2]);
    expect(r.changed).toEqual([2]);
    expect(r.skipped).toEqual([{ id: 1, reason: expect.stringMatching(/failed, but claimed by packer p-live \(host node7, pid \d+, job 99\)/) }]);
    expect(st(e.runDir(1)).status).toBe('failed');
    const h = st(e.runDir(2)).history.map((x) => x.event);
    expect(h.slice(-2)).toEqual(['claim broken', 'requeued']);
    expect(st(e.runDir(2)).history.at(-2)!.detail).toMatch(/p-dead/);
  });

  it('finishes the bookkeeping of an interrupted requeue: markers and a max-failed stop go for runs already queued', () => {
    const e = ens(1, () => ({ status: 'queued', step: 1 }));
    markFailed(e.setupDir, 1);
    setStop(e.setupDir, { reason: 'too many failed', by: 'p', kind: 'max-failed-runs' });
    const r = requeueRuns(e.setupDir, [1]);
    expect(r.skipped).toEqual([{ id: 1, reason: 'already queued' }]);
    expect(failedCount(e.setupDir)).toBe(0);
    expect(readStop(e.setupDir)).toBeNull();
  });

  it('reports an unreadable status instead of overwriting it', () => {
    const e = ens(1, () => ({ status: 'failed' }));
    fs.writeFileSync(runPaths(e.runDir(1)).status, '{"format":1,');
    const r = requeueRuns(e.setupDir, [1]);
    expect(r.skipped[0]!.reason).toMatch(/not valid JSON/);
    expect(fs.readFileSync(runPaths(e.runDir(1)).status, 'utf8')).toBe('{"format":1,');
  });
});

describe('dequeueRuns', () => {
  it('kills queued runs at once, skips completed ones, reports unknown ids', () => {
    const e = ens(3, (id) => ({ status: id === 3 ? 'successful' : 'queued' }));
    const r = dequeueRuns(e.setupDir, [1, 2, 3, 4]);
    expect(r).toEqual({ changed: [1, 2], pending: [], skipped: [{ id: 3, reason: 'already successful' }], unknown: [4] });
    expect(st(e.runDir(1))).toMatchObject({ status: 'killed', reason: 'dequeued' });
    expect(st(e.runDir(1)).history.at(-1)!.event).toBe('dequeued');
    expect(fs.existsSync(runPaths(e.runDir(1)).claim)).toBe(false);
    expect(st(e.runDir(3)).status).toBe('successful');
  });

  it('asks the live packer of a running run to stop it (pending), without touching its status', () => {
    const e = ens(1, () => ({ status: 'running' }));
    const held = tryClaim(e.runDir(1), { jobId: null, packerId: 'packer' }, { leaseMs: 60_000, now: Date.now })!;
    const r = dequeueRuns(e.setupDir, [1]);
    expect(r.pending).toEqual([1]);
    expect(r.changed).toEqual([]);
    expect(st(e.runDir(1)).status).toBe('running');
    expect(JSON.parse(fs.readFileSync(runPaths(e.runDir(1)).dequeueRequest, 'utf8')).by).toMatch(/pid/);
    releaseClaim(held.claim);
  });

  it('a queued run a packer has just claimed gets a request too', () => {
    const e = ens(1, () => ({ status: 'queued' }));
    const held = tryClaim(e.runDir(1), { jobId: null, packerId: 'packer' }, { leaseMs: 60_000, now: Date.now })!;
    expect(dequeueRuns(e.setupDir, [1]).pending).toEqual([1]);
    expect(fs.existsSync(runPaths(e.runDir(1)).dequeueRequest)).toBe(true);
    releaseClaim(held.claim);
  });

  it('marks a running run of a dead packer killed, unless its step still runs on this host', () => {
    const e = ens(2, (id) => ({ status: 'running', step: 1, launch: { packer: 'gone', key: `${id}:1:0:${id}` } }));
    plantOwner(e.runDir(1), { pid: deadPid(), packerId: 'gone' });
    plantOwner(e.runDir(2), { pid: deadPid(), packerId: 'gone' });
    // Run 1's step ended (its exit is journaled); run 2's still runs here (our own pid stands in for it).
    const start = (id: number, pid: number, pidStart: string | null) => ({ format: 1, runId: id, step: 1, attempt: 0, host: hostName(), pid, pgid: pid, pidStart, startedAt: '', launcherPid: 1 });
    appendJournal(e.setupDir, 'gone', 'S', '1:1:0:1', start(1, process.pid, pidStartTime(process.pid)));
    appendJournal(e.setupDir, 'gone', 'E', '1:1:0:1', {
      format: 1,
      runId: 1,
      step: 1,
      attempt: 0,
      code: 0,
      signal: null,
      stoppedBy: null,
      startedAt: '',
      endedAt: '',
      host: hostName(),
      pid: process.pid,
    });
    appendJournal(e.setupDir, 'gone', 'S', '2:1:0:2', start(2, process.pid, pidStartTime(process.pid)));
    const r = dequeueRuns(e.setupDir, [1, 2]);
    expect(r.changed).toEqual([1]);
    expect(r.pending).toEqual([2]);
    expect(st(e.runDir(1))).toMatchObject({ status: 'killed', reason: 'dequeued', step: 1, launch: null });
    expect(
      st(e.runDir(1))
        .history.slice(-2)
        .map((h) => h.event),
    ).toEqual(['claim broken', 'dequeued']);
    expect(st(e.runDir(2)).status).toBe('running');
    expect(fs.existsSync(runPaths(e.runDir(2)).dequeueRequest)).toBe(true);
    // requeue afterwards brings run 1 back and forgets old requests.
    expect(requeueRuns(e.setupDir, [1]).changed).toEqual([1]);
    expect(st(e.runDir(1))).toMatchObject({ status: 'queued', step: 1 });
  });
});

describe('parseIdList', () => {
  it('reads lists and ranges', () => {
    expect(parseIdList('1-3,7')).toEqual([1, 2, 3, 7]);
    expect(parseIdList(' 5 2, 2 ,9-10 ')).toEqual([5, 2, 9, 10]);
    expect(parseIdList('4-4')).toEqual([4]);
  });
  it('rejects bad parts with a USAGE error naming them', () => {
    const bad = (t: string, re: RegExp) => {
      try {
        parseIdList(t);
        throw new Error('no throw');
      } catch (e) {
        expect(e).toBeInstanceOf(ThemisError);
        expect((e as ThemisError).code).toBe('USAGE');
        expect((e as ThemisError).exitCode).toBe(2);
        expect((e as Error).message).toMatch(re);
      }
    };
    bad('1,x,3', /bad run id "x"/);
    bad('10-2', /bad range "10-2".*write 2-10/);
    bad('0', /run ids start at 1/);
    bad('-5', /bad run id "-5"/);
    bad('  ', /no run ids given/);
    bad('1-99999999', /too large/);
  });
});
