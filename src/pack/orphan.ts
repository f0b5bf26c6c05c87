import { stepRecords } from '../store/journal.js';
import { isProcessAlive, samePidSpace } from '../store/proc.js';
import type { StatusRecord } from '../store/records.js';
import type { ExitRecord } from './launcher-protocol.js';

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
 * Settle a run whose packer died while it was `running` (we now hold its claim). The status names
 * the launch (`status.launch`): its start and exit are in the dead packer's journal. If the exit
 * was journaled, use it: the step is not run again. Otherwise the step may still be running on
 * this host: stop its process group (TERM, then KILL after the grace period) before anyone
 * retries it, then look once more for the exit its launcher may have journaled meanwhile.
 */
export async function settleOrphan(setupDir: string, dir: string, status: StatusRecord, graceMs: number): Promise<OrphanOutcome> {
  const records = () => stepRecords(setupDir, dir, status);
  const first = records();
  const recorded = first.exit;
  if (recorded) return { exit: recorded, note: `step ${status.step} had ended (${recorded.code ?? recorded.signal}); its exit was recorded` };
  const pid = first.start;
  let note = `no exit recorded for step ${status.step} attempt ${status.attempt}`;
  if (pid) {
    if (samePidSpace(pid.host, pid.pidNs)) {
      let stopped = false;
      if (isProcessAlive(pid.pid, pid.pidStart)) {
        stopped = true;
        signalGroup(pid.pgid, 'SIGTERM');
        if (!(await waitGone(pid.pid, pid.pidStart, graceMs))) {
          signalGroup(pid.pgid, 'SIGKILL');
          await waitGone(pid.pid, pid.pidStart, 5000);
        }
        note = `stopped the orphaned step (pid ${pid.pid}) left by a dead packer`;
      }
      // Its launcher, if still alive, journals the exit right after the step ends.
      if (pid.launcherPid && isProcessAlive(pid.launcherPid, null)) {
        const until = Date.now() + 2000;
        while (Date.now() < until && !records().exit) await sleep(50);
      }
      let late = records().exit;
      // Our TERM/KILL ended it: an interruption (run again, no restart used), not the step failing.
      if (late && stopped && !(late.code === 0 && late.signal === null) && late.stoppedBy === null) late = { ...late, stoppedBy: 'interrupt' };
      if (late) return { exit: late, note: `${note}; step ${status.step} exit recorded` };
    } else {
      note += `; its step ran on ${pid.host} (pid ${pid.pid}), past the lease: presumed gone`;
    }
  }
  return { exit: null, note };
}
