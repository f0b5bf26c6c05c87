/**
 * Vitest helpers for the real-Slurm suite: is a test cluster reachable (started by
 * `test/slurm/cluster.sh`, exported by `.ci/run` or `source PREFIX/env.sh`), plain `sbatch`,
 * waiting on `squeue`, and finding processes by a marker variable in /proc.
 *
 * Found on this cluster (Slurm 22.05, see cluster.sh): a step started with `srun --gpus-per-task=1`
 * sees *all* the job's GPUs on its node and blocks its neighbours ("Requested nodes are busy");
 * `srun --gres=gpu:1` (or `--gpus-per-node=1`) gives each step its own GPU.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Where the test cluster lives (`THEMIS_SLURM_PREFIX`, or derived from SLURM_CONF=PREFIX/etc/slurm.conf). */
export function slurmPrefix(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.THEMIS_SLURM_PREFIX) return env.THEMIS_SLURM_PREFIX;
  if (env.SLURM_CONF) return path.dirname(path.dirname(env.SLURM_CONF));
  return null;
}

/** CI sets THEMIS_SLURM_REQUIRED=1: there the suite must run, never skip. */
export const slurmRequired = process.env.THEMIS_SLURM_REQUIRED === '1';

/** The clients' environment for the cluster under `prefix` (its SLURM_CONF), for a second cluster beside SLURM_CONF's. */
export function clusterEnv(prefix: string): NodeJS.ProcessEnv {
  return { ...process.env, SLURM_CONF: path.join(prefix, 'etc', 'slurm.conf'), THEMIS_SLURM_PREFIX: prefix };
}

export function sh(argv: string[], timeoutMs = 10_000, env: NodeJS.ProcessEnv = process.env): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, env });
  const err = r.error ? String(r.error.message) : '';
  return { code: r.status ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') + err };
}

/**
 * Probe the cluster once: SLURM_CONF set (or derivable from THEMIS_SLURM_PREFIX) and `sinfo`
 * answering with usable nodes. Returns why not, for the skip message.
 */
export function probeSlurm(): { ok: true; nodes: string } | { ok: false; why: string } {
  if (!process.env.SLURM_CONF && process.env.THEMIS_SLURM_PREFIX) {
    process.env.SLURM_CONF = path.join(process.env.THEMIS_SLURM_PREFIX, 'etc', 'slurm.conf');
  }
  if (!process.env.SLURM_CONF) {
    return { ok: false, why: 'SLURM_CONF is not set (start one: bash test/slurm/cluster.sh start /tmp/slurm && source /tmp/slurm/env.sh)' };
  }
  if (!fs.existsSync(process.env.SLURM_CONF)) return { ok: false, why: `SLURM_CONF=${process.env.SLURM_CONF} does not exist` };
  const r = sh(['sinfo', '-h', '-N', '-o', '%N %T'], 5000);
  if (r.code !== 0) return { ok: false, why: `sinfo failed (${r.code}): ${r.stderr.trim()}` };
  const usable = r.stdout.split('\n').filter((l) => /\s(idle|mixed|allocated|completing)\S*$/.test(l.trim()));
  if (usable.length < 2) return { ok: false, why: `the e2e tests need 2 usable nodes; sinfo says: ${r.stdout.trim() || '(nothing)'}` };
  return { ok: true, nodes: usable.join(', ') };
}

/**
 * Probe the cluster under `prefix` (not SLURM_CONF's): configured, `sinfo` answering with at least
 * `nodes` usable nodes, and each `conf` line (`MaxStepCount=25`) in its slurm.conf, so a suite
 * never runs against a cluster of another shape. Returns why not, for the skip message.
 */
