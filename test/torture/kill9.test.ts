import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPaths } from '../../src/store/layout.js';
import {
  LONG,
  SEED,
  bump,
  checkConsistency,
  flushFigures,
  genLedgerEnsemble,
  isPacker,
  killPacker,
  newFigures,
  readLedger,
  recordTrial,
  rng,
  sleep,
  startPacker,
  themis,
  waitFor,
  type Ensemble,
} from './helpers.js';

/**
 * kill -9 of a packer at seeded random moments. Three kinds of trial, in turn:
 * - `random`: a packer is killed anywhere (start-up, claiming, mid-step, finishing);
 * - `status-write`: the packer runs under strace with every rename (the commit of an atomic
 *   write) delayed, so most of its time is spent between writing a temp status file and renaming
 *   it; the kill lands there (proved by the temp file it leaves behind);
 * - `claim-break`: a first packer is killed mid-ensemble, a second one (renames delayed) is
 *   killed the moment it holds a run's `claim-break` mutex (proved by the mutex left behind).
 * Every third trial repairs with `themis doctor --repair` before the finisher. A last packer
 * then finishes the work, and the trial ends with the consistency check.
 */

const figures = newFigures();
afterAll(() => flushFigures('kill9', figures));

/** strace (with ptrace allowed) holds the packer inside its windows; without it every kill is at a random moment. */
const STRACE = spawnSync('strace', ['-qq', '-o', '/dev/null', 'true']).status === 0;
if (!STRACE) {
  const why = 'strace missing or ptrace not allowed: status-write and claim-break kills fall back to random moments';
  console.log(`torture/kill9: ${why}`);
  figures.notes.push(`kill9: ${why}`);
}

const TRIALS = Number(process.env.THEMIS_TORTURE_TRIALS ?? (LONG ? 60 : 21));
const RUNS = 10;
const KINDS = ['random', 'status-write', 'claim-break'] as const;
const RENAMES = 'rename,renameat,renameat2';
/** Renames held 150 ms: a packer spends most of its time between a temp file's write and its rename. */
const DELAY_WRITE = { delayUs: 150_000, calls: RENAMES };
/** Renames held 150 ms: breaking a claim (rename aside, write owner.json) keeps the mutex for 300 ms+. */
const DELAY_BREAK = { delayUs: 150_000, calls: RENAMES };

/** Files a killed packer left mid-write in the runs' .themis dirs (temp files, break mutexes). */
function leftovers(e: Ensemble, pid: number | null): { tmp: number; breakMutex: number } {
  let tmp = 0;
  let breakMutex = 0;
  for (let id = 1; id <= e.n; id++) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(runPaths(e.runDir(id)).meta);
    } catch {
      continue;
    }
    for (const n of names) {
      if (n === 'claim-break') breakMutex++;
      if (pid !== null && n.startsWith('.') && n.includes(`.tmp-${pid}-`)) tmp++;
    }
  }
  return { tmp, breakMutex };
}

/** Runs still queued or running after a packer said there was nothing left to run. */
function unfinished(e: Ensemble): number[] {
  const ids: number[] = [];
  for (let id = 1; id <= e.n; id++) {
    try {
      const st = JSON.parse(fs.readFileSync(runPaths(e.runDir(id)).status, 'utf8')) as { status: string };
      if (st.status === 'queued' || st.status === 'running') ids.push(id);
    } catch {
      ids.push(id);
    }
  }
  return ids;
}

/** Temp files of atomic writes by `pid` in flight in the runs' .themis dirs. */
function tempFiles(e: Ensemble, pid: number | null): string[] {
  const out: string[] = [];
  for (let id = 1; id <= e.n; id++) {
    try {
      for (const n of fs.readdirSync(runPaths(e.runDir(id)).meta)) if (/^\.status\.json\.tmp-\d+-[0-9a-f]+$/.test(n) && (pid === null || n.includes(`.tmp-${pid}-`))) out.push(`${id}/${n}`);
    } catch {
      /* not there */
    }
  }
  return out;
}

function claimBreakHeld(e: Ensemble): boolean {
  for (let id = 1; id <= e.n; id++) if (fs.existsSync(runPaths(e.runDir(id)).claimBreak)) return true;
  return false;
}

