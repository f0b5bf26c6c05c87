/**
 * Many-node allocations against a real Slurm cluster (issue 13): 4 emulated nodes x 4 CPUs x 2 fake
 * GPUs, `MaxStepCount=25`, `MpiDefault=pmix` with Debian's OpenMPI. A second cluster beside the
 * e2e suite's 2-node one (own prefix, ports and state), found through THEMIS_SLURM4_PREFIX:
 *   bash test/slurm/cluster.sh start /tmp/slurm4 --nodes 4 --max-steps 25 --mpi
 *   THEMIS_SLURM4_PREFIX=/tmp/slurm4 npx vitest run test/slurm/many-nodes.test.ts
 * Every job is the script `themis gen` wrote, submitted with plain `sbatch`, as users do. Without
 * that cluster the suite is skipped (and says why); in CI (THEMIS_SLURM_REQUIRED=1) it must run.
 *
 * 1-3 need one long-lived launcher per node (issue 13's node launchers): with one `srun` per step
 * on the other nodes, the 26th step of a job is refused ("Step limit reached for this job").
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, runThemis } from '../helpers/cli.js';
import { type RunStatus, readStatuses, runDirs, type SuiteEnsemble, safeList, withDiagnostics, readLedger, type LedgerLine } from './ensembles.js';
import { markerProcessesWithEnv, probeCluster, sbatch, sh, slurmRequired, waitFor, waitJobGone, waitJobRunning } from './cluster.js';

const START = 'bash test/slurm/cluster.sh start /tmp/slurm4 --nodes 4 --max-steps 25 --mpi; export THEMIS_SLURM4_PREFIX=/tmp/slurm4';
const probe = probeCluster(process.env.THEMIS_SLURM4_PREFIX, { nodes: 4, conf: ['MaxStepCount=25', 'MpiDefault=pmix'], start: START });
if (!probe.ok && slurmRequired) {
  // CI (.ci/run) started this cluster: not reaching it is a failure, never a skip.
  throw new Error(`THEMIS_SLURM_REQUIRED=1 but the 4-node Slurm test cluster is not reachable: ${probe.why}`);
}
if (!probe.ok) console.warn(`\n*** real-Slurm many-node suite SKIPPED: ${probe.why} ***\n`);
const available = probe.ok;
/** Slurm's clients pointed at the 4-node cluster (never at SLURM_CONF's 2-node one). */
const ENV4: NodeJS.ProcessEnv = probe.ok ? { ...probe.env, CI: 'true' } : process.env;

