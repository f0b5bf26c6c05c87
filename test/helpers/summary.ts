import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { Themis } from '../../src/api/themis.js';
import { summaryDir } from '../../src/store/summary.js';
import { makeTempDir, runThemis, writeScript } from './cli.js';

/** What the summary-of-finished-runs tests share: an ensemble made with the real CLI, and status compared with status --full. */

export const summaryTemps: string[] = [];

/** An ensemble of n runs: run i exits with code (i % 4 === 0 ? 1 : 0), so a quarter fail. */
export function genEnsemble(n: number): string {
  const root = makeTempDir('themis-summary-cli-');
  summaryTemps.push(root);
  writeScript(path.join(root, 'app.sh'), '#!/bin/sh\nexit %%code%%\n');
  const rows = Array.from({ length: n }, (_, i) => `${i + 1},${(i + 1) % 4 === 0 ? 1 : 0}`);
  fs.writeFileSync(path.join(root, 's.csv'), `i,code\n${rows.join('\n')}\n`);
  const g = runThemis(['gen', './app.sh', 's.csv', '--scheduler', 'local'], { cwd: root });
  expect(g.code, g.stderr).toBe(0);
  return root;
}

export function themis(root: string, ...args: string[]) {
  const r = runThemis(args, { cwd: root });
  expect(r.code, `themis ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

export function report(root: string, full = false) {
  return JSON.parse(themis(root, 'status', '--json', '--no-allocations', ...(full ? ['--full'] : [])).stdout) as {
    counts: Record<string, number>;
    unreadableCount: number;
    summary: { used: boolean; covered: number; read: number; problem: string | null } | null;
  };
}

/** Each run's status, step and reason, as the API reads them (with the summary, or every file). */
export async function perRun(root: string, full: boolean) {
  const { runs } = await Themis.open(path.join(root, '.themis_setup')).scanStatuses({ full });
  return runs.map((r) => (r.status ? `${r.id} ${r.status.status} ${r.status.step} ${r.status.reason}` : `${r.id} unreadable`));
}

/** status (from the summary) says exactly what status --full says, in counts and run by run. */
export async function expectSameAsFull(root: string) {
  const quick = report(root);
  const full = report(root, true);
  expect(quick.counts).toEqual(full.counts);
  expect(quick.unreadableCount).toBe(full.unreadableCount);
  expect(await perRun(root, false)).toEqual(await perRun(root, true));
  expect(themis(root, 'status', 'failed', 'killed').stdout).toBe(themis(root, 'status', 'failed', 'killed', '--full').stdout);
  expect(full.summary?.used).toBe(false);
  return quick;
}

export function summaryFiles(root: string): string[] {
  return fs.readdirSync(summaryDir(path.join(root, '.themis_setup'))).sort();
}
