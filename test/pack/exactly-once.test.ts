import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
    const e2 = makeEnsemble(Array.from({ length: n }, () => appendId(ledger)), { root: e.root });
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

  it('an exit record left from an earlier life of a requeued run is removed before the step is marked running', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }]);
    const meta = path.join(e.runDir(1), '.themis');
    const stale = path.join(meta, 'exit-0-0.json');
    fs.writeFileSync(stale, JSON.stringify({ format: 1, runId: 1, step: 0, attempt: 0, code: 0, signal: null, stoppedBy: null, startedAt: '', endedAt: '', host: 'x', pid: 1 }));
    const p = startPack(['--setup-dir', e.setupDir, '--cores', '1', '--heartbeat', '0.2', '--grace', '0.5']);
    await waitFor(() => readStatusOf(e.runDir(1)).status === 'running', 10_000, 'run 1 running');
    expect(fs.existsSync(stale)).toBe(false);
    p.child.kill('SIGTERM');
    await p.done;
    // The exit record now is the real one: interrupted by the packer.
    expect(JSON.parse(fs.readFileSync(stale, 'utf8')).stoppedBy).toBe('interrupt');
  }, 30_000);

  it('kill -9 of a packer mid-ensemble: a successor with a short lease finishes everything, none twice, none left running', async () => {
    const n = 40;
    const e = makeEnsemble([]);
    const ledger = path.join(e.root, 'ledger');
    // Each run records its start, sleeps a little, and records its end: a run that completed twice
    // would show two "end" lines.
    const app = ['/bin/sh', '-c', 'echo "start $THEMIS_RUN_ID $$" >> "$0"; sleep 0.3; echo "end $THEMIS_RUN_ID" >> "$0"', ledger];
    const e2 = makeEnsemble(Array.from({ length: n }, () => ({ steps: [{ args: app }] })), { root: e.root });
    const first = startPack(['--setup-dir', e2.setupDir, '--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--grace', '1']);
    await waitFor(() => fs.existsSync(ledger) && fs.readFileSync(ledger, 'utf8').split('\n').filter((l) => l.startsWith('end')).length >= 8, 20_000, 'some runs done');
    first.child.kill('SIGKILL');
    await first.done;
    const stepPids = fs.readFileSync(ledger, 'utf8').split('\n').filter((l) => l.startsWith('start')).map((l) => Number(l.split(' ')[2]));
    const second = startPack(['--setup-dir', e2.setupDir, '--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--grace', '1']);
    const r = await second.done;
    expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(ledger, 'utf8').split('\n').filter(Boolean);
    const ends = new Map<number, number>();
    for (const l of lines.filter((l) => l.startsWith('end'))) ends.set(Number(l.split(' ')[1]), (ends.get(Number(l.split(' ')[1])) ?? 0) + 1);
    for (let id = 1; id <= n; id++) {
      const meta = path.join(e2.runDir(id), '.themis');
      const exits = fs.readdirSync(meta).filter((f) => f.startsWith('exit-')).map((f) => JSON.parse(fs.readFileSync(path.join(meta, f), 'utf8')));
      // Exactly one attempt completed (exit 0); any other attempt was stopped by a signal.
      expect(exits.filter((x) => x.code === 0).length, `run ${id}`).toBe(1);
      // The application itself may log its last line twice only if an attempt was killed right after it.
      const killed = exits.filter((x) => x.signal !== null).length;
      expect(ends.get(id) ?? 0, `run ${id}`).toBeGreaterThanOrEqual(1);
      if (ends.get(id)! > 1 + killed) {
        console.log(id, lines.filter((l) => l.split(' ')[1] === String(id)), JSON.stringify(exits), JSON.stringify(readStatusOf(e2.runDir(id)).history, null, 0));
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
