import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupPaths } from '../store/layout.js';
import { PACK_EXIT } from './exit-policy.js';
import type { PackerOptions } from './run-packer.js';

/** The command line that runs a packer with these options (what batch scripts and `themis run` start). */
export function packerArgs(opts: PackerOptions): string[] {
  const a = ['--setup-dir', path.resolve(opts.setupDir)];
  const num = (flag: string, v: number | undefined | null) => {
    if (v !== undefined && v !== null) a.push(flag, String(v));
  };
  num('--allocation', opts.allocation);
  if (opts.nodes !== undefined) a.push('--nodes', String(opts.nodes));
  num('--cores', opts.cores);
  num('--gpus', opts.gpus);
  num('--lease', opts.leaseSeconds);
  num('--heartbeat', opts.heartbeatSeconds);
  num('--max-concurrency', opts.maxConcurrency);
  if (opts.launcher) a.push('--launcher', opts.launcher);
  num('--walltime', opts.walltime);
  num('--early-stop', opts.earlyStop);
  num('--repeats', opts.repeats);
  if (opts.script) a.push('--script', opts.script);
  if (opts.steal === false) a.push('--no-steal');
  if (opts.bind) a.push('--bind');
  num('--grace', opts.graceSeconds);
  num('--rescan', opts.rescanSeconds);
  return a;
}

/** dist/bin/themis-pack.js next to this module. */
export function packBinary(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const built = path.resolve(here, '../bin/themis-pack.js');
  return fs.existsSync(built) ? built : path.resolve(here, '../../dist/bin/themis-pack.js');
}

/** Start a packer as a child process; its output goes to `logs/packer-<stamp>.log`. */
export function spawnPacker(opts: PackerOptions, how: { detach: boolean }): { pid: number; logFile: string; done: Promise<number> } {
  const p = setupPaths(opts.setupDir);
  fs.mkdirSync(p.logsDir, { recursive: true });
  const logFile = p.packerLog(`${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [packBinary(), ...packerArgs(opts)], {
    stdio: ['ignore', fd, fd],
    // Detached: its own session, so the terminal's Ctrl-C and hang-up do not reach it.
    detached: how.detach,
    env: opts.env ?? process.env,
  });
  fs.closeSync(fd);
  const done = new Promise<number>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? 128 + (sig ? os.constants.signals[sig] : 0)));
    child.once('error', () => resolve(PACK_EXIT.error));
  });
  if (how.detach) child.unref();
  return { pid: child.pid ?? 0, logFile, done };
}
