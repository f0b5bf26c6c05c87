import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runThemis, writeScript } from '../helpers/cli.js';
import { alive, makeEnsemble, readLedger, sleep, startPack, statuses, waitFor } from './helpers.js';

/**
 * A fake `srun` (no Slurm here): it records its argv, then runs what follows its options on this
 * machine with `SLURMD_NODENAME` set to its `--nodelist`, as a step on that node would see it. A
 * node launcher started through it really speaks the protocol over the fake's stdin and stdout.
 */
function fakeSrun(bin: string, log: string): string {
  return writeScript(
    path.join(bin, 'srun'),
    `#!/bin/sh
echo "$$ $*" >> "${log}"
node=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodelist=*) node="\${1#--nodelist=}"; shift ;;
    -N|-n|-c|-t|--time) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
export SLURMD_NODENAME="$node"
exec "$@"
`,
  );
}

const slurmEnv = (bin: string, nodes: string) => ({
  PATH: `${bin}:${process.env.PATH}`,
  SLURM_JOB_ID: '77',
  SLURM_JOB_NODELIST: nodes,
  SLURM_JOB_CPUS_PER_NODE: `2(x${nodes.split(',').length})`,
});

function ledgerOnNode(dir: string, body: string): string {
  return writeScript(
    path.join(dir, 'app.sh'),
    `#!/bin/sh
echo "start $THEMIS_RUN_ID $(date +%s%3N) \${SLURMD_NODENAME:--} $THEMIS_STEP $$" >> "$1"
${body}
echo "end $THEMIS_RUN_ID $(date +%s%3N) \${SLURMD_NODENAME:--} $THEMIS_STEP $$" >> "$1"
`,
  );
}

/** An ensemble of `n` one-step runs of the ledger app (body: what each does), with a fake srun on PATH. */
function fakeSlurmEnsemble(n: number, body: string, more: { maxRestarts?: number } = {}) {
  const e = makeEnsemble([]);
  const bin = path.join(e.root, 'bin');
  const srunLog = path.join(e.root, 'srun.log');
  fakeSrun(bin, srunLog);
  const ledger = path.join(e.root, 'ledger');
  const app = ledgerOnNode(e.root, body);
  const e2 = makeEnsemble(
    Array.from({ length: n }, () => ({ steps: [{ args: [app, ledger] }] })),
    { root: e.root, scheduler: 'slurm', ...more },
  );
  return { ...e2, bin, srunLog, ledger };
}

