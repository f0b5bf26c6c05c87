import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mayBeJobWideStop } from '../../src/pack/lifecycle.js';
import { STOP_SIGNALS, STOP_SIGNAL_TABLE, signalExitCode } from '../../src/pack/stop-signals.js';
import { PROJECT_ROOT, writeScript } from '../helpers/cli.js';
import { stepPid } from '../helpers/journal.js';
import { alive, groupMembers, makeEnsemble, readStatusOf, startPack, statuses, waitFor } from './helpers.js';

const FAST = ['--heartbeat', '0.2', '--grace', '0.5'];

describe('the stop-signal table', () => {
  it('is SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGXCPU, SIGHUP, and the README lists the same rows in the same order', () => {
    expect(STOP_SIGNALS).toEqual(['SIGTERM', 'SIGINT', 'SIGUSR1', 'SIGUSR2', 'SIGXCPU', 'SIGHUP']);
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('<!-- stop-signals -->'), readme.indexOf('<!-- /stop-signals -->'));
    const rows = [...section.matchAll(/^\| `(SIG[A-Z0-9]+)` \| (\d+) \| (.*) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
    expect(rows).toEqual(STOP_SIGNAL_TABLE.map((r) => [r.signal, signalExitCode(r.signal), r.sentBy]));
  });

  it('a step that died of any of them (or of the SIGKILL after them) may be the job-wide stop, by signal or by its shell exit code', () => {
    for (const sig of [...STOP_SIGNALS, 'SIGKILL']) {
      expect(mayBeJobWideStop({ code: null, signal: sig }), sig).toBe(true);
      expect(mayBeJobWideStop({ code: signalExitCode(sig), signal: null }), `${sig} as exit ${signalExitCode(sig)}`).toBe(true);
    }
    expect(mayBeJobWideStop({ code: null, signal: 'SIGSEGV' })).toBe(false);
    expect(mayBeJobWideStop({ code: 139, signal: null })).toBe(false);
  });
});

describe('every stop signal stops a packer the same way (real processes)', () => {
  for (const sig of STOP_SIGNALS) {
    const code = signalExitCode(sig);
    it(`${sig}: steps stopped, none left running, every interrupted run back in queued at its step with no restart used, claims released, exit ${code}`, async () => {
      const e = makeEnsemble([]);
      // Ignores SIGTERM, and so does the sleep it starts: only the SIGKILL after --grace ends them.
      const stubborn = writeScript(path.join(e.root, 'stubborn.sh'), "trap '' TERM; sleep 30 & wait; sleep 30");
      const e2 = makeEnsemble([{ steps: [{ args: ['/bin/true'] }, { args: ['/bin/sleep', '30'] }] }, { steps: [{ args: [stubborn] }] }, { steps: [{ args: ['/bin/sleep', '30'] }] }], {
        root: e.root,
        maxRestarts: 1,
      });
      const p = startPack(['--setup-dir', e2.setupDir, '--cores', '3', ...FAST]);
      const runDirs = [1, 2, 3].map((i) => e2.runDir(i));
      await waitFor(() => readStatusOf(e2.runDir(1)).step === 1 && runDirs.every((d) => stepPid(d) !== null), 10_000, 'all runs running');
      const pids = runDirs.map((d) => stepPid(d)!);
      p.child.kill(sig);
      const r = await p.done;
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(`received ${sig}`);
      for (const pid of pids) expect(alive(pid)).toBe(false);
      for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
      expect(statuses(e2.root, 3).map((s) => [s.status, s.step, s.restarts])).toEqual([
        ['queued', 1, 0],
        ['queued', 0, 0],
        ['queued', 0, 0],
      ]);
      for (const d of runDirs) expect(fs.existsSync(path.join(d, '.themis', 'claim'))).toBe(false);
    }, 30_000);
  }
});
