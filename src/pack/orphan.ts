import { readJsonSync } from '../store/atomic.js';
import { runPaths } from '../store/layout.js';
import { hostName, isProcessAlive } from '../store/proc.js';
import type { StatusRecord } from '../store/records.js';
import type { ExitRecord } from './launcher-protocol.js';

interface PidRecord {
  host: string;
  pid: number;
  pgid: number;
  pidStart: string | null;
  launcherPid?: number;
  step: number;
  attempt: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitGone(pid: number, start: string | null, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (isProcessAlive(pid, start)) {
    if (Date.now() >= until) return false;
    await sleep(50);
  }
  return true;
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* gone */
  }
}

export interface OrphanOutcome {
  /** How the orphan's step ended, when its launcher recorded it. */
  exit: ExitRecord | null;
  /** What we did, for the run's history. */
  note: string;
}

/**
 * Settle a run whose packer died while it was `running` (we now hold its claim). If the step's
 * exit was recorded, use it: the step is not run again. Otherwise the step may still be running
 * on this host: stop its process group (TERM, then KILL after the grace period) before anyone
 * retries it, then look once more for an exit record its launcher may have written meanwhile.
 */
export async function settleOrphan(dir: string, status: StatusRecord, graceMs: number): Promise<OrphanOutcome> {
  const p = runPaths(dir);
  const exitFile = p.exitFile(status.step, status.attempt);
  const recorded = readExit(exitFile);
  if (recorded) return { exit: recorded, note: `step ${status.step} had ended (${recorded.code ?? recorded.signal}); its exit was recorded` };
  let pid: PidRecord | null = null;
  try {
    pid = readJsonSync<PidRecord>(p.pidFile);
  } catch {
    /* torn by a launcher killed mid-write: treat as unknown */
  }
  let note = `no exit recorded for step ${status.step} attempt ${status.attempt}`;
  if (pid && pid.step === status.step && pid.attempt === status.attempt) {
    if (pid.host === hostName()) {
      if (isProcessAlive(pid.pid, pid.pidStart)) {
        signalGroup(pid.pgid, 'SIGTERM');
        if (!(await waitGone(pid.pid, pid.pidStart, graceMs))) {
          signalGroup(pid.pgid, 'SIGKILL');
          await waitGone(pid.pid, pid.pidStart, 5000);
        }
        note = `stopped the orphaned step (pid ${pid.pid}) left by a dead packer`;
      }
      // Its launcher, if still alive, writes the exit record right after the step ends.
      if (pid.launcherPid && isProcessAlive(pid.launcherPid, null)) {
        const until = Date.now() + 2000;
        while (Date.now() < until && !readExit(exitFile)) await sleep(50);
      }
      const late = readExit(exitFile);
      if (late) return { exit: late, note: `${note}; step ${status.step} exit recorded` };
    } else {
      note += `; its step ran on ${pid.host} (pid ${pid.pid}), past the lease: presumed gone`;
    }
  }
  return { exit: null, note };
}

function readExit(file: string): ExitRecord | null {
  try {
    return readJsonSync<ExitRecord>(file);
  } catch {
    return null;
  }
}