describe('a launcher per node (fake srun running them here; no Slurm)', () => {
  it('single-node steps on other nodes are forked by one long-lived launcher there: one srun per node, none per run', async () => {
    const n = 24;
    const e2 = fakeSlurmEnsemble(n, 'sleep 0.2');
    const { bin, srunLog, ledger } = e2;
    const r = await startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2'], slurmEnv(bin, 'n1,n2,n3')).done;
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(e2.root, n).every((s) => s.status === 'successful')).toBe(true);
    const starts = readLedger(ledger).filter((l) => l.kind === 'start');
    expect(starts).toHaveLength(n);
    const perNode = new Map<string, number>();
    for (const s of starts) perNode.set(s.gpus, (perNode.get(s.gpus) ?? 0) + 1);
    // The packer's own node (n1: this host is none of the names) forks directly; n2 and n3 through their launchers.
    expect([...perNode.keys()].sort()).toEqual(['-', 'n2', 'n3']);
    for (const count of perNode.values()) expect(count).toBeGreaterThanOrEqual(4);
    const sruns = fs.readFileSync(srunLog, 'utf8').trim().split('\n');
    expect(sruns).toHaveLength(2);
    for (const line of sruns) expect(line).toMatch(/--overlap --nodes=1 --ntasks=1 --nodelist=n[23] --cpus-per-task=2 --mem=0 --unbuffered/);
    const summary = JSON.parse(
      fs.readFileSync(
        fs
          .readdirSync(path.join(e2.setupDir, 'logs'))
          .map((f) => path.join(e2.setupDir, 'logs', f))
          .find((f) => f.endsWith('.summary.json'))!,
        'utf8',
      ),
    );
    expect(summary).toMatchObject({ schedulerSteps: 0, nodeLaunchers: 2, jobSteps: { used: 2, limit: 40_000 }, nodesDown: [] });
    // A clean end removes every journal, the node launchers' too.
    expect(fs.readdirSync(path.join(e2.setupDir, 'packers')).filter((f) => f.endsWith('.journal'))).toEqual([]);
  }, 60_000);

  it("the packer's own node is the one Slurm names (SLURMD_NODENAME): steps there are forked by its own launcher", async () => {
    const e2 = fakeSlurmEnsemble(8, 'sleep 0.2');
    const { bin, srunLog, ledger } = e2;
    const r = await startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2'], { ...slurmEnv(bin, 'n1,n2'), SLURMD_NODENAME: 'n2' }).done;
    expect(r.code, r.stderr).toBe(0);
    const sruns = fs.readFileSync(srunLog, 'utf8').trim().split('\n');
    expect(sruns).toHaveLength(1);
    expect(sruns[0]).toMatch(/--nodelist=n1 /);
    expect(new Set(readLedger(ledger).map((l) => l.gpus))).toEqual(new Set(['n1', 'n2']));
  }, 60_000);

  it('kill -9 of a node launcher mid-run: its steps are stopped, their runs run again (no restart used), none completes twice', async () => {
    const n = 8;
    const e2 = fakeSlurmEnsemble(n, 'sleep 1.5', { maxRestarts: 0 });
    const { bin, srunLog, ledger } = e2;
    const p = startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2', '--grace', '1'], slurmEnv(bin, 'n1,n2'));
    // The node launcher is the fake srun process itself (it execs the launcher).
    await waitFor(() => fs.existsSync(srunLog) && readLedger(ledger).some((l) => l.kind === 'start' && l.gpus === 'n2'), 20_000, 'a step on n2');
    const launcherPid = Number(fs.readFileSync(srunLog, 'utf8').trim().split('\n')[0]!.split(' ')[0]);
    const victims = readLedger(ledger).filter((l) => l.kind === 'start' && l.gpus === 'n2');
    expect(victims.length).toBeGreaterThan(0);
    process.kill(launcherPid, 'SIGKILL');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/the launcher on node n2 died/);
    const st = statuses(e2.root, n);
    expect(st.map((s) => s.status)).toEqual(Array(n).fill('successful'));
    expect(st.every((s) => s.restarts === 0)).toBe(true);
    const ends = readLedger(ledger).filter((l) => l.kind === 'end');
    for (let id = 1; id <= n; id++) expect(ends.filter((l) => l.id === id)).toHaveLength(1);
    // The steps the dead launcher had were stopped (by the cleanup step), not left running.
    await sleep(200);
    for (const v of victims) expect(alive(v.pid), `step of run ${v.id} (pid ${v.pid})`).toBe(false);
    for (const v of victims) expect(ends.some((l) => l.pid === v.pid)).toBe(false);
    // One srun for the first launcher on n2, one for the cleanup there, one for its replacement.
    const sruns = fs.readFileSync(srunLog, 'utf8').trim().split('\n');
    expect(sruns.filter((l) => / kill -KILL -- /.test(l))).toHaveLength(1);
    expect(sruns.filter((l) => /--job-name=themis-launcher/.test(l)).length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a node whose launcher cannot start is given up; its runs run elsewhere, none counted as failed', async () => {
    const e = makeEnsemble([]);
    const bin = path.join(e.root, 'bin');
    const srunLog = path.join(e.root, 'srun.log');
    writeScript(path.join(bin, 'srun'), `#!/bin/sh\necho "$$ $*" >> "${srunLog}"\necho "srun: error: Unable to create step for job 77: Step limit reached for this job" >&2\nexit 1\n`);
    const ledger = path.join(e.root, 'ledger');
    const app = ledgerOnNode(e.root, 'sleep 0.6');
    const n = 6;
    const e2 = makeEnsemble(
      Array.from({ length: n }, () => ({ steps: [{ args: [app, ledger] }] })),
      { root: e.root, scheduler: 'slurm', maxRestarts: 0 },
    );
    const p = startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2'], slurmEnv(bin, 'n1,n2'));
    // While it runs, `themis status` names the node it gave up.
    const packers = path.join(e2.setupDir, 'packers');
    const downInHeartbeat = () =>
      fs.existsSync(packers) &&
      fs
        .readdirSync(packers)
        .filter((f) => f.endsWith('.json'))
        .some((f) => {
          try {
            return JSON.parse(fs.readFileSync(path.join(packers, f), 'utf8')).nodesDown?.includes('n2');
          } catch {
            return false;
          }
        });
    await waitFor(downInHeartbeat, 20_000, 'nodesDown in the heartbeat');
    const status = runThemis(['status', '--setup-dir', e2.setupDir, '--no-allocations'], { cwd: e.root });
    expect(status.stdout).toMatch(/places no more steps on n2 \(their launcher died or could not start/);
    const r = await p.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopping placing steps on node n2: the launcher on node n2 did not start: .*Step limit reached/);
    const st = statuses(e2.root, n);
    expect(st.map((s) => s.status)).toEqual(Array(n).fill('successful'));
    expect(st.every((s) => s.restarts === 0)).toBe(true);
    expect(readLedger(ledger).every((l) => l.gpus === '-')).toBe(true);
  }, 60_000);
});

