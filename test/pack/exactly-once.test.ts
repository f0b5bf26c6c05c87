import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { setupPaths } from '../../src/store/layout.js';
import { requeueRuns } from '../../src/store/run-ops.js';
import { appendJournal, journaledExits } from '../helpers/journal.js';
import { alive, groupMembers, makeEnsemble, readStatusOf, sleep, startPack, statuses, waitFor } from './helpers.js';

const appendId = (ledger: string) => ({ steps: [{ args: ['/bin/sh', '-c', 'echo "$THEMIS_RUN_ID" >> "$0"', ledger] }] });

function ledgerIds(file: string): number[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
}

describe('exactly once, across packers', () => {
  it('three packers on 300 runs: every id once in the ledger, every run successful', async () => {
    const n = 300;
    const e = makeEnsemble([]);
    const ledger = path.join(e.root, 'ledger');
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => appendId(ledger)),
      { root: e.root },
    );
    const packers = [0, 1, 2].map(() => startPack(['--setup-dir', e2.setupDir, '--cores', '3', '--heartbeat', '0.5']));
    const results = await Promise.all(packers.map((p) => p.done));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const ids = ledgerIds(ledger).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(statuses(e2.root, n).every((s) => s.status === 'successful')).toBe(true);
    // Every packer got some of the work (the claims really were contended).
    const started = results.map((r) => Number(/started (\d+) steps/.exec(r.stderr)?.[1] ?? 0));
    expect(started.reduce((a, b) => a + b, 0)).toBe(n);
    // No claim left behind, no packer heartbeat file left behind.
    expect(fs.existsSync(path.join(e2.runDir(1), '.themis/claim'))).toBe(false);
    expect(fs.readdirSync(path.join(e2.setupDir, 'packers'))).toEqual([]);
  }, 60_000);

  it('a run held by a silent packer on another host is waited for and taken over once its lease runs out', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/true'] }] }, { steps: [{ args: ['/bin/true'] }] }]);
    const meta = path.join(e.runDir(1), '.themis');
    const status = readStatusOf(e.runDir(1));
    fs.writeFileSync(path.join(meta, 'status.json'), JSON.stringify({ ...status, status: 'running', host: 'elsewhere' }));
    fs.mkdirSync(path.join(meta, 'claim'));
    const owner = path.join(meta, 'claim', 'owner.json');
    fs.writeFileSync(owner, JSON.stringify({ host: 'elsewhere', pid: 12345, pidStart: null, jobId: '1', packerId: 'elsewhere-1', token: 'old', since: '' }));
    // Last heartbeat 3.2 s ago, lease 6 s: not stale yet, but silent for more than half a lease.
    const t = new Date(Date.now() - 3200);
    fs.utimesSync(owner, t, t);
    const r = await startPack(['--setup-dir', e.setupDir, '--cores', '2', '--heartbeat', '0.2', '--lease', '6']).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('stopped heartbeating');
    const s1 = readStatusOf(e.runDir(1));
    expect(s1.status).toBe('successful');
    expect(s1.history.map((h) => h.event)).toContain('claim broken');
    expect(readStatusOf(e.runDir(2)).status).toBe('successful');
  }, 30_000);

  it("a dead packer's journaled exit is used by its successor (the step is not run again); a journaled start without exit means run it again", async () => {
    const e = makeEnsemble([]);
    const ledger = path.join(e.root, 'ledger');
    const e2 = makeEnsemble([appendId(ledger), appendId(ledger), appendId(ledger), appendId(ledger)], { root: e.root });
    const dead = 'elsewhere-1-dead00';
    const now = new Date().toISOString();
    // Runs 1-4 were `running` under a packer that died; its claims are long stale.
    for (const id of [1, 2, 3, 4]) {
      const meta = path.join(e2.runDir(id), '.themis');
      const key = `${id}:0:0:${id}`;
      fs.writeFileSync(path.join(meta, 'status.json'), JSON.stringify({ ...readStatusOf(e2.runDir(id)), status: 'running', host: 'elsewhere', launch: { packer: dead, key } }));
      fs.mkdirSync(path.join(meta, 'claim'));
      fs.writeFileSync(path.join(meta, 'claim', 'owner.json'), JSON.stringify({ host: 'elsewhere', pid: 12345, pidStart: null, jobId: '1', packerId: dead, token: 'old', since: '' }));
      const t = new Date(Date.now() - 600_000);
      fs.utimesSync(path.join(meta, 'claim', 'owner.json'), t, t);
      appendJournal(e2.setupDir, dead, 'S', key, { format: 1, runId: id, step: 0, attempt: 0, host: 'elsewhere', pid: 4242, pgid: 4242, pidStart: null, startedAt: now, launcherPid: 4241 });
    }
    // Run 1 ended with 0, run 2 with 3 (no restarts: failed); run 3's exit line is torn.
    const exit = (id: number, code: number) => ({ format: 1, runId: id, step: 0, attempt: 0, code, signal: null, stoppedBy: null, startedAt: now, endedAt: now, host: 'elsewhere', pid: 4242 });
    appendJournal(e2.setupDir, dead, 'E', '1:0:0:1', exit(1, 0));
    appendJournal(e2.setupDir, dead, 'E', '2:0:0:2', exit(2, 3));
    // Run 4's step was stopped by its own packer, which had found its claim gone.
    appendJournal(e2.setupDir, dead, 'E', '4:0:0:4', { ...exit(4, 0), code: null, signal: 'SIGTERM', stoppedBy: 'lost-claim' });
    fs.appendFileSync(setupPaths(e2.setupDir).packerJournal(dead), `E 3:0:0:3 ${JSON.stringify(exit(3, 0)).slice(0, 40)}`);
    const r = await startPack(['--setup-dir', e2.setupDir, '--cores', '2', '--heartbeat', '0.2', '--lease', '1']).done;
    expect(r.code, r.stderr).toBe(0);
    expect(ledgerIds(ledger).sort()).toEqual([3, 4]);
    const [s1, s2, s3, s4] = statuses(e2.root, 4);
    expect(s1).toMatchObject({ status: 'successful', launch: null });
    expect(s1!.history.map((h) => h.event)).toContain('recovered');
    expect(s2).toMatchObject({ status: 'failed', exitCode: 3, launch: null });
    expect(s3).toMatchObject({ status: 'successful', attempt: 1, restarts: 0, launch: null });
    // Stopped for a lost claim is an interruption: run again, no restart used, not left `running`.
    expect(s4).toMatchObject({ status: 'successful', attempt: 1, restarts: 0, launch: null });
    // The dead packer's journal stays (doctor removes it once unused); ours went when we ended cleanly.
    expect(fs.readdirSync(path.join(e2.setupDir, 'packers')).filter((f) => f.endsWith('.journal'))).toEqual([`${dead}.journal`]);
  }, 30_000);

  it('a run requeued and launched again by the same packer gets a launch key of its own', async () => {
    const e = makeEnsemble([]);
    const gate = path.join(e.root, 'gate');
    const hold = path.join(e.root, 'hold');
    const e2 = makeEnsemble([{ steps: [{ args: ['/bin/sh', '-c', '[ -e "$0" ]', gate] }] }, { steps: [{ args: ['/bin/sh', '-c', 'while [ ! -e "$0" ]; do sleep 0.05; done', hold] }] }], {
      root: e.root,
      maxRestarts: 0,
    });
    const p = startPack(['--setup-dir', e2.setupDir, '--cores', '2', '--heartbeat', '0.2', '--rescan', '0.2']);
    await waitFor(() => readStatusOf(e2.runDir(1)).status === 'failed', 10_000, 'run 1 failed');
    fs.writeFileSync(gate, '');
    requeueRuns(e2.setupDir, [1]);
    await waitFor(() => readStatusOf(e2.runDir(1)).status === 'successful', 10_000, 'run 1 successful after requeue');
    // Both launches of step 0 attempt 0 are in the journal, under different keys.
    const packers = path.join(e2.setupDir, 'packers');
    const journal = fs.readdirSync(packers).find((f) => f.endsWith('.journal'))!;
    const keys = fs
      .readFileSync(path.join(packers, journal), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('E 1:0:0:'))
      .map((l) => l.split(' ')[1]);
    expect(keys.length).toBe(2);
    expect(new Set(keys).size).toBe(2);
    expect(
      journaledExits(e2.setupDir, 1)
        .map((x) => x.code)
        .sort(),
    ).toEqual([0, 1]);
    fs.writeFileSync(hold, '');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(packers)).toEqual([]);
  }, 30_000);

  it('kill -9 of a packer mid-ensemble: a successor with a short lease finishes everything, none twice, none left running', async () => {
    const n = 40;
    const e = makeEnsemble([]);
    const ledger = path.join(e.root, 'ledger');
    // Each run records its start, sleeps a little, and records its end: a run that completed twice
    // would show two "end" lines.
    const app = ['/bin/sh', '-c', 'echo "start $THEMIS_RUN_ID $$" >> "$0"; sleep 0.3; echo "end $THEMIS_RUN_ID" >> "$0"', ledger];
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: app }] })),
      { root: e.root },
    );
    const first = startPack(['--setup-dir', e2.setupDir, '--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--grace', '1']);
    await waitFor(
      () =>
        fs.existsSync(ledger) &&
        fs
          .readFileSync(ledger, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('end')).length >= 8,
      20_000,
      'some runs done',
    );
    first.child.kill('SIGKILL');
    await first.done;
    const stepPids = fs
      .readFileSync(ledger, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('start'))
      .map((l) => Number(l.split(' ')[2]));
    const second = startPack(['--setup-dir', e2.setupDir, '--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--grace', '1']);
    const r = await second.done;
    expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(ledger, 'utf8').split('\n').filter(Boolean);
    const ends = new Map<number, number>();
    for (const l of lines.filter((l) => l.startsWith('end'))) ends.set(Number(l.split(' ')[1]), (ends.get(Number(l.split(' ')[1])) ?? 0) + 1);
    // The killed packer's journal stays; the successor's went with its clean end.
    const journals = fs.readdirSync(path.join(e2.setupDir, 'packers')).filter((f) => f.endsWith('.journal'));
    expect(journals.length).toBe(1);
    for (let id = 1; id <= n; id++) {
      // The first packer's attempts: at most one completed (exit 0), and then the successor did
      // not run the step again (checked with the ledger below); any other was stopped by a signal.
      const exits = journaledExits(e2.setupDir, id);
      expect(exits.filter((x) => x.code === 0).length, `run ${id}`).toBeLessThanOrEqual(1);
      // The application itself may log its last line twice only if an attempt was killed right after it.
      const killed = exits.filter((x) => x.signal !== null).length;
      expect(ends.get(id) ?? 0, `run ${id}`).toBeGreaterThanOrEqual(1);
      if (ends.get(id)! > 1 + killed) {
        console.log(
          id,
          lines.filter((l) => l.split(' ')[1] === String(id)),
          JSON.stringify(exits),
          JSON.stringify(readStatusOf(e2.runDir(id)).history, null, 0),
        );
        console.log(first.stderr ?? '', r.stderr);
      }
      expect(ends.get(id)!, `run ${id}`).toBeLessThanOrEqual(1 + killed);
    }
    const st = statuses(e2.root, n);
    expect(st.filter((s) => s.status !== 'successful').map((s) => [s.id, s.status, s.reason])).toEqual([]);
    // Nothing of the first packer's steps is still running.
    await sleep(100);
    expect(stepPids.filter(alive)).toEqual([]);
    expect(stepPids.flatMap(groupMembers)).toEqual([]);
    // At least one run shows it was recovered from the dead packer.
    expect(st.some((s) => s.history.some((h) => h.event === 'claim broken'))).toBe(true);
    expect(readStatusOf(e2.runDir(1)).restarts).toBe(0);
  }, 60_000);
});
