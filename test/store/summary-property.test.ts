import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Themis } from '../../src/api/themis.js';
import { runDoctor } from '../../src/store/doctor.js';
import { dequeueRuns, requeueRuns } from '../../src/store/run-ops.js';
import { PACK_BIN, makeTempDir, runThemis, writeScript } from '../helpers/cli.js';

/**
 * Property: whatever happens to an ensemble (runs finishing, requeue, dequeue, add, doctor
 * --repair, packers killed -9 at random moments), `themis status` answered from the summary of
 * finished runs says exactly what a full scan of every status file says, run by run.
 */

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

/** mulberry32: a small seeded generator, so a failing sequence can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PACK_ARGS = ['--cores', '3', '--heartbeat', '0.2', '--lease', '1', '--rescan', '1'];

function packer(setupDir: string) {
  const child = spawn(process.execPath, [PACK_BIN, '--setup-dir', setupDir, ...PACK_ARGS], { stdio: 'ignore', env: { ...process.env, CI: 'true' } });
  return { child, done: new Promise<void>((resolve) => child.once('close', () => resolve())) };
}

async function view(setupDir: string, full: boolean): Promise<string[]> {
  const { runs } = await Themis.open(setupDir).scanStatuses({ full });
  return runs.map((r) => (r.status ? `${r.id} ${r.status.status}@${r.status.step} ${r.status.reason ?? ''}` : `${r.id} unreadable`));
}

describe('status from the summary == status --full (property, random sequences, real packers)', () => {
  it.each([11, 29])(
    'seed %i',
    async (seed) => {
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const root = makeTempDir('themis-summary-prop-');
      temps.push(root);
      // Two steps, a quarter failing at step 1, some slow enough to be killed mid-run.
      writeScript(path.join(root, 'app.sh'), '#!/bin/sh\nsleep %%nap%%\n[ "$THEMIS_STEP" = 1 ] && exit %%code%%\nexit 0\n');
      fs.writeFileSync(path.join(root, 's.csv'), `nap,code\n${Array.from({ length: 30 }, (_, i) => `0.0${i % 7},${i % 4 === 3 ? 1 : 0}`).join('\n')}\n`);
      fs.writeFileSync(path.join(root, 'steps.csv'), 'args\n./app.sh\n./app.sh\n');
      const g = runThemis(['gen', '--steps', 'steps.csv', 's.csv', '--scheduler', 'local'], { cwd: root });
      expect(g.code, g.stderr).toBe(0);
      const setupDir = path.join(root, '.themis_setup');
      let total = 30;
      const history: string[] = [];
      for (let step = 0; step < 12; step++) {
        const op = pick(['run', 'kill', 'kill', 'requeue', 'dequeue', 'add', 'doctor'] as const);
        const ids = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => 1 + Math.floor(rand() * total));
        history.push(`${op}${op === 'requeue' || op === 'dequeue' ? ` ${ids.join(',')}` : ''}`);
        if (op === 'run') await packer(setupDir).done;
        else if (op === 'kill') {
          const p = packer(setupDir);
          await new Promise((r) => setTimeout(r, 100 + rand() * 900));
          p.child.kill('SIGKILL');
          await p.done;
          await new Promise((r) => setTimeout(r, 1100)); // its claims go stale (lease 1 s)
        } else if (op === 'requeue') requeueRuns(setupDir, ids, { hard: rand() < 0.5, leaseMs: 1000 });
        else if (op === 'dequeue') dequeueRuns(setupDir, ids, { leaseMs: 1000 });
        else if (op === 'add') {
          fs.writeFileSync(path.join(root, 'more.csv'), 'nap,code\n0.01,0\n0.02,1\n');
          const a = runThemis(['add', '--steps', 'steps.csv', 'more.csv'], { cwd: root });
          expect(a.code, a.stderr).toBe(0);
          total += 2;
        } else runDoctor(setupDir, { repair: true, leaseMs: 1000 });
        const quick = await view(setupDir, false);
        expect(quick, `seed ${seed}, after: ${history.join(' | ')}`).toEqual(await view(setupDir, true));
        expect(quick).toHaveLength(total);
      }
      // And in the end the summary covers what is finished: status reads only what is not. A
      // packer killed between a final status and its entry loses that entry (the run is only
      // uncovered, by design): at most one per core in flight per kill, until doctor rebuilds.
      await packer(setupDir).done;
      const finishedOf = (runs: { status: { status: string } | null }[]) => runs.filter((r) => r.status && ['successful', 'failed', 'killed', 'aborted'].includes(r.status.status)).length;
      const kills = history.filter((h) => h === 'kill').length;
      const { summary, runs } = await Themis.open(setupDir).scanStatuses();
      expect(summary.used).toBe(true);
      expect(summary.covered).toBeLessThanOrEqual(finishedOf(runs));
      expect(summary.covered).toBeGreaterThanOrEqual(finishedOf(runs) - 3 * kills);
      runDoctor(setupDir, { repair: true, leaseMs: 1000 });
      const rebuilt = await Themis.open(setupDir).scanStatuses();
      expect(rebuilt.summary.covered).toBe(finishedOf(rebuilt.runs));
    },
    240_000,
  );
});
