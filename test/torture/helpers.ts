import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RUN_STATUSES, isCompleted, type RunStatus } from '../../src/model/status.js';
import { runPaths, setupPaths } from '../../src/store/layout.js';
import type { EnsembleRecord, StatusRecord } from '../../src/store/records.js';
import { readIndex } from '../../src/store/run-index.js';
import { FIXTURES, PACK_BIN, THEMIS_BIN, makeTempDir } from '../helpers/cli.js';

/**
 * Shared machinery of the torture suite: ensembles of a ledger-writing app, packers started and
 * killed, the consistency check every trial ends with, and the figures the suite reports.
 */

export const LONG = process.env.THEMIS_TORTURE_LONG === '1';
export const TORTURE_FIXTURES = path.join(FIXTURES, 'torture');
/** The app: `app.sh LEDGER SECONDS` appends "start ID PID" and "end ID PID" around a sleep. */
export const LEDGER_APP = path.join(TORTURE_FIXTURES, 'ledger-app.sh');

/** A small seeded PRNG (mulberry32): trials are reproducible from THEMIS_TORTURE_SEED. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export const SEED = Number(process.env.THEMIS_TORTURE_SEED ?? 20261125);

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

export interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/** `themis …` as a subprocess, synchronously. */
export function themis(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Cli {
  const r = spawnSync(process.execPath, [THEMIS_BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env }, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** `themis …` as a subprocess, asynchronously (for commands raced against packers). */
export function themisAsync(args: string[], cwd: string): Promise<Cli> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [THEMIS_BIN, ...args], { cwd, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export interface Ensemble {
  root: string;
  setupDir: string;
  ledger: string;
  n: number;
  runDir: (id: number) => string;
}

/** `themis gen` of n runs of the ledger app, each sleeping `seconds`. */
export function genLedgerEnsemble(n: number, seconds: number, opts: { root?: string; extra?: string[] } = {}): Ensemble {
  const root = opts.root ?? makeTempDir('themis-torture-');
  const ledger = path.join(root, 'ledger');
  const samples = path.join(root, 'samples.csv');
  fs.writeFileSync(samples, ['x', ...Array.from({ length: n }, (_, i) => String(i + 1))].join('\n') + '\n');
  const r = themis(['gen', LEDGER_APP, samples, '--no-batch-script', '-a', `${ledger} ${seconds}`, '--scheduler', 'local', ...(opts.extra ?? [])], root);
  if (r.code !== 0) throw new Error(`gen failed (${r.code}): ${r.stderr}`);
  const setupDir = path.join(root, '.themis_setup');
  return { root, setupDir, ledger, n, runDir: (id) => path.join(root, 'runs', String(id)) };
}

export interface Packer {
  child: ChildProcess;
  /** The themis-pack process (under strace, not the same as child.pid). */
  pid: () => number | null;
  done: Promise<{ code: number | null; signal: string | null; stderr: string }>;
}

/** Fast packer flags: lease 1 s, heartbeat 0.2 s. */
export const FAST = ['--cores', '4', '--heartbeat', '0.2', '--lease', '1', '--grace', '1', '--rescan', '1'];

/**
 * Start themis-pack. `strace` delays every rename (the commit of each atomic write) and/or
 * mkdir by `delayUs`, which holds the packer inside "writing a status file" and "breaking a
 * claim" long enough for a kill to land there.
 */
export function startPacker(setupDir: string, opts: { args?: string[]; env?: NodeJS.ProcessEnv; shell?: string; strace?: { delayUs: number; calls: string } } = {}): Packer {
  const packArgv = [process.execPath, PACK_BIN, '--setup-dir', setupDir, ...(opts.args ?? FAST)];
  let argv = packArgv;
  if (opts.strace) argv = ['strace', '-f', '-qq', '-o', '/dev/null', '-e', `trace=${opts.strace.calls}`, '-e', `inject=${opts.strace.calls}:delay_enter=${opts.strace.delayUs}`, ...packArgv];
  if (opts.shell) argv = ['sh', '-c', `${opts.shell}; exec "$@"`, 'sh', ...argv];
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, CI: 'true', ...(opts.env ?? {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => {
      // Kept beside the ensemble for post-mortems (the launcher writes here too).
      try {
        fs.appendFileSync(path.join(path.dirname(path.resolve(setupDir)), 'packers.err'), `--- packer ${child.pid} exit ${code ?? signal}\n${stderr}`);
      } catch {
        /* ensemble removed */
      }
      resolve({ code, signal, stderr });
    }),
  );
  const pid = (): number | null => {
    if (!opts.strace) return child.pid ?? null;
    try {
      const kids = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      // Only ever a themis-pack process: never signal a pid we are not sure of.
      const found = kids.find(isPacker);
      if (found !== undefined) return found;
      // Fallback: the heartbeat files of live packers, whose parent is our strace.
      const dir = setupPaths(setupDir).packersDir;
      for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
        try {
          const hb = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { pid: number };
          const stat = fs.readFileSync(`/proc/${hb.pid}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (ppid === child.pid && isPacker(hb.pid)) return hb.pid;
        } catch {
          /* gone or torn */
        }
      }
      return null;
    } catch {
      return null;
    }
  };
  return { child, pid, done };
}

/** Is `pid` a running themis-pack (checked before any kill by pid)? */
export function isPacker(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes(PACK_BIN);
  } catch {
    return false;
  }
}

/** kill -9 the packer (and its strace, which then detaches from the launchers). */
export async function killPacker(p: Packer): Promise<void> {
  const pid = p.pid();
  if (pid !== null) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (p.child.pid !== undefined && p.child.pid !== pid) {
    try {
      process.kill(p.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await p.done;
}

export interface LedgerCounts {
  starts: Map<number, number>;
  ends: Map<number, number>;
  pids: number[];
}

export function readLedger(file: string): LedgerCounts {
  const starts = new Map<number, number>();
  const ends = new Map<number, number>();
  const pids: number[] = [];
  if (!fs.existsSync(file)) return { starts, ends, pids };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [kind, id, pid] = line.split(' ');
    if (kind !== 'start' && kind !== 'end') continue;
    const m = kind === 'start' ? starts : ends;
    m.set(Number(id), (m.get(Number(id)) ?? 0) + 1);
    if (kind === 'start') pids.push(Number(pid));
  }
  return { starts, ends, pids };
}

/** Is a process alive (zombies count as gone)? */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes whose environment places them in a run under `root` (steps, launchers). */
export function processesUnder(root: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env: string;
    try {
      env = fs.readFileSync(`/proc/${name}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (env.split('\0').some((kv) => (kv.startsWith('THEMIS_RUN_DIR=') || kv.startsWith('THEMIS_SETUP_DIR=')) && kv.slice(kv.indexOf('=') + 1).startsWith(root + '/')) && alive(Number(name))) {
      found.push(Number(name));
    }
  }
  return found;
}

export interface Consistency {
  problems: string[];
  counts: Record<RunStatus, number>;
  total: number;
  /** Runs with more than one "end" line in the ledger. */
  completedTwice: number[];
  /** Runs that should have completed (`expectDone`) but did not end successful with one "end". */
  lost: number[];
  /**
   * Completed runs still holding a dead packer's claim (killed after writing the final status,
   * before releasing). Harmless to the run, but nobody else removes it: `themis doctor --repair` does.
   */
  deadClaimsOnCompleted: number[];
}

/**
 * The check every trial ends with: every indexed run in exactly one valid status; no claim held
 * by a dead owner after the lease; no run completed twice in the ledger; no step process left
 * running; with `expectDone`, every run listed there is successful (else it was lost).
 */
export function checkConsistency(setupDir: string, opts: { ledger?: string; leaseMs?: number; expectDone?: number[] } = {}): Consistency {
  const problems: string[] = [];
  const sp = setupPaths(setupDir);
  const ens = JSON.parse(fs.readFileSync(sp.ensemble, 'utf8')) as EnsembleRecord;
  const entries = readIndex(setupDir, ens.root);
  const deadClaimsOnCompleted: number[] = [];
  const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
  const statusOf = new Map<number, RunStatus>();
  const seen = new Set<number>();
  const leaseMs = opts.leaseMs ?? 1000;
  for (const e of entries) {
    if (seen.has(e.id)) problems.push(`run ${e.id} is indexed twice`);
    seen.add(e.id);
    const rp = runPaths(e.dir);
    let st: StatusRecord | null = null;
    try {
      st = JSON.parse(fs.readFileSync(rp.status, 'utf8')) as StatusRecord;
    } catch (err) {
      problems.push(`run ${e.id}: ${rp.status} unreadable: ${(err as Error).message}`);
      continue;
    }
    if (!RUN_STATUSES.includes(st.status) || st.id !== e.id) {
      problems.push(`run ${e.id}: status ${JSON.stringify(st.status)} / id ${st.id} in ${rp.status}`);
      continue;
    }
    counts[st.status]++;
    statusOf.set(e.id, st.status);
    if (fs.existsSync(rp.claim)) {
      let owner: { pid?: number } | null = null;
      try {
        owner = JSON.parse(fs.readFileSync(rp.claimOwner, 'utf8')) as { pid?: number };
      } catch {
        /* no owner.json */
      }
      const age = Date.now() - fs.statSync(fs.existsSync(rp.claimOwner) ? rp.claimOwner : rp.claim).mtimeMs;
      const dead = !owner || typeof owner.pid !== 'number' || !alive(owner.pid);
      if (dead && age > leaseMs && isCompleted(st.status)) deadClaimsOnCompleted.push(e.id);
      else if (dead && age > leaseMs) problems.push(`run ${e.id}: claim held by a dead owner (pid ${owner?.pid ?? '?'}), ${age} ms after its last heartbeat`);
    }
    if (st.status === 'running') problems.push(`run ${e.id}: still \`running\` after every packer stopped`);
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (total !== entries.length) problems.push(`${entries.length} runs indexed but ${total} have exactly one valid status`);
  const completedTwice: number[] = [];
  const lost: number[] = [];
  if (opts.ledger) {
    const l = readLedger(opts.ledger);
    for (const [id, k] of l.ends) if (k > 1) completedTwice.push(id);
    if (completedTwice.length) {
      const hist = (id: number) => {
        const e = entries.find((x) => x.id === id);
        try {
          const st = JSON.parse(fs.readFileSync(runPaths(e!.dir).status, 'utf8')) as StatusRecord;
          return st.history.map((h) => `${h.at.slice(17, 23)} ${h.event}${h.detail ? ` (${h.detail})` : ''}`).join(' | ');
        } catch {
          return '?';
        }
      };
      problems.push(`runs completed twice (ledger): ${completedTwice.map((id) => `${id}: ${hist(id)}`).join('\n')}`);
    }
    const left = l.pids.filter(alive);
    if (left.length) problems.push(`step processes still running: ${left.join(', ')}`);
    for (const id of opts.expectDone ?? []) if (statusOf.get(id) !== 'successful' || l.ends.get(id) !== 1) lost.push(id);
    if (lost.length) problems.push(`runs lost (not successful with exactly one end): ${lost.map((id) => `${id}:${statusOf.get(id)}/${l.ends.get(id) ?? 0}`).join(', ')}`);
  }
  const stray = processesUnder(ens.root);
  if (stray.length) problems.push(`processes still running in run directories: ${stray.join(', ')}`);
  return { problems, counts, total, completedTwice, lost, deadClaimsOnCompleted };
}

// ---------------------------------------------------------------------------------------------
// Figures: each test file counts what it did; afterAll merges every file's figures of this vitest
// session and writes test/torture/last-report.json.

export interface Figures {
  trials: number;
  faults: Record<string, number>;
  badInputs: number;
  badInputsByKind: Record<string, number>;
  runsChecked: number;
  runsLost: number;
  runsCompletedTwice: number;
  /** Kills that provably landed inside a window (a temp file or mutex of the killed packer left behind). */
  landed: Record<string, number>;
  /** Known, reported bugs the suite worked around (each is described in the README and report). */
  knownBugs: Record<string, number>;
  notes: string[];
}

export function newFigures(): Figures {
  return { trials: 0, faults: {}, badInputs: 0, badInputsByKind: {}, runsChecked: 0, runsLost: 0, runsCompletedTwice: 0, landed: {}, knownBugs: {}, notes: [] };
}

export const bump = (m: Record<string, number>, k: string, by = 1) => (m[k] = (m[k] ?? 0) + by);

/** Count one consistency-checked trial. */
export function recordTrial(f: Figures, c: Consistency): void {
  f.trials++;
  f.runsChecked += c.total;
  f.runsLost += c.lost.length;
  f.runsCompletedTwice += c.completedTwice.length;
}

const SESSION_DIR = path.join(os.tmpdir(), 'themis-torture-figures', String(process.ppid));
export const REPORT_FILE = path.join(path.dirname(new URL(import.meta.url).pathname), 'last-report.json');

function merge(all: Figures[]): Figures {
  const t = newFigures();
  for (const f of all) {
    t.trials += f.trials;
    t.badInputs += f.badInputs;
    t.runsChecked += f.runsChecked;
    t.runsLost += f.runsLost;
    t.runsCompletedTwice += f.runsCompletedTwice;
    for (const [k, v] of Object.entries(f.faults)) bump(t.faults, k, v);
    for (const [k, v] of Object.entries(f.badInputsByKind)) bump(t.badInputsByKind, k, v);
    for (const [k, v] of Object.entries(f.landed)) bump(t.landed, k, v);
    for (const [k, v] of Object.entries(f.knownBugs ?? {})) bump(t.knownBugs, k, v);
    t.notes.push(...f.notes);
  }
  return t;
}

/** Save this file's figures, then write and print the totals of every file finished so far. */
export function flushFigures(file: string, f: Figures): void {
  fs.mkdirSync(SESSION_DIR, { recursive: true });
  fs.writeFileSync(path.join(SESSION_DIR, `${file}.json`), JSON.stringify(f));
  const parts = fs
    .readdirSync(SESSION_DIR)
    .filter((n) => n.endsWith('.json'))
    .sort();
  const total = merge(parts.map((n) => JSON.parse(fs.readFileSync(path.join(SESSION_DIR, n), 'utf8')) as Figures));
  const faultsInjected = Object.values(total.faults).reduce((a, b) => a + b, 0);
  const report = { at: new Date().toISOString(), mode: LONG ? 'long' : 'default', seed: SEED, files: parts.map((n) => n.replace(/\.json$/, '')), faultsInjected, ...total };
  fs.writeFileSync(REPORT_FILE, JSON.stringify(report, null, 1) + '\n');
  const faults = Object.entries(total.faults)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(
    `torture (${parts.length} files so far, ${report.mode}, seed ${SEED}): trials run ${total.trials}; faults injected ${faultsInjected}: ${faults || 'none'}; ` +
      `bad inputs tried ${total.badInputs}; runs checked ${total.runsChecked}; runs lost: ${total.runsLost}; runs completed twice: ${total.runsCompletedTwice}` +
      (Object.keys(total.knownBugs).length
        ? `\n  known bugs met (reported, worked around): ${Object.entries(total.knownBugs)
            .map(([k, v]) => `${k} x${v}`)
            .join('; ')}`
        : '') +
      (total.notes.length ? `\n  notes: ${total.notes.join('; ')}` : ''),
  );
}

/** Every path under `dir` (files and directories), recursively; a directory removed while it is walked is skipped. */
export function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return; // removed while we looked (a claim released)
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}