const MARKER = 'THEMIS_MANY_NODES_MARKER';
const dirs: string[] = [];
afterAll(() => {
  if (process.env.THEMIS_E2E_KEEP === '1') return;
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Ensemble extends SuiteEnsemble {
  script: string;
}

/**
 * An application that writes one ledger line when it starts and one when it ends, from inside the
 * step: run id, job, time, node, GPUs, job step (`batch` in the batch step, where the packer's
 * direct children run), pid.
 */
function ledgerApp(ledger: string, seconds: number): string {
  const line = (kind: string) =>
    `echo "${kind} $THEMIS_RUN_ID \${SLURM_JOB_ID:-none} $(date +%s.%N) \${SLURMD_NODENAME:-none} \${CUDA_VISIBLE_DEVICES:-none} \${SLURM_STEP_ID:-batch} $$" >> ${ledger}`;
  return `#!/bin/bash\n${line('start')}\nsleep ${seconds}\n${line('end')}\n`;
}

/** A fresh directory with a ledger file, for one ensemble. */
function workdir(name: string): { dir: string; ledger: string } {
  const dir = makeTempDir(`themis-many-${name}-`);
  dirs.push(dir);
  const ledger = path.join(dir, 'ledger.txt');
  fs.writeFileSync(ledger, '');
  return { dir, ledger };
}

/** `themis gen ARGS -m NAME --scheduler slurm` in `dir` (samples.csv of `runs` rows is written here). */
function gen(w: { dir: string; ledger: string }, name: string, runs: number, args: string[]): Ensemble {
  const rows = ['x', ...Array.from({ length: runs }, (_, i) => String(i + 1))];
  fs.writeFileSync(path.join(w.dir, 'samples.csv'), rows.join('\n') + '\n');
  const r = runThemis(['gen', ...args, '--scheduler', 'slurm', '-m', name], { cwd: w.dir, env: ENV4 });
  if (r.code !== 0) throw new Error(`themis gen failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const script = path.join(w.dir, '.themis_setup', 'batch', `${name}-1.sh`);
  if (!fs.existsSync(script)) throw new Error(`themis gen did not write ${script}\n${r.stdout}`);
  return { ...w, name, script };
}

/** Plain sbatch of the generated script on the 4-node cluster, with a marker every process of the job inherits. */
function submit(e: Ensemble): string {
  return sbatch(e.script, { cwd: e.dir, env: { ...ENV4, [MARKER]: e.dir } as Record<string, string> });
}

const statuses = readStatuses;

/** Every run successful, with no restart used (an infrastructure failure is never the run's). */
function expectAllSuccessful(e: Ensemble, n: number): void {
  const st = statuses(e);
  const bad = [...st].filter(([, s]) => s.status !== 'successful').map(([id, s]) => `${id}:${s.status}`);
  expect(bad, `runs not successful (of ${n}); a run.log of one: ${firstFailedLog(e, st)}`).toEqual([]);
  expect(st.size).toBe(n);
  for (const [id, s] of st) expect(s.restarts, `run ${id} restarts`).toBe(0);
}

function firstFailedLog(e: Ensemble, st: Map<number, RunStatus>): string {
  const id = [...st].find(([, s]) => s.status !== 'successful')?.[0];
  if (id === undefined) return '(none)';
  try {
    return fs
      .readFileSync(path.join(runDirs(e).get(id)!, 'run.log'), 'utf8')
      .trim()
      .split('\n')
      .slice(-3)
      .join(' | ');
  } catch {
    return '(no run.log)';
  }
}

const ledger = readLedger;

/** Each id's lines of one kind, counted. */
function countById(lines: LedgerLine[], kind: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const l of lines) if (l.kind === kind) out.set(l.id, (out.get(l.id) ?? 0) + 1);
  return out;
}

/** Every run ended exactly once (a run completed twice would have two end lines). */
function expectEachEndedOnce(e: Ensemble, n: number): void {
  const ends = countById(ledger(e), 'end');
  const twice = [...ends].filter(([, c]) => c > 1).map(([id]) => id);
  expect(twice, 'runs that completed twice').toEqual([]);
  expect([...ends.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
}

/** The job's batch host (where the packer runs) and its nodes, from `scontrol show job` (MinJobAge keeps it). */
function jobNodes(job: string): { batchHost: string; nodes: string[] } {
  const r = sh(['scontrol', 'show', 'job', '-o', job], 10_000, ENV4);
  const batchHost = /\bBatchHost=(\S+)/.exec(r.stdout)?.[1] ?? '';
  const list = /\bNodeList=(\S+)/.exec(r.stdout)?.[1] ?? '';
  const names = sh(['scontrol', 'show', 'hostnames', list], 10_000, ENV4)
    .stdout.split('\n')
    .filter((s) => s.trim() !== '');
  return { batchHost, nodes: names };
}

/** Job steps per node the runs ran in (distinct SLURM_STEP_ID values seen from inside them). */
function stepsPerNode(lines: LedgerLine[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const l of lines) {
    if (l.kind !== 'start') continue;
    const s = out.get(l.node) ?? new Set<string>();
    s.add(l.step);
    out.set(l.node, s);
  }
  return out;
}

/** At most a few job steps per node (a node launcher, perhaps its replacement), never one per run. */
function expectFewStepsPerNode(lines: LedgerLine[]): void {
  for (const [node, steps] of stepsPerNode(lines)) expect(steps.size, `job steps on ${node}: ${[...steps].join(' ')}`).toBeLessThanOrEqual(3);
}

/** Processes of the job (this ensemble's marker and SLURM_JOB_ID). */
function jobProcesses(e: Ensemble, job: string) {
  return markerProcessesWithEnv(MARKER, e.dir).filter((p) => p.env.get('SLURM_JOB_ID') === job);
}

/** No process of the job may outlive it (a few seconds of grace for Slurm's own teardown). */
async function expectNoJobProcesses(e: Ensemble, job: string): Promise<void> {
  const deadline = Date.now() + 8000;
  let left = jobProcesses(e, job);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    left = jobProcesses(e, job);
  }
  expect(
    left.map((p) => `${p.pid} ${p.cmd}`),
    `processes of job ${job} still alive after it ended`,
  ).toEqual([]);
}

/** The launcher binaries: the native spawner, or the Node launcher child. */
const LAUNCHER_CMD = /(?:^|\/)themis-spawner(?:\s|$)|launcher-child\.js(?:\s|$)/;

/**
 * The node launcher on `node`: a process of the job running the launcher binary with that node's
 * SLURMD_NODENAME, inside a job step (not the batch step), whose parent is not a launcher itself
 * (a step it forked may briefly still show the launcher's command line).
 */
function nodeLaunchers(e: Ensemble, job: string, node: string) {
  const procs = jobProcesses(e, job);
  const launchers = procs.filter((p) => LAUNCHER_CMD.test(p.cmd) && p.env.get('SLURMD_NODENAME') === node && p.env.has('SLURM_STEP_ID'));
  const pids = new Set(launchers.map((p) => p.pid));
  return launchers.filter((p) => !pids.has(p.ppid));
}

/** The srun clients of the job with --overlap on their command line (the node launchers' steps). */
const overlapSruns = (e: Ensemble, job: string) => jobProcesses(e, job).filter((p) => /(?:^|\/)srun\s/.test(p.cmd) && /\s--overlap(?:\s|=|$)/.test(p.cmd));

describe.runIf(available)('real Slurm, 4 nodes, MaxStepCount=25: one launcher per node (issue 13)', () => {
  it('1. one 4-node job drains 200 one-core runs: all successful, every node a fair share, a few job steps per node', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        const w = workdir('drain');
        fs.writeFileSync(path.join(w.dir, 'app.sh'), ledgerApp(w.ledger, 0.5), { mode: 0o755 });
        e = gen(w, 'many-drain', 200, ['./app.sh', 'samples.csv', '-N', '4', '-t', '5', '-c', '1']);
        const job = submit(e);
        await waitJobGone(job, 300_000, ENV4);
        expectAllSuccessful(e, 200);
        expectEachEndedOnce(e, 200);
        const lines = ledger(e);
        const perNode = new Map<string, number>();
        for (const l of lines) if (l.kind === 'end') perNode.set(l.node, (perNode.get(l.node) ?? 0) + 1);
        expect([...perNode.keys()].sort(), 'nodes that ran runs').toEqual(jobNodes(job).nodes.sort());
        // 4 nodes of 4 cores each: an even share is 50; every node must run at least half of that.
        for (const [node, n] of perNode) expect(n, `runs on ${node} (${JSON.stringify([...perNode])})`).toBeGreaterThanOrEqual(25);
        expectFewStepsPerNode(lines);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 360_000);

  it('2. 2 fake GPUs per node, one GPU per run: no GPU of a node is given to two runs at once', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        const w = workdir('gpu');
        fs.writeFileSync(path.join(w.dir, 'app.sh'), ledgerApp(w.ledger, 1.5), { mode: 0o755 });
        // 8 GPUs in the job: 48 runs are 6 rounds, 36 of them on the 3 nodes the packer is not on.
        e = gen(w, 'many-gpu', 48, ['./app.sh', 'samples.csv', '-N', '4', '-t', '5', '-c', '1', '-g', '1', '--gpus-per-node', '2']);
        const job = submit(e);
        await waitJobGone(job, 300_000, ENV4);
        expectAllSuccessful(e, 48);
        expectEachEndedOnce(e, 48);
        const lines = ledger(e);
        const spans = lines
          .filter((l) => l.kind === 'start')
          .map((s) => {
            const t = lines.find((l) => l.kind === 'end' && l.id === s.id)!;
            return { id: s.id, node: s.node, gpus: s.gpus, from: s.at, to: t.at };
          });
        for (const s of spans) expect(s.gpus, `run ${s.id} on ${s.node} sees CUDA_VISIBLE_DEVICES=${s.gpus}`).toMatch(/^[01]$/);
        let overlapping = 0;
        for (const a of spans) {
          for (const b of spans) {
            if (a.id < b.id && a.node === b.node && a.from < b.to && b.from < a.to) {
              overlapping++;
              expect(a.gpus, `runs ${a.id} and ${b.id} ran at once on ${a.node} with GPU ${a.gpus}`).not.toBe(b.gpus);
            }
          }
        }
        expect(overlapping, 'runs sharing a node never ran side by side').toBeGreaterThan(0);
        expect(new Set(spans.map((s) => s.node)).size, 'nodes used').toBe(4);
        expectFewStepsPerNode(lines);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 360_000);

  it('3. kill -9 of a remote node launcher mid-job: every run successful, none completed twice', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        const w = workdir('kill');
        fs.writeFileSync(path.join(w.dir, 'app.sh'), ledgerApp(w.ledger, 3), { mode: 0o755 });
        e = gen(w, 'many-kill', 64, ['./app.sh', 'samples.csv', '-N', '4', '-t', '5', '-c', '1']);
        const job = submit(e);
        await waitJobRunning(job, 60_000, ENV4);
        const { batchHost, nodes } = jobNodes(job);
        const remote = nodes.filter((n) => n !== batchHost);
        expect(remote.length).toBe(3);
        // A remote node whose launcher has started runs: runs of it are running when it dies.
        let victim: { node: string; pids: number[] } | undefined;
        let seen = '';
        await waitFor(
          `a node launcher (themis-spawner or launcher-child.js in an srun --overlap step) running runs on one of ${remote.join(', ')}`,
          () => {
            if (victim) return true;
            const busy = new Set(
              ledger(e!)
                .filter((l) => l.kind === 'start' && l.node !== batchHost)
                .map((l) => l.node),
            );
            const procs = jobProcesses(e!, job);
            if (procs.length > 0) seen = procs.map((p) => `${p.pid}[${p.env.get('SLURMD_NODENAME')}] ${p.cmd}`).join(' ; ');
            for (const node of remote) {
              const found = nodeLaunchers(e!, job, node);
              if (!victim && busy.has(node) && found.length > 0 && overlapSruns(e!, job).length > 0) victim = { node, pids: found.map((p) => p.pid) };
            }
            return victim !== undefined || !['PENDING', 'RUNNING', 'CONFIGURING'].includes(sh(['squeue', '-h', '-j', job, '-o', '%T'], 5000, ENV4).stdout.trim());
          },
          60_000,
        );
        expect(victim, `no node launcher found on ${remote.join(', ')}; the job's processes last seen: ${seen}`).toBeDefined();
        for (const pid of victim!.pids) process.kill(pid, 'SIGKILL');
        await waitJobGone(job, 300_000, ENV4);
        expectAllSuccessful(e, 64);
        expectEachEndedOnce(e, 64);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 400_000);
});

/** hello.c: each rank prints its tag, rank, size and node; compiled with mpicc in the test's directory. */
const HELLO_C = `#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  int rank, size;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *node = getenv("SLURMD_NODENAME");
  printf("mpi %s rank %d size %d node %s\\n", argc > 1 ? argv[1] : "-", rank, size, node ? node : "none");
  MPI_Finalize();
  return 0;
}
`;

function compileHello(dir: string): string {
  fs.writeFileSync(path.join(dir, 'hello.c'), HELLO_C);
  const r = spawnSync('mpicc', ['-o', path.join(dir, 'hello'), path.join(dir, 'hello.c')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`mpicc failed (${r.status ?? r.error?.message}): ${r.stderr} (the cluster's --mpi installs openmpi-bin libopenmpi-dev libpmix-dev)`);
  return path.join(dir, 'hello');
}

/** Every `mpi TAG rank R size S node N` line in a run directory's logs (run.log and the renamed earlier ones). */
function mpiLines(runDir: string): { tag: string; rank: number; size: number; node: string }[] {
  const out: { tag: string; rank: number; size: number; node: string }[] = [];
  for (const f of safeList(runDir).filter((f) => /^run(_\d+)?\.log$/.test(f))) {
    for (const m of fs.readFileSync(path.join(runDir, f), 'utf8').matchAll(/^mpi (\S+) rank (\d+) size (\d+) node (\S+)$/gm)) {
      out.push({ tag: m[1]!, rank: Number(m[2]), size: Number(m[3]), node: m[4]! });
    }
  }
  return out;
}

// Two 2-node jobs: they run side by side on the 4 nodes.
describe.runIf(available).concurrent('real Slurm, 2-node jobs: batch-script steps and MPI (issue 13)', () => {
  it('4. a 2-task batch-script step runs its script once, on its first placed node, and its %%themis_launch%% lands on the placed nodes', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        const w = workdir('script');
        // 2 tasks x 2 cores fill one node: run 1 goes on the packer's node, run 2 on the other one.
        const script = `#!/bin/sh
echo "script $THEMIS_RUN_ID \${SLURM_JOB_ID:-none} $(date +%s.%N) \${SLURMD_NODENAME:-none} - \${SLURM_STEP_ID:-batch} $$ $THEMIS_LAUNCH" >> ${w.ledger}
%%themis_launch%% /bin/sh -c 'echo "task $THEMIS_RUN_ID $SLURM_PROCID $(date +%s.%N) $SLURMD_NODENAME - $SLURM_STEP_ID $$" >> ${w.ledger}; sleep 3'
`;
        fs.writeFileSync(path.join(w.dir, 'drive.sh'), script, { mode: 0o755 });
        e = gen(w, 'many-script', 2, ['./drive.sh', 'samples.csv', '-N', '2', '-t', '5', '-n', '2', '-c', '2']);
        const job = submit(e);
        await waitJobGone(job, 180_000, ENV4);
        expectAllSuccessful(e, 2);
        const { batchHost, nodes } = jobNodes(job);
        const lines = ledger(e);
        const scripts = lines.filter((l) => l.kind === 'script');
        expect(scripts.map((l) => l.id).sort(), 'each run ran its script exactly once').toEqual([1, 2]);
        // Its two tasks are one node's worth: the runs shared neither node, and used both.
        expect(new Set(scripts.map((l) => l.node)), 'the scripts ran on the two nodes of the job').toEqual(new Set(nodes));
        const raw = fs.readFileSync(e.ledger, 'utf8');
        for (const s of scripts) {
          const tasks = lines.filter((l) => l.kind === 'task' && l.id === s.id);
          // For task lines the ledger's `job` column holds SLURM_PROCID.
          expect(tasks.map((t) => t.job).sort(), `tasks of run ${s.id}`).toEqual(['0', '1']);
          for (const t of tasks) expect(t.node, `task ${t.job} of run ${s.id} ran where the packer placed the step`).toBe(s.node);
          // The inner launch is one job step of its own, other than the script's.
          expect(new Set(tasks.map((t) => t.step)).size).toBe(1);
          expect(tasks[0]!.step).not.toBe(s.step);
          expect(raw, `run ${s.id}'s THEMIS_LAUNCH names its node`).toMatch(new RegExp(`^script ${s.id} .* srun --exact -N 1 -n 2 -c 2 --nodelist=${s.node}(\\s|$)`, 'm'));
        }
        // On the packer's node the script ran directly (in the batch step); on the other one as one job step.
        expect(scripts.find((s) => s.node === batchHost)?.step).toBe('batch');
        expect(scripts.find((s) => s.node !== batchHost)?.step).toMatch(/^\d+$/);
        await expectNoJobProcesses(e, job);
      },
    );
  }, 240_000);

  it('5. a real MPI program (Debian OpenMPI, pmix) through %%themis_launch%% and as a non-batch 2-task step: its ranks on the placed nodes', async () => {
    let e: Ensemble | undefined;
    await withDiagnostics(
      () => e,
      async () => {
        const w = workdir('mpi');
        const hello = compileHello(w.dir);
        fs.writeFileSync(path.join(w.dir, 'mpi.sh'), `#!/bin/sh\n%%themis_launch%% ${hello} via-launch\n`, { mode: 0o755 });
        // 2 tasks x 4 cores: one rank on each node of the job, for both kinds of step.
        fs.writeFileSync(
          path.join(w.dir, 'steps.csv'),
          ['args,tasks,cores_per_task,gpus_per_task,timeout,batch_script,cwd', './mpi.sh,2,4,0,2,true,', `${hello} via-step,2,4,0,2,false,`].join('\n') + '\n',
        );
        e = gen(w, 'many-mpi', 1, ['--steps', 'steps.csv', 'samples.csv', '-N', '2', '-t', '5']);
        const job = submit(e);
        await waitJobGone(job, 180_000, ENV4);
        expectAllSuccessful(e, 1);
        const { nodes } = jobNodes(job);
        const got = mpiLines(runDirs(e).get(1)!);
        for (const tag of ['via-launch', 'via-step']) {
          const ranks = got.filter((l) => l.tag === tag).sort((a, b) => a.rank - b.rank);
          expect(
            ranks.map((r) => [r.rank, r.size]),
            `${tag}: ranks and sizes`,
          ).toEqual([
            [0, 2],
            [1, 2],
          ]);
          expect(new Set(ranks.map((r) => r.node)), `${tag}: one rank on each node of the job`).toEqual(new Set(nodes));
        }
        await expectNoJobProcesses(e, job);
      },
    );
  }, 240_000);
});