describe('the step limit (fake srun and scontrol; no Slurm)', () => {
  const multiTask = (app: string, ledger: string) => ({ steps: [{ args: [app, ledger], tasks: 2 }] });
  const oneTask = (app: string, ledger: string) => ({ steps: [{ args: [app, ledger] }] });

  it('a MaxStepCount known from scontrol is never run into: multi-task runs past it are blocked here, with why, none failed', async () => {
    const e = makeEnsemble([]);
    const bin = path.join(e.root, 'bin');
    const srunLog = path.join(e.root, 'srun.log');
    fakeSrun(bin, srunLog);
    writeScript(path.join(bin, 'scontrol'), `#!/bin/sh\nprintf 'Configuration data as of now\\nMaxJobCount             = 10000\\nMaxStepCount            = 3\\n'\n`);
    const ledger = path.join(e.root, 'ledger');
    const app = ledgerOnNode(e.root, '');
    const e2 = makeEnsemble([multiTask(app, ledger), multiTask(app, ledger), multiTask(app, ledger), oneTask(app, ledger), oneTask(app, ledger)], { root: e.root, scheduler: 'slurm' });
    const r = await startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2', '--max-concurrency', '1'], slurmEnv(bin, 'n1')).done;
    expect(r.code, r.stderr).toBe(3);
    const st = statuses(e2.root, 5);
    // 3 steps allowed, one kept for a cleanup: two multi-task runs go through srun, the third is blocked.
    expect(st.map((s) => s.status)).toEqual(['successful', 'successful', 'queued', 'successful', 'successful']);
    expect(st[2]!.reason).toMatch(/blocked: the allocation's job steps are used up \(2 of the step limit 3, MaxStepCount\)/);
    expect(st[2]!.restarts).toBe(0);
    expect(fs.readFileSync(srunLog, 'utf8').trim().split('\n')).toHaveLength(2);
  }, 60_000);

  it('srun refusing a step ("Step limit reached") is the infrastructure, not the run: requeued without a restart, no more such steps tried', async () => {
    const e = makeEnsemble([]);
    const bin = path.join(e.root, 'bin');
    const count = path.join(e.root, 'count');
    writeScript(
      path.join(bin, 'srun'),
      `#!/bin/sh
n=$(cat "${count}" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${count}"
if [ $n -gt 2 ]; then echo "srun: error: Unable to create step for job 77: Step limit reached for this job" >&2; exit 1; fi
while [ $# -gt 0 ]; do case "$1" in -N|-n|-c) shift 2 ;; -*) shift ;; *) break ;; esac; done
exec "$@"
`,
    );
    const ledger = path.join(e.root, 'ledger');
    const app = ledgerOnNode(e.root, '');
    const e2 = makeEnsemble([multiTask(app, ledger), multiTask(app, ledger), multiTask(app, ledger), multiTask(app, ledger), oneTask(app, ledger)], {
      root: e.root,
      scheduler: 'slurm',
      maxRestarts: 0,
    });
    const r = await startPack(['--setup-dir', e2.setupDir, '--heartbeat', '0.2', '--max-concurrency', '1'], slurmEnv(bin, 'n1')).done;
    expect(r.code, r.stderr).toBe(3);
    const st = statuses(e2.root, 5);
    expect(st.map((s) => s.status)).toEqual(['successful', 'successful', 'queued', 'queued', 'successful']);
    // Run 3 was refused by srun (back in the queue), then blocked like run 4 when claimed again.
    expect(st[2]!.history.map((h) => h.detail ?? '')).toContain('not started: srun: Unable to create step for job 77: Step limit reached for this job');
    for (const i of [2, 3]) expect(st[i]!.reason).toMatch(/^requeued: blocked: the allocation's job steps are used up \(the scheduler refused a step/);
    expect(st.every((s) => s.restarts === 0)).toBe(true);
    // The refused one, then nothing more: 3 srun calls in all.
    expect(fs.readFileSync(count, 'utf8').trim()).toBe('3');
  }, 60_000);
});