export function probeCluster(prefix: string | undefined, want: { nodes: number; conf: string[]; start: string }): { ok: true; env: NodeJS.ProcessEnv } | { ok: false; why: string } {
  if (!prefix) return { ok: false, why: `no cluster prefix given (start one: ${want.start})` };
  const env = clusterEnv(prefix);
  let conf: string;
  try {
    conf = fs.readFileSync(env.SLURM_CONF!, 'utf8');
  } catch {
    return { ok: false, why: `${env.SLURM_CONF} does not exist (start one: ${want.start})` };
  }
  const lines = new Set(conf.split('\n').map((l) => l.trim()));
  const missing = want.conf.filter((c) => !lines.has(c));
  if (missing.length > 0) return { ok: false, why: `${env.SLURM_CONF} lacks ${missing.join(', ')} (start it as: ${want.start})` };
  const r = sh(['sinfo', '-h', '-N', '-o', '%N %T'], 5000, env);
  if (r.code !== 0) return { ok: false, why: `sinfo failed (${r.code}): ${r.stderr.trim()}` };
  const usable = r.stdout.split('\n').filter((l) => /\s(idle|mixed|allocated|completing)\S*$/.test(l.trim()));
  if (usable.length < want.nodes) return { ok: false, why: `${want.nodes} usable nodes needed; sinfo says: ${r.stdout.trim() || '(nothing)'}` };
  return { ok: true, env };
}

let cached: ReturnType<typeof probeSlurm> | null = null;
/** True when SLURM_CONF points at a running cluster with 2 usable nodes (probed once). */
export function slurmAvailable(): boolean {
  cached ??= probeSlurm();
  return cached.ok;
}
export function slurmUnavailableReason(): string {
  cached ??= probeSlurm();
  return cached.ok ? '' : cached.why;
}

/** Plain `sbatch` of a script (as a user would), with extra environment; returns the job id. */
export function sbatch(script: string, opts: { cwd: string; env?: Record<string, string>; args?: string[] }): string {
  const r = spawnSync('sbatch', ['--parsable', ...(opts.args ?? []), script], {
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  const out = String(r.stdout ?? '').trim();
  if (r.status !== 0 || !/^\d+/.test(out)) {
    throw new Error(`sbatch ${script} failed (exit ${r.status}): ${String(r.stderr ?? '').trim()} ${out}`);
  }
  return out.split(';')[0]!;
}

export function scancel(jobId: string, env: NodeJS.ProcessEnv = process.env): void {
  sh(['scancel', jobId], 10_000, env);
}

/** squeue's %T for a job ('' when squeue no longer knows it). */
export function jobState(jobId: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = sh(['squeue', '-h', '-j', jobId, '-t', 'all', '-o', '%T'], 5000, env);
  return r.code === 0 ? r.stdout.trim() : '';
}

const ACTIVE = new Set(['PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'RESIZING', 'SIGNALING', 'STAGE_OUT']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll squeue every 0.5 s until the job has left the queue (ended); returns its last state. */
export async function waitJobGone(jobId: string, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = jobState(jobId, env);
    if (!ACTIVE.has(st)) return st || 'GONE';
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${st} after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

/** Poll until the job is RUNNING (or has already ended). */
export async function waitJobRunning(jobId: string, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = jobState(jobId, env);
    if (st !== 'PENDING' && st !== 'CONFIGURING') return st;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${st} after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

/** Poll a condition every 0.5 s. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(500);
  }
}

/** A job's output file, or '' when it does not exist (yet). */
export function readJobOutput(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Live (non-zombie) processes whose environment holds NAME=value, with their command lines. */
export function markerProcesses(name: string, value: string): { pid: number; cmd: string }[] {
  return markerProcessesWithEnv(name, value).map(({ pid, cmd }) => ({ pid, cmd }));
}

/** As markerProcesses, with each one's parent pid and environment (NAME -> value). */
export function markerProcessesWithEnv(name: string, value: string): { pid: number; ppid: number; cmd: string; env: Map<string, string> }[] {
  const want = `${name}=${value}`;
  const out: { pid: number; ppid: number; cmd: string; env: Map<string, string> }[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const status = fs.readFileSync(`/proc/${e}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue; // zombies hold nothing (PID 1 here does not reap)
      const env = fs.readFileSync(`/proc/${e}/environ`, 'latin1').split('\0');
      if (!env.includes(want)) continue;
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0').join(' ').trim();
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const vars = new Map<string, string>();
      for (const kv of env) {
        const i = kv.indexOf('=');
        if (i > 0) vars.set(kv.slice(0, i), kv.slice(i + 1));
      }
      out.push({ pid: Number(e), ppid, cmd, env: vars });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}
