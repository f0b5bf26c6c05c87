import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { settleOrphan } from '../../src/pack/orphan.js';
import { hostName, isProcessAlive, pidStartTime } from '../../src/store/proc.js';
import type { StatusRecord } from '../../src/store/records.js';
import { appendJournal } from '../helpers/journal.js';
import { makeEnsemble, readStatusOf } from './helpers.js';

const DEAD = 'vm-1-dead01';
const KEY = '1:0:0:1';

/** Run 1 `running` under packer DEAD, launch KEY. */
function orphanedRun() {
  const e = makeEnsemble([{ steps: [{ args: ['/bin/sleep', '30'] }] }]);
  const status: StatusRecord = { ...readStatusOf(e.runDir(1)), status: 'running', launch: { packer: DEAD, key: KEY } };
  return { e, status };
}

const exitRecord = (extra: object) => ({
  format: 1,
  runId: 1,
  step: 0,
  attempt: 0,
  code: null,
  signal: null,
  stoppedBy: null,
  startedAt: new Date().toISOString(),
  endedAt: new Date().toISOString(),
  host: hostName(),
  pid: 1,
  ...extra,
});

describe('settling an orphaned step', () => {
  it('a step still running here is stopped first; the exit its live launcher then records is an interruption, not a failure', async () => {
    const { e, status } = orphanedRun();
    // The orphan: a step in its own process group, whose launcher (this test process) is alive
    // and journals the exit as a launcher does, with no reason of its own (stoppedBy null).
    const step = spawn('/bin/sleep', ['30'], { detached: true, stdio: 'ignore' });
    const pid = step.pid!;
    step.on('exit', (code, signal) => appendJournal(e.setupDir, DEAD, 'E', KEY, exitRecord({ code, signal, pid })));
    appendJournal(e.setupDir, DEAD, 'S', KEY, {
      format: 1,
      runId: 1,
      step: 0,
      attempt: 0,
      host: hostName(),
      pid,
      pgid: pid,
      pidStart: pidStartTime(pid),
      startedAt: new Date().toISOString(),
      launcherPid: process.pid,
    });
    const o = await settleOrphan(e.setupDir, e.runDir(1), status, 2000);
    expect(isProcessAlive(pid, null)).toBe(false);
    expect(o.note).toMatch(/stopped the orphaned step/);
    expect(o.exit).toMatchObject({ signal: 'SIGTERM', stoppedBy: 'interrupt' });
  });

  it("an exit recorded before anyone stepped in is the step's own: kept as it was", async () => {
    const { e, status } = orphanedRun();
    appendJournal(e.setupDir, DEAD, 'S', KEY, {
      format: 1,
      runId: 1,
      step: 0,
      attempt: 0,
      host: hostName(),
      pid: 999_999,
      pgid: 999_999,
      pidStart: null,
      startedAt: new Date().toISOString(),
      launcherPid: 999_998,
    });
    appendJournal(e.setupDir, DEAD, 'E', KEY, exitRecord({ signal: 'SIGTERM', pid: 999_999 }));
    const o = await settleOrphan(e.setupDir, e.runDir(1), status, 2000);
    expect(o.exit).toMatchObject({ signal: 'SIGTERM', stoppedBy: null });
    expect(o.note).toMatch(/exit was recorded/);
  });
});
