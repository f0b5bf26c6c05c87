import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/cli.js';
import { runDoctor } from '../../src/store/doctor.js';
import { journaledExits } from '../helpers/journal.js';
import { makeEnsemble, readStatusOf, sleep, startPack, waitFor } from './helpers.js';

/**
 * A step's `running` status is written only once it has run for a moment (RUNNING_WRITE_DELAY_MS).
 * A packer killed inside that moment leaves a `queued` status under a stale claim, and a step that
 * may have run to its end: its successor must find that launch in the dead packer's journal (the
 * launch key names the status version) and settle it, never run it a second time to completion.
 */
describe('the running status written late (real processes)', () => {
  it('a packer killed -9 before its running status was written: the successor settles the step from the journal, it does not run again', async () => {
    const ledger = path.join(makeTempDir('themis-ledger-'), 'ledger');
    // Ends ~0.3 s after it starts: after the kill, before the running status would have been due.
    const step = { args: ['/bin/sh', '-c', `echo start >> ${ledger}; sleep 0.3; echo end >> ${ledger}`], batchScript: false };
    const f = makeEnsemble([{ steps: [step] }]);
    const first = startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']);
    await waitFor(() => fs.existsSync(ledger), 10_000, 'the step to start');
    // Frozen before it can write anything more: its launcher journals the step's end meanwhile.
    first.child.kill('SIGSTOP');
    await waitFor(() => fs.readFileSync(ledger, 'utf8').includes('end') && journaledExits(f.setupDir, 1).length === 1, 5000, 'the step to end');
    first.child.kill('SIGKILL');
    await first.done;
    expect(readStatusOf(f.runDir(1)).status).toBe('queued'); // the running status was not due yet
    await sleep(1200); // the dead packer's claim goes stale (lease 1 s)
    const second = await startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']).done;
    expect(second.code, second.stderr).toBe(0);
    expect(readStatusOf(f.runDir(1))).toMatchObject({ status: 'successful', exitCode: 0 });
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n')).toEqual(['start', 'end']);
    expect(journaledExits(f.setupDir, 1)).toHaveLength(1);
    expect(second.stderr).not.toMatch(/started 1 steps/);
  }, 30_000);

  it('the same after themis doctor --repair broke the claim: doctor names the launch in the status, and keeps the journal it is settled from', async () => {
    const ledger = path.join(makeTempDir('themis-ledger-'), 'ledger');
    const step = { args: ['/bin/sh', '-c', `echo start >> ${ledger}; sleep 0.3; echo end >> ${ledger}`], batchScript: false };
    const f = makeEnsemble([{ steps: [step] }]);
    const first = startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']);
    await waitFor(() => fs.existsSync(ledger), 10_000, 'the step to start');
    first.child.kill('SIGSTOP');
    await waitFor(() => journaledExits(f.setupDir, 1).length === 1, 5000, 'the step to end');
    first.child.kill('SIGKILL');
    await first.done;
    await sleep(1200);
    const report = runDoctor(f.setupDir, { repair: true, leaseMs: 1000 });
    expect(report.findings.filter((x) => x.outcome === 'failed')).toEqual([]);
    expect(readStatusOf(f.runDir(1))).toMatchObject({ status: 'running', launch: { packer: expect.any(String) } });
    expect(fs.readdirSync(path.join(f.setupDir, 'packers')).filter((n) => n.endsWith('.journal'))).toHaveLength(1);
    const second = await startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']).done;
    expect(second.code, second.stderr).toBe(0);
    expect(readStatusOf(f.runDir(1))).toMatchObject({ status: 'successful', exitCode: 0 });
    expect(fs.readFileSync(ledger, 'utf8').trim().split('\n')).toEqual(['start', 'end']);
  }, 30_000);

  it('a packer killed -9 (its launcher and step with it) before the running status: the step is run again, as any interrupted step, and completes once', async () => {
    const ledger = path.join(makeTempDir('themis-ledger-'), 'ledger');
    const step = { args: ['/bin/sh', '-c', `echo start >> ${ledger}; sleep 0.3; echo end >> ${ledger}`], batchScript: false };
    const f = makeEnsemble([{ steps: [step] }]);
    const first = startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']);
    await waitFor(() => fs.existsSync(ledger), 10_000, 'the step to start');
    first.child.kill('SIGKILL');
    await first.done;
    expect(readStatusOf(f.runDir(1)).status).toBe('queued');
    await sleep(1200);
    const second = await startPack(['--setup-dir', f.setupDir, '--cores', '1', '--heartbeat', '0.2', '--lease', '1']).done;
    expect(second.code, second.stderr).toBe(0);
    expect(readStatusOf(f.runDir(1))).toMatchObject({ status: 'successful', restarts: 0 });
    const lines = fs.readFileSync(ledger, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l === 'end')).toHaveLength(1);
  }, 30_000);
});
