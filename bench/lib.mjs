// Shared helpers of the bench suite: timing child processes while sampling their CPU and memory
// from /proc, medians, machine facts, tool checks and ensemble generation.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const THEMIS = path.join(ROOT, 'dist/bin/themis.js');
export const THEMIS_PACK = path.join(ROOT, 'dist/bin/themis-pack.js');
const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux x86-64

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Cores, load average, memory, versions: recorded with every result. */
export function machine() {
  return {
    cores: os.cpus().length,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    memMB: Math.round(os.totalmem() / 2 ** 20),
    freeMB: Math.round(os.freemem() / 2 ** 20),
    node: process.version,
    kernel: os.release(),
    at: new Date().toISOString(),
  };
}

export function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** GNU parallel from Debian when missing (root + apt only); returns null or why it is unavailable. */
export function ensureParallel({ install }) {
  if (have('parallel')) return null;
  if (!install) return 'GNU parallel is not installed (the full run installs it: apt-get install -y parallel)';
  if (process.getuid?.() !== 0 || !have('apt-get')) return 'GNU parallel is not installed and apt-get as root is not available';
  const r = spawnSync('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq parallel || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq parallel)'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (have('parallel')) return null;
  return `apt-get install parallel failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-2).join(' ')}`;
}

/**
 * strace for the metadata rows (issue 14): installed with apt-get when missing and we are root with
 * apt; returns null, or why it is unavailable (the rows are then reported as skipped).
 */
export function ensureStrace() {
  if (have('strace')) return null;
  if (process.getuid?.() !== 0 || !have('apt-get')) return 'strace not installed (and apt-get as root is not available to install it)';
  spawnSync('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace)'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return have('strace') ? null : 'strace not installed (apt-get install -y strace failed)';
}

/** utime+stime (ms), VmHWM and VmRSS (MB) of one pid from /proc; null when it is gone. */
export function procSample(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuMs = (Number(f[11]) + Number(f[12])) * TICK_MS;
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const hwm = /VmHWM:\s+(\d+)/.exec(status);
    const rss = /VmRSS:\s+(\d+)/.exec(status);
    return { cpuMs, hwmMB: hwm ? Number(hwm[1]) / 1024 : 0, rssMB: rss ? Number(rss[1]) / 1024 : 0 };
  } catch {
    return null;
  }
}

function childPids(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function commOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return null;
  }
}

/**
 * Start a command and wait for it, sampling every `intervalMs` the CPU time and peak RSS of the
 * process itself and of its direct children (the packer's launcher: `themis-spawner` or a Node
 * child), not of the steps those children start (grandchildren). Resolves {seconds, code, signal, stdout, stderr, self, helpers, samples}.
 * `onSample(elapsedMs, sample, child)` may act on the process (e.g. send SIGTERM).
 */
export function track(argv, { cwd, env, intervalMs = 25, onSample } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { cwd, env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const self = { cpuMs: 0, hwmMB: 0 };
    const helpers = new Map(); // pid -> {cpuMs, hwmMB}
    const samples = [];
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
      const s = procSample(child.pid);
      if (s) {
        self.cpuMs = Math.max(self.cpuMs, s.cpuMs);
        self.hwmMB = Math.max(self.hwmMB, s.hwmMB);
        for (const c of childPids(child.pid)) {
          const cs = procSample(c);
          if (!cs) continue;
          const h = helpers.get(c) ?? { cpuMs: 0, hwmMB: 0, comm: commOf(c) };
          h.cpuMs = Math.max(h.cpuMs, cs.cpuMs);
          h.hwmMB = Math.max(h.hwmMB, cs.hwmMB);
          helpers.set(c, h);
        }
        const helperCpu = [...helpers.values()].reduce((a, h) => a + h.cpuMs, 0);
        const point = { t: elapsed, cpuMs: self.cpuMs + helperCpu, selfCpuMs: self.cpuMs, rssMB: s.rssMB };
        samples.push(point);
        onSample?.(elapsed, point, child);
      }
    };
    const timer = setInterval(tick, intervalMs);
    tick();
    child.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const hv = [...helpers.values()];
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({
        seconds,
        code,
        signal,
        stdout,
        stderr,
        self,
        helpers: { cpuMs: hv.reduce((a, h) => a + h.cpuMs, 0), hwmMB: Math.max(0, ...hv.map((h) => h.hwmMB)), names: [...new Set(hv.map((h) => h.comm))] },
        samples,
      });
    });
  });
}