describe.concurrent('kill -9 of packers at random moments', () => {
  const seeds = Array.from({ length: TRIALS }, (_, i) => ({ i, kind: STRACE ? KINDS[i % KINDS.length]! : 'random', seed: SEED + i }));
  it.each(seeds)(
    'trial $i ($kind, seed $seed): a successor finishes, nothing lost or run twice',
    async ({ i, kind, seed }) => {
      const r = rng(seed);
      const T0 = Date.now();
      const dbg = (m: string) => process.env.THEMIS_TORTURE_DEBUG && console.log(`[${i} ${Date.now() - T0}ms] ${m}`);
      const e = genLedgerEnsemble(RUNS, 0.15);
      dbg(`gen ${e.root}`);
      const started = () => readLedger(e.ledger).pids.length;
      if (kind === 'random') {
        const a = startPacker(e.setupDir);
        await sleep(Math.floor(r() * 1400));
        await killPacker(a);
        bump(figures.faults, 'kill -9 packer (random moment)');
      } else if (kind === 'status-write') {
        const a = startPacker(e.setupDir, { strace: DELAY_WRITE });
        // Kill during the k-th status write we see in flight (its temp file exists, rename held).
        // The writer's pid comes from the temp file's name: .status.json.tmp-<pid>-<hex>.
        const k = 1 + Math.floor(r() * 8);
        const seen = new Set<string>();
        let pid: number | null = null;
        const t0 = Date.now();
        while (seen.size < k && Date.now() - t0 < 15_000 && a.child.exitCode === null) {
          for (const f of tempFiles(e, null)) {
            seen.add(f);
            pid = Number(/\.tmp-(\d+)-/.exec(f)![1]);
          }
          await sleep(3);
        }
        if (pid !== null && isPacker(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        await killPacker(a);
        bump(figures.faults, 'kill -9 packer (status write, renames delayed)');
        dbg(`pid=${pid} seen ${[...seen].join(' ')} k=${k} left=${JSON.stringify(leftovers(e, pid))} exit=${a.child.exitCode}`);
        if (leftovers(e, pid).tmp > 0) bump(figures.landed, 'mid atomic write (temp file left)');
      } else {
        const a = startPacker(e.setupDir);
        await waitFor(() => started() >= 2 + Math.floor(r() * 4), 20_000, 'runs started');
        await killPacker(a);
        bump(figures.faults, 'kill -9 packer (random moment)');
        const b = startPacker(e.setupDir, { strace: DELAY_BREAK });
        const t0 = Date.now();
        while (!claimBreakHeld(e) && Date.now() - t0 < 8000 && b.child.exitCode === null) await sleep(2);
        const pid = b.pid();
        dbg(`break seen=${claimBreakHeld(e)} exit=${b.child.exitCode}`);
        await killPacker(b);
        bump(figures.faults, 'kill -9 packer (breaking a stale claim)');
        const left = leftovers(e, pid);
        if (left.breakMutex > 0) bump(figures.landed, 'inside claim-break mutex');
        if (left.tmp > 0) bump(figures.landed, 'mid atomic write (temp file left)');
      }
      if (i % 3 === 2) {
        // Doctor explains, then repairs; the repair's own outcome must be clean once the lease passed.
        await sleep(1100);
        const d = themis(['doctor', '--lease', '1', '--json'], e.root);
        expect(d.stderr).toBe('');
        expect(d.stdout, d.stderr).not.toBe('');
        const report = JSON.parse(d.stdout) as { findings: { kind: string; problem: string }[] };
        expect(report.findings.filter((f) => f.kind === 'unreadable-status')).toEqual([]);
        const fix = themis(['doctor', '--repair', '--lease', '1', '--json'], e.root);
        expect(fix.stdout, fix.stderr).not.toBe('');
        const fixed = JSON.parse(fix.stdout) as { findings: { kind: string; outcome?: string; note?: string }[] };
        expect(fixed.findings.filter((f) => f.outcome === 'failed')).toEqual([]);
        bump(figures.faults, 'doctor --repair after kill');
      }
      dbg('finisher');
      const fin = startPacker(e.setupDir);
      const res = await fin.done;
      dbg('finisher done');
      expect(res.code, res.stderr).toBe(0);
      // A successor waits out an owner-less claim (a claimer killed between mkdir claim/ and writing
      // owner.json) instead of exiting with that run still queued.
      expect(unfinished(e), 'runs left unfinished by a successor that exited 0').toEqual([]);
      await sleep(50);
      const expectDone = Array.from({ length: RUNS }, (_, k) => k + 1);
      let c = checkConsistency(e.setupDir, { ledger: e.ledger, leaseMs: 1000, expectDone });
      if (c.deadClaimsOnCompleted.length > 0) {
        // A packer killed after a run's final status but before its release leaves a dead claim on a
        // completed run; packers never revisit completed runs, doctor --repair breaks it.
        bump(figures.faults, 'dead claim left on a completed run (cleared by doctor --repair)', c.deadClaimsOnCompleted.length);
        const fix = themis(['doctor', '--repair', '--lease', '1', '--json'], e.root);
        expect(fix.stdout).toContain('stale-claim');
        c = checkConsistency(e.setupDir, { ledger: e.ledger, leaseMs: 1000, expectDone });
        expect(c.deadClaimsOnCompleted).toEqual([]);
      }
      recordTrial(figures, c);
      expect(c.problems, e.root).toEqual([]);
      expect(c.counts.successful).toBe(RUNS);
      if (i % 3 === 2) {
        // Doctor finds nothing it cannot fix once the work is done (leftovers older than the lease are swept).
        const after = themis(['doctor', '--repair', '--lease', '1', '--json'], e.root);
        expect(after.stdout, after.stderr).not.toBe('');
        const rep = JSON.parse(after.stdout) as { findings: { kind: string; severity: string; outcome?: string }[] };
        expect(rep.findings.filter((f) => f.severity === 'problem' && f.outcome !== 'repaired')).toEqual([]);
      }
      fs.rmSync(e.root, { recursive: true, force: true });
    },
    90_000,
  );
});

describe('kill -9 windows', () => {
  it('figures: every trial was checked and at least one kill landed in each window', () => {
    expect(figures.trials).toBe(TRIALS);
    const landedMidWrite = figures.landed['mid atomic write (temp file left)'] ?? 0;
    const landedBreak = figures.landed['inside claim-break mutex'] ?? 0;
    console.log(`kill -9 windows hit: ${landedMidWrite} mid atomic write, ${landedBreak} inside the claim-break mutex (of ${TRIALS} trials)`);
    // How many land depends on the machine's load (the test polls for the window, then kills):
    // alone here 3-7 of 7 mid-write and 1-4 of 7 inside claim-break; under a full parallel suite fewer.
    if (STRACE) expect(landedMidWrite + landedBreak).toBeGreaterThan(0);
    void path;
  });
});
