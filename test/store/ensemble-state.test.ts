import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bumpGeneration,
  clearFailed,
  clearStop,
  failedCount,
  listPackers,
  markFailed,
  readGeneration,
  readStop,
  removePacker,
  setStop,
  takeOnce,
  writePackerHeartbeat,
  type PackerInfo,
} from '../../src/store/ensemble-state.js';
import { setupPaths } from '../../src/store/layout.js';
import { hostName, pidStartTime } from '../../src/store/proc.js';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';

const STATE_JS = pathToFileURL(path.join(PROJECT_ROOT, 'dist/store/ensemble-state.js')).href;
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});
function setupDir(): string {
  const d = makeTempDir('themis-state-');
  temps.push(d);
  return path.join(d, '.themis_setup');
}

describe('failed markers', () => {
  it('counts each failed run once and clears them', () => {
    const s = setupDir();
    expect(failedCount(s)).toBe(0);
    markFailed(s, 3);
    markFailed(s, 3);
    markFailed(s, 10);
    expect(failedCount(s)).toBe(2);
    clearFailed(s, [3, 4]);
    expect(failedCount(s)).toBe(1);
    expect(fs.readdirSync(setupPaths(s).failedDir)).toEqual(['10']);
  });
});

describe('stop flag', () => {
  it('sets, reads and clears; an unreadable stop file still stops', () => {
    const s = setupDir();
    expect(readStop(s)).toBeNull();
    setStop(s, { reason: '11 runs failed, over max_failed_runs = 10', by: 'packer p1', kind: 'max-failed-runs' });
    expect(readStop(s)).toMatchObject({ kind: 'max-failed-runs', reason: expect.stringMatching(/11 runs failed/) });
    expect(readStop(s)!.at).toMatch(/^\d{4}-/);
    clearStop(s);
    clearStop(s);
    expect(readStop(s)).toBeNull();
    fs.writeFileSync(setupPaths(s).stopFile, '{"reas');
    expect(readStop(s)!.reason).toMatch(/stop\.json exists but is unreadable; remove it/);
  });
});

describe('generation', () => {
  it('starts at 0 and only goes up', () => {
    const s = setupDir();
    expect(readGeneration(s)).toBe(0);
    expect(bumpGeneration(s)).toBe(1);
    expect(bumpGeneration(s)).toBe(2);
    expect(readGeneration(s)).toBe(2);
  });
});

describe('takeOnce', () => {
  it('is true for exactly one of many concurrent processes', async () => {
    const s = setupDir();
    const marker = setupPaths(s).prepEnsembleLock;
    const startAt = Date.now() + 1000;
    const code = `const { takeOnce } = await import(${JSON.stringify(STATE_JS)});
const wait = ${startAt} - Date.now();
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
process.stdout.write(String(takeOnce(${JSON.stringify(marker)})));`;
    const outs = await Promise.all(
      Array.from({ length: 6 }, () => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        return new Promise<string>((resolve) => p.on('close', () => resolve(out)));
      }),
    );
    expect(outs.sort()).toEqual(['false', 'false', 'false', 'false', 'false', 'true']);
    expect(takeOnce(marker)).toBe(false);
    fs.rmdirSync(marker);
    expect(takeOnce(marker)).toBe(true);
  }, 20_000);
});

describe('packer heartbeats', () => {
  it('lists live and dead packers', async () => {
    const s = setupDir();
    const base: PackerInfo = {
      packerId: 'a',
      host: hostName(),
      pid: process.pid,
      pidStart: pidStartTime(process.pid),
      jobId: '7',
      allocation: 1,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      running: [1, 2],
    };
    writePackerHeartbeat(s, base);
    writePackerHeartbeat(s, { ...base, packerId: 'b', pidStart: '1' }); // our pid, other start: reused
    writePackerHeartbeat(s, { ...base, packerId: 'c', host: 'elsewhere', pid: 1 });
    fs.writeFileSync(setupPaths(s).packerFile('torn'), '{');
    const opts = { leaseMs: 60_000, now: Date.now };
    const list = listPackers(s, opts);
    expect(list.map((p) => [p.packerId, p.alive])).toEqual([
      ['a', true],
      ['b', false],
      ['c', true],
    ]);
    expect(list[0]).toMatchObject({ jobId: '7', running: [1, 2] });
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(setupPaths(s).packerFile('c'), old, old);
    expect(listPackers(s, opts).find((p) => p.packerId === 'c')).toMatchObject({ alive: false });
    removePacker(s, 'a');
    removePacker(s, 'a');
    expect(listPackers(s, opts).map((p) => p.packerId)).toEqual(['b', 'c']);
  });
});
