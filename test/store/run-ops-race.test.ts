import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runPaths } from '../../src/store/layout.js';
import { readStatus } from '../../src/store/records.js';
import { dequeueRuns, requeueRuns } from '../../src/store/run-ops.js';
import { PROJECT_ROOT } from '../helpers/cli.js';
import { makeEnsemble } from '../helpers/ensemble.js';

const DIST = (f: string) => pathToFileURL(path.join(PROJECT_ROOT, 'dist/store', f)).href;
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Which event may follow which status: the state machine that status histories must obey. */
const TRANSITIONS: Record<string, [from: string[], to: string]> = {
  started: [['queued'], 'running'],
  finished: [['running'], 'successful'],
  stopped: [['running'], 'killed'],
  dequeued: [['queued'], 'killed'],
  requeued: [['successful', 'killed'], 'queued'],
};

describe('requeue and dequeue while packers run', () => {
  it('never writes a run a packer holds: every history obeys the state machine', async () => {
    const N = 30;
    const e = makeEnsemble(N);
    temps.push(e.root);
    // A minimal packer: claim, start (running), honour dequeue.request, finish, release.
    const script = path.join(e.root, 'mini-packer.mjs');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';
const { tryClaim, releaseClaim, holdsClaim } = await import(${JSON.stringify(DIST('claim.js'))});
const { readStatus, writeStatus, withHistory } = await import(${JSON.stringify(DIST('records.js'))});
const [root, n, until, violations] = process.argv.slice(2);
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const opts = { leaseMs: 5000, now: Date.now };
while (Date.now() < Number(until)) {
  const id = 1 + Math.floor(Math.random() * Number(n));
  const dir = root + '/runs/' + id;
  const got = tryClaim(dir, { jobId: null, packerId: 'mini-' + process.pid }, opts);
  if (!got) { nap(1); continue; }
  try {
    let s = readStatus(dir);
    if (s.status === 'running') fs.appendFileSync(violations, 'run ' + id + ' running while unclaimed\\n');
    if (s.status !== 'queued') continue;
    s = withHistory({ ...s, status: 'running' }, 'started', 'mini-' + process.pid);
    writeStatus(dir, s);
    nap(1 + Math.floor(Math.random() * 4));
    if (!holdsClaim(got.claim)) { fs.appendFileSync(violations, 'run ' + id + ' lost its claim\\n'); continue; }
    const req = dir + '/.themis/dequeue.request';
    if (fs.existsSync(req)) {
      writeStatus(dir, withHistory({ ...s, status: 'killed', reason: 'dequeued' }, 'stopped'));
      fs.rmSync(req, { force: true });
    } else {
      writeStatus(dir, withHistory({ ...s, status: 'successful' }, 'finished'));
    }
  } finally {
    releaseClaim(got.claim);
  }
}
`,
    );
    const violations = path.join(e.root, 'violations.txt');
    const until = Date.now() + 3000;
    const kids = Array.from({ length: 3 }, () => spawn(process.execPath, [script, e.root, String(N), String(until), violations], { stdio: ['ignore', 'ignore', 'pipe'] }));
    const exits = kids.map(
      (k) =>
        new Promise<{ code: number | null; err: string }>((resolve) => {
          let err = '';
          k.stderr!.on('data', (d) => (err += d));
          k.on('close', (code) => resolve({ code, err }));
        }),
    );
    let changed = 0;
    const seen = new Set<string>();
    while (Date.now() < until) {
      const ids = Array.from({ length: 4 }, () => 1 + Math.floor(Math.random() * N));
      const requeue = Math.random() < 0.5;
      const r = requeue ? requeueRuns(e.setupDir, ids) : dequeueRuns(e.setupDir, ids);
      changed += r.changed.length;
      // Histories keep only their newest entries: what our own operations did is counted here.
      if (r.changed.length > 0) seen.add(requeue ? 'requeued' : 'dequeued');
      await sleep(5);
    }
    for (const x of await Promise.all(exits)) expect(x, x.err).toMatchObject({ code: 0 });
    expect(fs.existsSync(violations) ? fs.readFileSync(violations, 'utf8') : '').toBe('');
    expect(changed).toBeGreaterThan(0);
    for (let id = 1; id <= N; id++) {
      expect(fs.existsSync(runPaths(e.runDir(id)).claim), `run ${id} still claimed`).toBe(false);
      const s = readStatus(e.runDir(id))!;
      let state: string | null = s.history[0]!.event === 'created' ? 'queued' : null;
      for (const h of s.history) {
        const t = TRANSITIONS[h.event];
        if (!t) continue;
        seen.add(h.event);
        if (state !== null) expect(t[0], `run ${id}: ${h.event} after ${state}; history ${JSON.stringify(s.history.map((x) => x.event))}`).toContain(state);
        state = t[1];
      }
      if (state !== null) expect(s.status).toBe(state);
    }
    // The race exercised every path: packers started, finished and stopped runs; we requeued and dequeued.
    expect([...seen].sort()).toEqual(expect.arrayContaining(['dequeued', 'finished', 'requeued', 'started']));
  }, 30_000);
});
