import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runThemis, tempDirs } from '../helpers/cli.js';
import { stepPid } from '../helpers/journal.js';
import { fakeJobEnsemble } from './fake-jobs.js';
import { alive, groupMembers, statuses } from './helpers.js';

const tmp = tempDirs('themis-fakejob-');

/** What every stopped job must leave: no step running, every run queued at step 0 with no restart used, no claim. */
function expectPutBack(root: string, n: number, pids: number[]) {
  for (const pid of pids) expect(alive(pid)).toBe(false);
  for (const pid of pids) expect(groupMembers(pid)).toEqual([]);
  expect(statuses(root, n).map((s) => [s.status, s.step, s.restarts])).toEqual(Array.from({ length: n }, () => ['queued', 0, 0]));
  for (let i = 1; i <= n; i++) expect(fs.existsSync(path.join(root, 'runs', String(i), '.themis', 'claim'))).toBe(false);
}

function summaryOf(root: string): { jobId: string | null; signal: string | null; exitCode: number } {
  const logs = path.join(root, '.themis_setup', 'logs');
  const f = fs.readdirSync(logs).find((n) => n.endsWith('.summary.json'))!;
  return JSON.parse(fs.readFileSync(path.join(logs, f), 'utf8'));
}

describe('Flux: a batch job cancelled (against a fake flux behaving as flux.md says)', () => {
  it('fake flux: the batch script has no FLUX_JOB_ID, the job id comes from `flux getattr jobid`; `flux cancel` sends SIGTERM then at once SIGHUP: every run back in queued, exit 143 or 129', async () => {
    const e = fakeJobEnsemble(tmp, ['--scheduler', 'flux'], 3);
    const { jobId } = e.submit();
    const pids = await e.allRunning(3, stepPid);
    expect(JSON.parse(fs.readFileSync(path.join(e.runDir(1), '.themis', 'status.json'), 'utf8')).jobId).toBe(jobId);
    const cancel = e.command(['flux', 'cancel', jobId]);
    expect(cancel.status, cancel.stderr).toBe(0);
    // Both arrive in the same instant; whichever the packer handles first sets the exit code
    // (pending together, Node handles them in signal-number order: SIGHUP first).
    const code = await e.exitCode(jobId);
    expect([143, 129], e.output(jobId)).toContain(code);
    expect(e.output(jobId)).toContain(`received ${code === 143 ? 'SIGTERM' : 'SIGHUP'}: stopping every step`);
    expectPutBack(e.root, 3, pids);
    expect(summaryOf(e.root)).toMatchObject({ jobId, signal: code === 143 ? 'SIGTERM' : 'SIGHUP', exitCode: code });
  }, 40_000);
});

describe('classic LSF jobs (against a fake bsub/bkill/bjobs/blaunch behaving as lsf.md says: no LSB_DJOB_HOSTFILE, LSB_MCPU_HOSTS with its trailing space)', () => {
  const classic = (args: string[], runs: number, extraEnv: Record<string, string> = {}, app?: string) =>
    fakeJobEnsemble(tmp, ['--scheduler', 'lsf', '--lsf-flavor', 'classic', '--cores-per-node', '4', ...args], runs, { THEMIS_FAKE_LSF: 'classic', ...extraEnv }, app);

  it('fake bsub: the classic script runs every run inside the job; nodes from LSB_MCPU_HOSTS, job id from LSB_JOBID, 2-task steps through blaunch -z; status asks bjobs -a -w', async () => {
    const ledger = 'ledger';
    const e = classic(['-n', '2', '--no-batch-script'], 4, {}, `echo "$LSF_BLAUNCH_HOST $THEMIS_RUN_ID" >> "${'$'}THEMIS_SETUP_DIR/../${ledger}"\n`);
    e.env.THEMIS_FAKE_LOG = path.join(e.root, 'fake.log');
    const { jobId } = e.submit();
    expect(await e.exitCode(jobId), e.output(jobId)).toBe(0);
    const host = os.hostname();
    expect(e.output(jobId)).toContain(`on 1 node (${host}) x 4 cores, job ${jobId}`);
    expect(statuses(e.root, 4).map((s) => s.status)).toEqual(['successful', 'successful', 'successful', 'successful']);
    const lines = fs.readFileSync(path.join(e.root, ledger), 'utf8').trim().split('\n').sort();
    expect(lines).toEqual(['1', '1', '2', '2', '3', '3', '4', '4'].map((id) => `${host} ${id}`));
    const calls = e.calls();
    expect(calls.filter((c) => c.tool === 'blaunch').map((c) => c.argv.slice(0, 2))).toEqual(Array.from({ length: 4 }, () => ['-z', `${host} ${host}`]));
    expect(calls.filter((c) => c.tool === 'jsrun' || c.tool === 'lrun')).toEqual([]);
    // What the job saw: OpenLava's variables, no hostfile.
    const inJob = calls.find((c) => c.tool === 'blaunch')!.env;
    expect(inJob).toMatchObject({ LSB_JOBID: jobId, LSB_MCPU_HOSTS: `${host} 4 `, LSB_HOSTS: `${host} ${host} ${host} ${host}`, THEMIS_LSF_FLAVOR: 'classic' });
    expect(inJob.LSB_DJOB_HOSTFILE).toBeUndefined();
    const status = runThemis(['status', '--json'], { cwd: e.root, env: e.env });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).allocations).toMatchObject([{ allocation: 1, jobId, state: 'gone' }]);
    expect(
      e
        .calls()
        .filter((c) => c.tool === 'bjobs')
        .map((c) => c.argv),
    ).toEqual([['-a', '-w', jobId]]);
  }, 40_000);

  it('fake bkill: SIGINT at once, SIGTERM 3 s later, SIGKILL after that; the packer puts every run back on the SIGINT and exits 130', async () => {
    const e = classic([], 3, { THEMIS_FAKE_BKILL_STEP_MS: '3000' });
    const { jobId } = e.submit();
    const pids = await e.allRunning(3, stepPid);
    const bkill = e.command(['bkill', jobId]);
    expect(bkill.stdout).toBe(`Job <${jobId}> is being terminated\n`);
    expect(await e.exitCode(jobId), e.output(jobId)).toBe(130);
    expect(e.output(jobId)).toContain('received SIGINT');
    expectPutBack(e.root, 3, pids);
    expect(summaryOf(e.root)).toMatchObject({ jobId, signal: 'SIGINT', exitCode: 130 });
  }, 40_000);

  it('fake bsub run limit (-W): only SIGUSR2 at the limit; the packer puts every run back and exits 140 before the kill ten minutes later', async () => {
    // One LSF "minute" is 4 s here: SIGUSR2 4 s after the start, SIGKILL 40 s after that.
    const e = classic(['-t', '1'], 3, { THEMIS_FAKE_LSF_MINUTE_MS: '4000' });
    const { jobId } = e.submit();
    const pids = await e.allRunning(3, stepPid);
    expect(await e.exitCode(jobId), e.output(jobId)).toBe(140);
    expect(e.output(jobId)).toContain('received SIGUSR2');
    expectPutBack(e.root, 3, pids);
    expect(summaryOf(e.root)).toMatchObject({ jobId, signal: 'SIGUSR2', exitCode: 140 });
  }, 40_000);
});