/** Run a command to completion (sync): wall seconds; with /usr/bin/time also peak RSS and CPU. */
export function timed(argv, { cwd, env, shell = false } = {}) {
  const useTime = fs.existsSync('/usr/bin/time');
  const out = path.join(os.tmpdir(), `themis-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const full = shell ? ['sh', '-c', argv] : argv;
  const cmd = useTime ? ['/usr/bin/time', '-f', '%M %U %S', '-o', out, ...full] : full;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd, encoding: 'utf8', env: { ...process.env, CI: 'true', ...env }, maxBuffer: 256 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let rssMB = null;
  let cpuSeconds = null;
  if (useTime) {
    const m = /(\d+) ([\d.]+) ([\d.]+)\s*$/.exec(fs.readFileSync(out, 'utf8'));
    fs.rmSync(out, { force: true });
    if (m) {
      rssMB = Number(m[1]) / 1024;
      cpuSeconds = Number(m[2]) + Number(m[3]);
    }
  }
  if (r.status !== 0) {
    throw new Error(`failed (exit ${r.status}): ${shell ? argv : argv.join(' ')}\n${(r.stderr ?? '').slice(-2000)}`);
  }
  return { seconds, rssMB, cpuSeconds, stdout: r.stdout };
}

export const rm = (p) => fs.rmSync(p, { recursive: true, force: true });

/** Write a CSV with a header and `n` rows from `row(i)` (1-based), in chunks. */
export function writeCsv(file, header, n, row) {
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, header.join(',') + '\n');
  let chunk = '';
  for (let i = 1; i <= n; i++) {
    chunk += row(i).join(',') + '\n';
    if (chunk.length > 1 << 20) {
      fs.writeSync(fd, chunk);
      chunk = '';
    }
  }
  fs.writeSync(fd, chunk);
  fs.closeSync(fd);
}

/** `themis gen` of an ensemble in `dir` (created); extra args are appended. */
export function genEnsemble(dir, app, samples, extra = []) {
  fs.mkdirSync(dir, { recursive: true });
  return timed([process.execPath, THEMIS, 'gen', app, samples, '--no-batch-script', '--scheduler', 'local', ...extra], { cwd: dir });
}

/**
 * Flush dirty pages before a timed run: a freshly restored copy (cp -a) would otherwise be written
 * back while it is measured, penalising whichever side ran on new files. Called before both sides.
 */
export function settle() {
  spawnSync('sync', [], { stdio: 'ignore', timeout: 120_000 });
}

/** Keep a pristine copy of an ensemble beside it; restore puts it back at the same path (its root is recorded inside). */
export function snapshot(dir) {
  const copy = `${dir}.pristine`;
  rm(copy);
  timed(['cp', '-a', dir, copy]);
  return () => {
    rm(dir);
    timed(['cp', '-a', copy, dir]);
    settle();
  };
}

/** `themis run` in an ensemble dir, tracked; the summary (--json) parsed. */
export async function themisRun(dir, args, opts = {}) {
  const r = await track([process.execPath, THEMIS, 'run', '--json', ...args], { cwd: dir, ...opts });
  let summary = null;
  try {
    summary = JSON.parse(r.stdout);
  } catch {
    /* reported below */
  }
  if (!summary) throw new Error(`themis run in ${dir} printed no summary (exit ${r.code}, ${r.signal}): ${r.stderr.slice(-2000)}`);
  return { ...r, summary };
}

/** Count status files by state (reads every run's .themis/status.json). */
export function countStatuses(runsDir) {
  const counts = {};
  for (const id of fs.readdirSync(runsDir)) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(runsDir, id, '.themis/status.json'), 'utf8'));
      counts[s.status] = (counts[s.status] ?? 0) + 1;
    } catch {
      counts.unreadable = (counts.unreadable ?? 0) + 1;
    }
  }
  return counts;
}

export const round = (x, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? (x ?? null) : Math.round(x * 10 ** d) / 10 ** d);
