import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDoctor, remainingProblems } from '../../src/cli/doctor.js';
import { tryClaim, type ClaimOwner } from '../../src/store/claim.js';
import { runDoctor } from '../../src/store/doctor.js';
import { readStop, setStop, writePackerHeartbeat } from '../../src/store/ensemble-state.js';
import { runPaths, setupPaths } from '../../src/store/layout.js';
import { hostName, pidStartTime } from '../../src/store/proc.js';
import { readStatus, type StatusRecord } from '../../src/store/records.js';
import { runThemis } from '../helpers/cli.js';
import { appendJournal } from '../helpers/journal.js';
import { makeEnsemble } from '../helpers/ensemble.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});
const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
const old = () => new Date(Date.now() - 600_000);

function plantOwner(runDir: string, owner: Partial<ClaimOwner>): void {
  const p = runPaths(runDir);
  fs.mkdirSync(p.claim);
  const full: ClaimOwner = { host: hostName(), pid: deadPid(), pidStart: null, jobId: '5', packerId: 'dead-packer', token: 't', since: '', ...owner };
  fs.writeFileSync(p.claimOwner, JSON.stringify(full));
}

/** One ensemble with one instance of every kind of damage. */
function damaged() {
  const launch = (id: number) => ({ packer: 'dead-packer', key: `${id}:1:2:${id}` });
  const e = makeEnsemble(10, { status: (id): Partial<StatusRecord> => (id <= 3 ? { status: 'running', step: 1, attempt: 2, launch: launch(id) } : id === 4 ? { status: 'successful', step: 1 } : {}) });
  temps.push(e.root);
  const started = (id: number, pid: number, pidStart: string | null) => ({
    format: 1,
    runId: id,
    step: 1,
    attempt: 2,
    host: hostName(),
    pid,
    pgid: pid,
    pidStart,
    startedAt: '',
    launcherPid: deadPid(),
  });
  plantOwner(e.runDir(1), {}); // orphan: dead owner; its step is gone too
  appendJournal(e.setupDir, 'dead-packer', 'S', launch(1).key, started(1, deadPid(), null));
  // run 2: running with no claim at all; its step ended (exit journaled)
  appendJournal(e.setupDir, 'dead-packer', 'S', launch(2).key, started(2, deadPid(), null));
  appendJournal(e.setupDir, 'dead-packer', 'E', launch(2).key, {
    format: 1,
    runId: 2,
    step: 1,
    attempt: 2,
    code: 0,
    signal: null,
    stoppedBy: null,
    startedAt: '',
    endedAt: '',
    host: hostName(),
    pid: 1,
  });
  // run 3: running, dead claim, but its step is still alive here (our own pid stands in for it)
  plantOwner(e.runDir(3), {});
  appendJournal(e.setupDir, 'dead-packer', 'S', launch(3).key, started(3, process.pid, pidStartTime(process.pid)));
  plantOwner(e.runDir(4), { host: 'far-node' }); // finished run, claim expired
  fs.utimesSync(runPaths(e.runDir(4)).claimOwner, old(), old());
  fs.rmSync(runPaths(e.runDir(5)).status); // missing status
  fs.writeFileSync(runPaths(e.runDir(6)).status, '{"format":1,"id":6,"sta'); // truncated
  fs.rmSync(e.runDir(7), { recursive: true }); // deleted run dir
  fs.mkdirSync(runPaths(e.runDir(8)).claimBreak); // breaker died
  fs.utimesSync(runPaths(e.runDir(8)).claimBreak, old(), old());
  const grave = runPaths(e.runDir(9)).claim + '.broken-123-abcd';
  fs.mkdirSync(grave);
  fs.utimesSync(grave, old(), old());
  const staging = setupPaths(e.setupDir).stagingPrefix + 'dead';
  fs.mkdirSync(path.join(staging, 'tree'), { recursive: true });
  fs.utimesSync(staging, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
  writePackerHeartbeat(e.setupDir, { packerId: 'gone', host: hostName(), pid: deadPid(), pidStart: null, jobId: null, allocation: 1, startedAt: '', heartbeatAt: '', running: [1] });
  setStop(e.setupDir, { reason: '3 runs failed', by: 'packer gone', kind: 'max-failed-runs' });
  return { ...e, staging, grave };
}

describe('themis doctor', () => {
  it('finds and explains every kind of damage without changing anything', () => {
    const e = damaged();
    const before = fs.readFileSync(runPaths(e.runDir(1)).status, 'utf8');
    const r = runDoctor(e.setupDir);
    const kinds = r.findings.map((f) => `${f.runId ?? '-'}:${f.kind}`).sort();
    expect(kinds).toEqual(
      [
        '1:orphan-running',
        '2:orphan-running',
        '3:orphan-running',
        '4:stale-claim',
        '5:missing-status',
        '6:unreadable-status',
        '7:missing-run-dir',
        '8:dead-break-mutex',
        '9:claim-leftover',
        '-:dead-packer',
        '-:staging-leftover',
        '-:stopped',
      ].sort(),
    );
    const by = (id: number) => r.findings.find((f) => f.runId === id)!;
    expect(by(1).problem).toMatch(/running` but its claim is stale: owner packer dead-packer .* no longer running/);
    expect(by(1).repair).toMatch(/back to `queued` at step 1/);
    expect(by(2).repair).toMatch(/exit was recorded/);
    expect(by(3).repair).toBeNull();
    expect(by(3).problem).toMatch(new RegExp(`step still runs here \\(pid ${process.pid}\\)`));
    expect(by(6).problem).toMatch(/not valid JSON.*mv .*status\.json .*status\.json\.bad/);
    expect(fs.readFileSync(runPaths(e.runDir(1)).status, 'utf8')).toBe(before);
    const text = formatDoctor(r);
    expect(text).toMatch(/10 runs checked .*: 11 problems/);
    expect(text).toMatch(/run 4: stale claim\n {2}stale claim: last heartbeat of packer dead-packer \(host far-node/);
    expect(text).toMatch(/`themis doctor --repair` fixes 8 of these/);
    expect(remainingProblems(r)).toBe(11);
  });

  it('--repair fixes what is safe, leaves the rest, and a second run is quiet about what it fixed', () => {
    const e = damaged();
    const r = runDoctor(e.setupDir, { repair: true });
    const out = (id: number) => r.findings.find((f) => f.runId === id)!.outcome;
    expect([1, 2, 4, 5, 8, 9].map(out)).toEqual(['repaired', 'repaired', 'repaired', 'repaired', 'repaired', 'repaired']);
    // A fresh attempt number: a late exit record of the orphan cannot be credited to the retry.
    expect(readStatus(e.runDir(1))).toMatchObject({ status: 'queued', step: 1, attempt: 3, launch: null });
    expect(
      readStatus(e.runDir(1))!
        .history.slice(-2)
        .map((h) => h.event),
    ).toEqual(['claim broken', 'requeued']);
    expect(readStatus(e.runDir(2))!.status).toBe('running'); // the next packer settles it from the journaled exit
    expect(fs.existsSync(runPaths(e.runDir(2)).claim)).toBe(false);
    expect(readStatus(e.runDir(3))!.status).toBe('running');
    expect(fs.existsSync(runPaths(e.runDir(3)).claim)).toBe(true);
    expect(readStatus(e.runDir(4))!.status).toBe('successful');
    expect(readStatus(e.runDir(4))!.history.at(-1)!.event).toBe('claim broken');
    expect(readStatus(e.runDir(5))).toMatchObject({ status: 'queued', step: 0 });
    expect(fs.existsSync(runPaths(e.runDir(8)).claimBreak)).toBe(false);
    expect(fs.existsSync(e.grave)).toBe(false);
    expect(fs.existsSync(e.staging)).toBe(false);
    expect(fs.existsSync(setupPaths(e.setupDir).packerFile('gone'))).toBe(false);
    expect(readStop(e.setupDir)).not.toBeNull(); // info only: doctor does not restart a stopped ensemble
    for (let id = 1; id <= 10; id++) {
      if (fs.existsSync(runPaths(e.runDir(id)).meta)) expect(fs.readdirSync(runPaths(e.runDir(id)).meta).filter((n) => n.includes('.doctor-'))).toEqual([]);
    }
    const again = runDoctor(e.setupDir);
    expect(again.findings.map((f) => `${f.runId ?? '-'}:${f.kind}`).sort()).toEqual(['-:stopped', '2:orphan-running', '3:orphan-running', '6:unreadable-status', '7:missing-run-dir']);
    // Runs 2 and 3 still point into the dead packer's journal: it stays.
    expect(fs.existsSync(setupPaths(e.setupDir).packerJournal('dead-packer'))).toBe(true);
  });

  it("removes a dead packer's journal once no running run points into it, and only then", () => {
    const e = makeEnsemble(2, { status: (id): Partial<StatusRecord> => (id === 1 ? { status: 'running', launch: { packer: 'used', key: '1:0:0:1' } } : {}) });
    temps.push(e.root);
    const sp = setupPaths(e.setupDir);
    tryClaim(e.runDir(1), { jobId: null, packerId: 'alive' }, { leaseMs: 60_000, now: Date.now });
    for (const id of ['used', 'unused', 'fresh', 'live']) appendJournal(e.setupDir, id, 'S', '1:0:0:1', { runId: 1 });
    for (const id of ['used', 'unused', 'live']) fs.utimesSync(sp.packerJournal(id), old(), old());
    writePackerHeartbeat(e.setupDir, {
      packerId: 'live',
      host: hostName(),
      pid: process.pid,
      pidStart: pidStartTime(process.pid),
      jobId: null,
      allocation: 1,
      startedAt: '',
      heartbeatAt: '',
      running: [],
    });
    const r = runDoctor(e.setupDir);
    expect(r.findings.map((f) => [f.kind, f.path])).toEqual([['dead-packer', sp.packerJournal('unused')]]);
    expect(r.findings[0]!.problem).toMatch(/journal of packer unused, which is gone, and no `running` run refers to it/);
    const fixed = runDoctor(e.setupDir, { repair: true });
    expect(fixed.findings[0]!.outcome).toBe('repaired');
    expect(['used', 'unused', 'fresh', 'live'].filter((id) => fs.existsSync(sp.packerJournal(id)))).toEqual(['used', 'fresh', 'live']);
  });

  it('gets past a corrupt index line (which stops every other command) and names file:line', () => {
    const e = makeEnsemble(3);
    temps.push(e.root);
    const file = setupPaths(e.setupDir).indexFile(1);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines[1] = '{"id":2,"di';
    fs.writeFileSync(file, lines.join('\n'));
    const r = runDoctor(e.setupDir);
    expect(r.runsChecked).toBe(2);
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]).toMatchObject({ kind: 'corrupt-index', path: `${file}:2`, repair: null });
    expect(r.findings[0]!.problem).toMatch(/000001\.jsonl:2: corrupt index line .*fix the line by hand/);
  });

  it('leaves a run alone when a live packer holds it', () => {
    const e = makeEnsemble(1, { status: () => ({ status: 'running' }) });
    temps.push(e.root);
    tryClaim(e.runDir(1), { jobId: null, packerId: 'alive' }, { leaseMs: 60_000, now: Date.now });
    const r = runDoctor(e.setupDir, { repair: true });
    expect(r.findings).toEqual([]);
    expect(formatDoctor(r)).toMatch(/1 run checked .*: no problems found/);
  });

  it('runs from the command line: exit 1 with findings, 0 when healthy, 2 for a bad option, --json', () => {
    const e = damaged();
    const cwd = e.root;
    const r1 = runThemis(['doctor', '--setup-dir', e.setupDir], { cwd });
    expect(r1.code, r1.stderr).toBe(1);
    expect(r1.stdout).toMatch(/run 1: running, but its packer is gone/);
    const bad = runThemis(['doctor', '--setup-dir', e.setupDir, '--lease', '-3'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--lease must be a number of seconds > 0/);
    const js = runThemis(['doctor', '--setup-dir', e.setupDir, '--repair', '--json'], { cwd });
    const report = JSON.parse(js.stdout);
    expect(report.repaired).toBe(true);
    expect(report.findings.find((f: { runId: number }) => f.runId === 1).outcome).toBe('repaired');
    const healthy = makeEnsemble(2);
    temps.push(healthy.root);
    const ok = runThemis(['doctor', '--setup-dir', healthy.setupDir], { cwd: healthy.root });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/2 runs checked .*no problems found/);
  });
});
