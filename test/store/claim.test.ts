import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { heartbeatClaim, holdsClaim, dropSharedOwner, inspectClaim, readClaimOwner, releaseClaim, tryClaim, type ClaimOptions, type ClaimOwner } from '../../src/store/claim.js';
import { REVALIDATE_ENV, forgetFileSystemTypes, lookupsCoherent } from '../../src/store/fs-kind.js';
import { pinnedState } from '../../src/store/claim-files.js';
import { fileServerNow } from '../../src/store/clock.js';
import { runPaths } from '../../src/store/layout.js';
import { hostName, isProcessAlive, pidNs, pidStartTime, samePidSpace } from '../../src/store/proc.js';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';
import { makeEnsemble } from '../helpers/ensemble.js';

const CLAIM_JS = pathToFileURL(path.join(PROJECT_ROOT, 'dist/store/claim.js')).href;
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

function ensemble(n: number) {
  const e = makeEnsemble(n);
  temps.push(e.root);
  return { root: e.root, setup: e.setupDir, dir: e.runDir };
}

const who = { jobId: null, packerId: 'test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** For the rest of this test, check held claims with a revalidating open ('1') or as the file system allows ('0'). */
function checkClaimsBy(revalidate: '0' | '1'): void {
  vi.stubEnv(REVALIDATE_ENV, revalidate);
  forgetFileSystemTypes();
  onTestFinished(() => {
    vi.unstubAllEnvs();
    forgetFileSystemTypes();
  });
}

/** A pid that existed and is now gone (spawned, exited, reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function plantOwner(runDir: string, owner: Partial<ClaimOwner>, ageMs = 0): string {
  const p = runPaths(runDir);
  fs.mkdirSync(p.claim);
  const token = `planted-${Math.random().toString(16).slice(2)}`;
  const full: ClaimOwner = { host: hostName(), pid: process.pid, pidStart: null, jobId: null, packerId: 'planted', token, since: '', ...owner };
  fs.writeFileSync(p.claimOwner, JSON.stringify(full));
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    fs.utimesSync(p.claimOwner, t, t);
  }
  return token;
}

describe('proc', () => {
  it('knows this process, and a dead or reused pid', () => {
    const start = pidStartTime(process.pid);
    expect(start).toMatch(/^\d+$/);
    expect(isProcessAlive(process.pid, start)).toBe(true);
    expect(isProcessAlive(process.pid, null)).toBe(true);
    expect(isProcessAlive(process.pid, '1')).toBe(false); // same pid, other start time: reused
    expect(isProcessAlive(deadPid(), null)).toBe(false);
    expect(isProcessAlive(0, null)).toBe(false);
  });
});

describe('fileServerNow', () => {
  it('follows the mtime the file system stamps, and caches it', () => {
    const { setup } = ensemble(0);
    const a = fileServerNow(setup);
    expect(Math.abs(a - Date.now())).toBeLessThan(2000);
    expect(fs.existsSync(path.join(setup, 'state', 'clock-probe'))).toBe(true);
    const b = fileServerNow(setup);
    expect(b).toBeGreaterThanOrEqual(a);
  });
});

describe('tryClaim / releaseClaim', () => {
  const opts: ClaimOptions = { leaseMs: 60_000, now: Date.now };

  it('gives a run to one claimer, records its owner, releases cleanly', () => {
    const { dir } = ensemble(1);
    const got = tryClaim(dir(1), { jobId: '42', packerId: 'p1' }, opts);
    expect(got).not.toBeNull();
    expect(got!.broken).toBeNull();
    const owner = readClaimOwner(dir(1));
    expect(fs.statSync(runPaths(dir(1)).claim).isFile()).toBe(true);
    expect(owner).toMatchObject({ host: hostName(), pid: process.pid, jobId: '42', packerId: 'p1', token: got!.claim.owner.token });
    expect(tryClaim(dir(1), who, opts)).toBeNull();
    expect(holdsClaim(got!.claim)).toBe(true);
    releaseClaim(got!.claim);
    expect(fs.existsSync(runPaths(dir(1)).claim)).toBe(false);
    expect(fs.readdirSync(runPaths(dir(1)).meta)).toEqual(['run.json', 'status.json']);
    expect(tryClaim(dir(1), who, opts)).not.toBeNull();
  });

  it('survives a run directory deleted under it: nothing to claim, nothing created', () => {
    const { dir } = ensemble(1);
    fs.rmSync(dir(1), { recursive: true });
    expect(tryClaim(dir(1), who, opts)).toBeNull();
    expect(inspectClaim(dir(1), opts)).toBeNull();
    expect(fs.existsSync(dir(1))).toBe(false);
  });

  it('breaks the claim of a dead owner on this host and reports whom it broke', () => {
    const { dir } = ensemble(1);
    const child = spawnSync(process.execPath, [
      '--input-type=module',
      '-e',
      `const { tryClaim } = await import(${JSON.stringify(CLAIM_JS)}); tryClaim(${JSON.stringify(dir(1))}, { jobId: null, packerId: 'doomed' }, { leaseMs: 60000, now: Date.now });`,
    ]);
    expect(child.status).toBe(0);
    const seen = inspectClaim(dir(1), opts)!;
    expect(seen.owner!.packerId).toBe('doomed');
    expect(seen.stale).toBe(true);
    expect(seen.why).toMatch(/doomed.*no longer running/);
    const got = tryClaim(dir(1), who, opts)!;
    expect(got.broken!.packerId).toBe('doomed');
    expect(holdsClaim(got.claim)).toBe(true);
    expect(fs.readdirSync(runPaths(dir(1)).meta).sort()).toEqual(['claim', 'run.json', 'status.json']);
  });

  it('treats a reused pid (same pid, other start time) as dead', () => {
    const { dir } = ensemble(1);
    plantOwner(dir(1), { pid: process.pid, pidStart: '1' });
    expect(inspectClaim(dir(1), opts)!.stale).toBe(true);
  });

  it('judges a dead pid on this host only from inside the same pid namespace (containers share host names, not pids)', () => {
    const { dir } = ensemble(3);
    plantOwner(dir(1), { pid: deadPid(), pidNs: 'pid:[1]' }); // another container on this host
    plantOwner(dir(2), { pid: deadPid(), pidNs: pidNs() }); // this one
    plantOwner(dir(3), { pid: deadPid() }); // written before themis recorded namespaces
    expect([1, 2, 3].map((i) => inspectClaim(dir(i), opts)!.stale)).toEqual([false, true, true]);
    expect(tryClaim(dir(1), who, opts)).toBeNull();
    expect(samePidSpace(hostName(), 'pid:[1]')).toBe(pidNs() === null);
    expect(samePidSpace('some-other-node', pidNs())).toBe(false);
  });

  it('never breaks a live claim from another host, however old its pid looks', () => {
    const { dir } = ensemble(1);
    plantOwner(dir(1), { host: 'some-other-node', pid: deadPid() });
    const seen = inspectClaim(dir(1), opts)!;
    expect(seen.stale).toBe(false);
    expect(tryClaim(dir(1), who, opts)).toBeNull();
  });

  it('judges an old-style claim dir without owner.json by the dir age', () => {
    const { dir } = ensemble(2);
    fs.mkdirSync(runPaths(dir(1)).claim);
    expect(inspectClaim(dir(1), opts)).toMatchObject({ owner: null, stale: false });
    expect(tryClaim(dir(1), who, opts)).toBeNull();
    fs.mkdirSync(runPaths(dir(2)).claim);
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(runPaths(dir(2)).claim, old, old);
    expect(inspectClaim(dir(2), opts)!.why).toMatch(/no readable owner/);
    const got = tryClaim(dir(2), who, opts)!;
    expect(got.broken!.packerId).toMatch(/never written/);
  });

  it('waits for a live claim-break mutex, removes a dead one', () => {
    const { dir } = ensemble(2);
    plantOwner(dir(1), { host: 'gone-node' }, 120_000);
    plantOwner(dir(2), { host: 'gone-node' }, 120_000);
    fs.mkdirSync(runPaths(dir(1)).claimBreak);
    expect(tryClaim(dir(1), who, opts)).toBeNull(); // someone is breaking it right now
    fs.mkdirSync(runPaths(dir(2)).claimBreak);
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(runPaths(dir(2)).claimBreak, old, old);
    const got = tryClaim(dir(2), who, opts)!;
    expect(got.broken!.host).toBe('gone-node');
    expect(fs.existsSync(runPaths(dir(2)).claimBreak)).toBe(false);
  });
});

describe("a packer's shared owner file", () => {
  it('checks a claim with a plain stat on a local file system, with a revalidating open elsewhere', () => {
    const { dir } = ensemble(1);
    const claimPath = runPaths(dir(1)).claim;
    // The test machine's temp dir is local (ext4, tmpfs, overlay, ...).
    expect(lookupsCoherent(claimPath)).toBe(true);
    checkClaimsBy('1');
    expect(lookupsCoherent(claimPath)).toBe(false);
  });

  it.each([
    ['a plain stat (local file system)', '0'],
    ['a revalidating open (as on NFS, Lustre, GPFS)', '1'],
  ] as const)('links every claim to one owner file, checked by %s: one write refreshes them all, release and exit leave nothing', async (_how, revalidate) => {
    checkClaimsBy(revalidate);
    const { setup, dir } = ensemble(3);
    const ownerDir = path.join(setup, 'packers');
    const packer = { jobId: '7', packerId: 'shared-1', ownerDir };
    const opts: ClaimOptions = { leaseMs: 400, now: () => fileServerNow(setup) };
    const claims = [1, 2, 3].map((i) => tryClaim(dir(i), packer, opts)!.claim);
    const ownerFile = path.join(ownerDir, 'shared-1.owner');
    const ino = fs.statSync(ownerFile).ino;
    for (const i of [1, 2, 3]) expect(fs.statSync(runPaths(dir(i)).claim).ino).toBe(ino);
    expect(fs.statSync(ownerFile).nlink).toBe(4);
    expect(readClaimOwner(dir(2))).toMatchObject({ packerId: 'shared-1', jobId: '7', pid: process.pid });
    // Heartbeats keep all three fresh past the lease; a foreign claimer is refused throughout.
    for (let t = 0; t < 6; t++) {
      await sleep(120);
      for (const c of claims) expect(heartbeatClaim(c)).toBe(true);
    }
    for (const i of [1, 2, 3]) expect(inspectClaim(dir(i), opts)!.stale).toBe(false);
    expect(tryClaim(dir(2), { jobId: null, packerId: 'other', ownerDir }, opts)).toBeNull();
    releaseClaim(claims[1]!);
    expect(fs.existsSync(runPaths(dir(2)).claim)).toBe(false);
    expect(holdsClaim(claims[0]!)).toBe(true);
    expect(fs.statSync(ownerFile).nlink).toBe(3);
    // The packer exits without releasing (as a crash would): the claims outlive its file's name
    // and go stale after the lease.
    dropSharedOwner(packer);
    expect(fs.existsSync(ownerFile)).toBe(false);
    await sleep(500);
    const seen = inspectClaim(dir(1), opts)!;
    expect(seen.owner!.packerId).toBe('shared-1');
    expect(seen.why).toMatch(/over the lease/);
    const got = tryClaim(dir(1), { jobId: null, packerId: 'successor', ownerDir }, opts)!;
    expect(got.broken!.packerId).toBe('shared-1');
    expect(holdsClaim(claims[0]!)).toBe(false);
    expect(heartbeatClaim(claims[0]!)).toBe(false);
    expect(holdsClaim(claims[2]!)).toBe(true); // breaking one claim leaves the owner's others alone
    expect(fs.readdirSync(runPaths(dir(1)).meta).sort()).toEqual(['claim', 'run.json', 'status.json']);
  });

  it('falls back to a private owner file when the shared one cannot be made', () => {
    const { root, dir } = ensemble(1);
    const blocker = path.join(root, 'not-a-dir');
    fs.writeFileSync(blocker, '');
    const got = tryClaim(dir(1), { jobId: null, packerId: 'p', ownerDir: blocker }, { leaseMs: 60_000, now: Date.now })!;
    expect(got.claim.shared).toBeNull();
    expect(readClaimOwner(dir(1))!.packerId).toBe('p');
    expect(fs.statSync(runPaths(dir(1)).claim).nlink).toBe(1);
    expect(fs.readdirSync(runPaths(dir(1)).meta).sort()).toEqual(['claim', 'run.json', 'status.json']);
    releaseClaim(got.claim);
    expect(fs.existsSync(runPaths(dir(1)).claim)).toBe(false);
  });
});

describe('heartbeat and lease', () => {
  it('keeps a claim fresh while heartbeating, stale after the lease without', async () => {
    const { setup, dir } = ensemble(2);
    const opts: ClaimOptions = { leaseMs: 300, now: () => fileServerNow(setup) };
    const a = tryClaim(dir(1), who, opts)!.claim;
    tryClaim(dir(2), who, opts);
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      expect(heartbeatClaim(a)).toBe(true);
    }
    // Our own pid is alive, so only age can make these stale.
    expect(inspectClaim(dir(1), { leaseMs: 300, now: Date.now })!.stale).toBe(false);
    const bSeen = inspectClaim(dir(2), { leaseMs: 300, now: Date.now })!;
    expect(bSeen.stale).toBe(true);
    expect(bSeen.why).toMatch(/over the lease of 0\.3 s/);
    expect(readClaimOwner(dir(1))!.token).toBe(a.owner.token);
  });

  it.each([
    ['a plain stat', '0'],
    ['a revalidating open', '1'],
  ] as const)('a claim that cannot be looked at (%s fails, not ENOENT) is not lost to the heartbeat, and not held for a status write', (_how, revalidate) => {
    checkClaimsBy(revalidate);
    const { setup, dir } = ensemble(1);
    const packer = { jobId: null, packerId: 'looker', ownerDir: path.join(setup, 'packers') };
    const c = tryClaim(dir(1), packer, { leaseMs: 60_000, now: Date.now })!.claim;
    expect(c.shared).not.toBeNull();
    const meta = runPaths(dir(1)).meta;
    // `.themis` swapped for a symlink loop: every lookup under it fails with ELOOP.
    fs.renameSync(meta, `${meta}.away`);
    fs.symlinkSync(path.basename(meta), meta);
    expect(pinnedState(runPaths(dir(1)).claim, c.id, true)).toBe('unknown');
    expect(heartbeatClaim(c)).toBe(true);
    expect(holdsClaim(c)).toBe(false);
    fs.unlinkSync(meta);
    fs.renameSync(`${meta}.away`, meta);
    expect(heartbeatClaim(c)).toBe(true);
    expect(holdsClaim(c)).toBe(true);
    // Gone for real: lost.
    fs.renameSync(runPaths(dir(1)).claim, `${runPaths(dir(1)).claim}.elsewhere`);
    expect(pinnedState(runPaths(dir(1)).claim, c.id, true)).toBe('gone');
    expect(heartbeatClaim(c)).toBe(false);
    dropSharedOwner(packer);
  });

  it('gives a claim up once its heartbeat has failed for half the lease, before anyone may think it stale', async () => {
    const { setup, dir } = ensemble(1);
    const packer = { jobId: null, packerId: 'fenced', ownerDir: path.join(setup, 'packers') };
    const c = tryClaim(dir(1), packer, { leaseMs: 2000, now: Date.now })!.claim;
    const shared = c.shared!;
    const fd = shared.fd;
    shared.fd = -1; // every heartbeat write now fails
    try {
      await sleep(60);
      expect(heartbeatClaim(c, 2000)).toBe(true); // one failure: still ours
      expect(shared.touchError).toBeTruthy();
      await sleep(1100);
      expect(heartbeatClaim(c, 2000)).toBe(false); // failing for over half the lease: give it up
      expect(holdsClaim(c)).toBe(true); // nobody took it: it was given up in time
    } finally {
      shared.fd = fd;
    }
    await sleep(60); // the next tick's write works again
    expect(heartbeatClaim(c, 2000)).toBe(true);
    dropSharedOwner(packer);
  });

  it('tells the loser it lost: heartbeat false, holdsClaim false, release leaves the new claim', async () => {
    const { dir } = ensemble(1);
    const opts: ClaimOptions = { leaseMs: 100, now: Date.now };
    const mine = tryClaim(dir(1), who, opts)!.claim;
    await sleep(250);
    const thief = tryClaim(dir(1), { jobId: null, packerId: 'thief' }, opts)!;
    expect(thief.broken!.token).toBe(mine.owner.token);
    expect(heartbeatClaim(mine)).toBe(false);
    expect(holdsClaim(mine)).toBe(false);
    releaseClaim(mine);
    expect(holdsClaim(thief.claim)).toBe(true);
    expect(heartbeatClaim(thief.claim)).toBe(true);
  });
});

describe('many processes racing for the same stale claims', () => {
  it('gives every run exactly one winner', async () => {
    const N = 200;
    const { root, dir } = ensemble(N);
    const dead = deadPid();
    for (let id = 1; id <= N; id++) {
      const kind = id % 4;
      if (kind === 0)
        plantOwner(dir(id), { pid: dead, packerId: `dead-${id}` }); // dead pid here
      else if (kind === 1)
        plantOwner(dir(id), { host: 'lost-node', packerId: `old-${id}` }, 30_000); // expired lease
      else if (kind === 2) {
        fs.mkdirSync(runPaths(dir(id)).claim); // claimer died between mkdir and owner.json
        const old = new Date(Date.now() - 30_000);
        fs.utimesSync(runPaths(dir(id)).claim, old, old);
      } // kind 3: unclaimed
    }
    const ledger = path.join(root, 'ledger.txt');
    const script = path.join(root, 'race.mjs');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';
const [root, n, ledger, startAt] = process.argv.slice(2);
const { tryClaim } = await import(${JSON.stringify(CLAIM_JS)});
const ids = Array.from({ length: Number(n) }, (_, i) => i + 1);
for (let i = ids.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [ids[i], ids[j]] = [ids[j], ids[i]]; }
const wait = Number(startAt) - Date.now();
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
for (const id of ids) {
  const got = tryClaim(root + '/runs/' + id, { jobId: null, packerId: 'racer-' + process.pid, ...(process.pid % 2 ? { ownerDir: root + '/packers' } : {}) }, { leaseMs: 10000, now: Date.now });
  if (got) fs.appendFileSync(ledger, id + ' ' + process.pid + ' ' + (got.broken ? got.broken.packerId : '-') + '\\n');
}
// Stay alive until every racer is done: a claimer that exits is dead, and its claims fairly stale.
fs.writeFileSync(ledger + '.done-' + process.pid, '');
const sleeper = new Int32Array(new SharedArrayBuffer(4));
while (fs.readdirSync(root).filter((n) => n.startsWith('ledger.txt.done-')).length < 6) Atomics.wait(sleeper, 0, 0, 20);
`,
    );
    const startAt = Date.now() + 1500;
    const procs = Array.from({ length: 6 }, () => spawn(process.execPath, [script, root, String(N), ledger, String(startAt)], { stdio: ['ignore', 'ignore', 'pipe'] }));
    const codes = await Promise.all(
      procs.map(
        (p) =>
          new Promise<{ code: number | null; err: string }>((resolve) => {
            let err = '';
            p.stderr!.on('data', (d) => (err += d));
            p.on('close', (code) => resolve({ code, err }));
          }),
      ),
    );
    for (const c of codes) expect(c, c.err).toMatchObject({ code: 0 });
    const lines = fs.readFileSync(ledger, 'utf8').trim().split('\n');
    const winners = new Map<number, string[]>();
    for (const line of lines) {
      const [id, pid] = line.split(' ');
      winners.set(Number(id), [...(winners.get(Number(id)) ?? []), pid!]);
    }
    expect(winners.size).toBe(N);
    const doubles = [...winners].filter(([, w]) => w.length !== 1);
    expect(doubles).toEqual([]);
    for (const [id, [pid]] of winners) {
      const owner = readClaimOwner(dir(id))!;
      expect(owner.packerId).toBe(`racer-${pid}`);
      // No graveyard or mutex left behind.
      expect(fs.readdirSync(runPaths(dir(id)).meta).sort()).toEqual(['claim', 'run.json', 'status.json']);
    }
    // Breaks are reported for stale claims only (a fresh claimer may win a run right after a
    // breaker moved the stale claim aside; it then won without breaking anything).
    const broken = lines.filter((l) => !l.endsWith(' -'));
    expect(broken.length).toBeGreaterThan(100);
    for (const l of broken) expect(Number(l.split(' ')[0]) % 4).not.toBe(3);
    for (const l of broken) expect(l).not.toMatch(/racer-/);
  }, 30_000);
});

describe('claim churn with kill -9', () => {
  it('never lets two live processes hold a run at once, and nothing stays stuck after owners die mid-claim', async () => {
    const RUNS = 4;
    const { root, dir } = ensemble(RUNS);
    const violations = path.join(root, 'violations.txt');
    const script = path.join(root, 'churn.mjs');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';
const [root, runs, violations, until] = process.argv.slice(2);
const { tryClaim, releaseClaim, holdsClaim } = await import(${JSON.stringify(CLAIM_JS)});
const { isProcessAlive } = await import(${JSON.stringify(CLAIM_JS.replace('claim.js', 'proc.js'))});
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let held = 0;
while (Date.now() < Number(until)) {
  const id = 1 + Math.floor(Math.random() * Number(runs));
  const dir = root + '/runs/' + id;
  const got = tryClaim(dir, { jobId: null, packerId: 'churn-' + process.pid, ...(process.pid % 2 ? { ownerDir: root + '/packers' } : {}) }, { leaseMs: 2000, now: Date.now });
  if (!got) { nap(1); continue; }
  held++;
  const holder = dir + '/holder';
  let prev = null;
  try { prev = Number(fs.readFileSync(holder, 'utf8')); } catch {}
  if (prev && prev !== process.pid && isProcessAlive(prev, null)) fs.appendFileSync(violations, 'run ' + id + ': ' + process.pid + ' claimed while ' + prev + ' held it\\n');
  fs.writeFileSync(holder, String(process.pid));
  nap(Math.floor(Math.random() * 3));
  if (!holdsClaim(got.claim)) fs.appendFileSync(violations, 'run ' + id + ': ' + process.pid + ' lost its claim while holding it\\n');
  fs.rmSync(holder, { force: true });
  releaseClaim(got.claim);
}
process.stdout.write(String(held));
`,
    );
    const until = Date.now() + 4000;
    const procs = Array.from({ length: 5 }, () => spawn(process.execPath, [script, root, String(RUNS), violations, String(until)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const results = procs.map(
      (p) =>
        new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve) => {
          let out = '';
          let err = '';
          p.stdout!.on('data', (d) => (out += d));
          p.stderr!.on('data', (d) => (err += d));
          p.on('close', (code, signal) => resolve({ code, signal, out, err }));
        }),
    );
    // Kill two of them at random moments, very likely while they hold or break a claim.
    await sleep(800 + Math.random() * 400);
    procs[0]!.kill('SIGKILL');
    await sleep(300 + Math.random() * 400);
    procs[1]!.kill('SIGKILL');
    const done = await Promise.all(results);
    expect(done.slice(0, 2).map((d) => d.signal)).toEqual(['SIGKILL', 'SIGKILL']);
    for (const d of done.slice(2)) {
      expect(d, d.err).toMatchObject({ code: 0 });
      expect(Number(d.out)).toBeGreaterThan(0);
    }
    expect(fs.existsSync(violations) ? fs.readFileSync(violations, 'utf8') : '').toBe('');
    // Whatever the dead left behind is claimable now (dead pid) or after the lease (a mutex).
    await sleep(2100);
    for (let id = 1; id <= RUNS; id++) {
      const got = tryClaim(dir(id), who, { leaseMs: 2000, now: Date.now });
      expect(got, `run ${id}: ${JSON.stringify(inspectClaim(dir(id), { leaseMs: 2000, now: Date.now }))}`).not.toBeNull();
      releaseClaim(got!.claim);
    }
  }, 30_000);
});

describe('fileServerNow without a setup dir', () => {
  it('falls back to the local clock and creates nothing', () => {
    const base = makeTempDir('themis-clock-');
    temps.push(base);
    const missing = path.join(base, 'typo', '.themis_setup');
    expect(Math.abs(fileServerNow(missing) - Date.now())).toBeLessThan(2000);
    expect(fs.existsSync(path.join(base, 'typo'))).toBe(false);
  });
});

describe('a local clock that jumps', () => {
  it('does not make a fresh claim look stale, nor a stale one fresh', () => {
    const { setup, dir } = ensemble(2);
    const opts: ClaimOptions = { leaseMs: 60_000, now: () => fileServerNow(setup) };
    const fresh = tryClaim(dir(1), who, opts)!;
    plantOwner(dir(2), { host: 'lost-node' }, 120_000);
    const real = Date.now();
    const spy = vi.spyOn(Date, 'now').mockReturnValue(real + 3_600_000); // an hour ahead
    try {
      expect(inspectClaim(dir(1), opts)!.stale).toBe(false);
      expect(inspectClaim(dir(2), opts)!.stale).toBe(true);
      spy.mockReturnValue(real - 3_600_000); // and an hour behind
      expect(inspectClaim(dir(1), opts)!.stale).toBe(false);
      expect(inspectClaim(dir(2), opts)!.stale).toBe(true);
    } finally {
      spy.mockRestore();
      releaseClaim(fresh.claim);
    }
  });
});
