import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runPaths } from '../../src/store/layout.js';
import type { StatusRecord } from '../../src/store/records.js';
import { PACK_BIN, writeScript } from '../helpers/cli.js';

export { makeEnsemble, type FixtureRun } from '../helpers/ensemble.js';

export function readStatusOf(runDir: string): StatusRecord {
  return JSON.parse(fs.readFileSync(runPaths(runDir).status, 'utf8')) as StatusRecord;
}

export function statuses(root: string, n: number): StatusRecord[] {
  return Array.from({ length: n }, (_, i) => readStatusOf(path.join(root, 'runs', String(i + 1))));
}

/**
 * A fake application: appends "<event> <run id> <epoch ms> <CUDA_VISIBLE_DEVICES> <cores>" lines
 * to a ledger (O_APPEND, one write per line, so lines from parallel runs never interleave), then
 * does what the sample-independent body says.
 */
export function ledgerApp(dir: string, name: string, body = ''): string {
  return writeScript(
    path.join(dir, name),
    `#!/bin/sh
LEDGER="$1"; shift
now() { date +%s%3N; }
echo "start $THEMIS_RUN_ID $(now) \${CUDA_VISIBLE_DEVICES:--} $THEMIS_STEP $$" >> "$LEDGER"
${body}
rc=$?
echo "end $THEMIS_RUN_ID $(now) \${CUDA_VISIBLE_DEVICES:--} $THEMIS_STEP $$" >> "$LEDGER"
exit $rc
`,
  );
}

export interface LedgerEvent {
  kind: string;
  id: number;
  at: number;
  gpus: string;
  step: number;
  pid: number;
}

export function readLedger(file: string): LedgerEvent[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [kind, id, at, gpus, step, pid] = l.split(' ');
      return { kind: kind!, id: Number(id), at: Number(at), gpus: gpus!, step: Number(step), pid: Number(pid) };
    });
}

/** Start the built themis-pack as a child (not waited for). */
export function startPack(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }> } {
  const child = spawn(process.execPath, [PACK_BIN, ...args], { env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', (d) => (stdout += d));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stderr, stdout })),
  );
  return { child, done };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Is any process with this pid alive (zombies count as gone)? */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Check that at no instant the intervals use more than `cap` of something (e.g. cores). */
export function maxOverlap(intervals: { start: number; end: number; weight: number }[]): number {
  const ev: [number, number][] = [];
  for (const i of intervals) {
    ev.push([i.start, i.weight]);
    ev.push([i.end, -i.weight]);
  }
  // Ends before starts at the same instant: a core freed at t can be reused at t.
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, w] of ev) {
    cur += w;
    max = Math.max(max, cur);
  }
  return max;
}

/** Live processes whose process group is `pgid` (a step and anything it started). */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields after the command: state (3), ppid (4), pgrp (5).
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}
