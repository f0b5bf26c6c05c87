import { coresRequested, type StepLaunch } from '../../model/resources.js';
import type { AllocationInfo, NodeInfo, SchedulerAdapter } from '../adapter.js';
import { quoteDirective } from '../../model/quote.js';
import { expandCounts, expandNodelist } from '../nodelist.js';
import { parseIdStateLines } from '../job-states.js';

/** Minutes for a `-t` flag: whole minutes, rounded up (a 0.5-minute timeout must not become 0 = none). */
const wholeMinutes = (m: number) => Math.ceil(m);

/** `-c` only for a core request: without one srun gives each task one core, as the pool holds. */
function resourceFlags(step: StepLaunch): string[] {
  const argv: string[] = [];
  const cores = coresRequested(step);
  if (step.tasks > 0) argv.push('-n', String(step.tasks));
  if (cores !== null) argv.push('-c', String(cores));
  if (step.gpusPerTask > 0) argv.push(`--gpus-per-task=${step.gpusPerTask}`);
  return argv;
}

const timeFlags = (step: StepLaunch) => (step.timeout > 0 ? ['-t', String(wholeMinutes(step.timeout))] : []);

/** squeue's %T states that still hold (or will hold) an allocation. */
const PENDING = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD']);
const RUNNING = new Set(['RUNNING', 'COMPLETING', 'STAGE_OUT', 'SIGNALING', 'RESIZING', 'SUSPENDED']);

/** GPU ids for one node: the scheduler's names when it gives them, else 0..n-1. */
function gpuIds(env: NodeJS.ProcessEnv): string[] {
  const list = (v: string | undefined) =>
    (v ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '' && x !== 'NoDevFiles');
  const named = list(env.SLURM_JOB_GPUS).length > 0 ? list(env.SLURM_JOB_GPUS) : list(env.CUDA_VISIBLE_DEVICES);
  const count = Number(env.SLURM_GPUS_ON_NODE);
  if (Number.isInteger(count) && count > 0) {
    return named.length === count ? named : Array.from({ length: count }, (_, i) => String(i));
  }
  return named;
}

/** Parse squeue's %e (local time `2026-11-25T13:00:00`); N/A, Unknown, NONE -> null. */
export function parseSlurmTime(text: string | null): number | null {
  const t = (text ?? '').trim();
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?$/.test(t)) return null;
  const ms = new Date(t).getTime();
  return Number.isFinite(ms) ? ms : null;
}

export const slurmAdapter: SchedulerAdapter = {
  name: 'slurm',
  detectCommand: 'sbatch',
  outputJobIdPattern: '%j',

  launchPrefix(step) {
    return ['srun', '--exact', ...resourceFlags(step), ...timeFlags(step)];
  },

  placedLaunch(step, placement) {
    const names = placement.nodes.map((n) => n.name);
    // Not --gpus-per-task: on Slurm 22.05 such a step sees every GPU of its node and blocks its
    // neighbours (seen on the test cluster); a per-node --gres gives each step its own GPUs.
    const gpusPerNode = Math.max(0, ...placement.nodes.map((n) => n.gpus.length));
    const gres = step.gpusPerTask > 0 ? [`--gres=gpu:${gpusPerNode > 0 ? gpusPerNode : step.gpusPerTask}`] : [];
    return ['srun', '--exact', '-N', String(names.length), ...resourceFlags({ ...step, gpusPerTask: 0 }), ...gres, `--nodelist=${names.join(',')}`, ...timeFlags(step)];
  },

  nodeLauncher(node) {
    // One task holding the whole node (its CPUs, GPUs and memory) for the steps it forks; --overlap
    // lets later multi-node steps share them; unbuffered so each protocol line arrives at once.
    const gres = node.gpus.length > 0 ? [`--gres=gpu:${node.gpus.length}`] : [];
    return [
      'srun',
      '--overlap',
      '--nodes=1',
      '--ntasks=1',
      `--nodelist=${node.name}`,
      `--cpus-per-task=${node.cores}`,
      ...gres,
      '--mem=0',
      '--unbuffered',
      '--kill-on-bad-exit=1',
      '--quiet',
      '--job-name=themis-launcher',
    ];
  },

  nodeCommand(node) {
    return ['srun', '--overlap', '--nodes=1', '--ntasks=1', `--nodelist=${node.name}`, '--quiet'];
  },

  refusedStep(logTail) {
    // What srun prints when slurmctld would not create the step (the program never started).
    const m = /^srun: error: (Unable to create step for job .*|.*Step limit reached.*|.*[Ss]tep creation (?:temporarily )?disabled.*|.*Requested node configuration is not available.*)$/m.exec(
      logTail,
    );
    return m ? { why: `srun: ${m[1]!.trim()}`, limitReached: /Step limit reached/.test(m[1]!) } : null;
  },

  stepLimitCommand: ['scontrol', 'show', 'config'],
  defaultStepLimit: 40_000,

  parseStepLimit(stdout) {
    const m = /^\s*MaxStepCount\s*=\s*(\d+)/m.exec(stdout);
    return m ? Number(m[1]) : null;
  },

  onceLaunch(node, step) {
    // --overlap: the step shares the CPUs, GPUs and memory of the steps its script starts (without
    // it an inner srun would wait for the core this one holds); -N1 -n1: the script runs once.
    return ['srun', '-N', '1', '-n', '1', '--overlap', `--nodelist=${node}`, ...timeFlags(step)];
  },

  scriptDirectives(ctx) {
    const s = ctx.settings;
    const lines = [`#SBATCH --job-name=${quoteDirective(`${s.name}-${ctx.allocation}`)}`, `#SBATCH --nodes=${s.nodes}`];
    if (s.walltime > 0) lines.push(`#SBATCH -t ${wholeMinutes(s.walltime)}`);
    if (s.partition) lines.push(`#SBATCH --partition=${quoteDirective(s.partition)}`);
    if (s.bank) lines.push(`#SBATCH --account=${quoteDirective(s.bank)}`);
    lines.push(`#SBATCH --output=${quoteDirective(ctx.outputFile)}`);
    // A job that did not ask for GPUs cannot hand any to its steps.
    if (ctx.gpusPerNode > 0) lines.push(`#SBATCH --gpus-per-node=${ctx.gpusPerNode}`);
    lines.push('#SBATCH --exclusive');
    return lines;
  },

  submitCommand(scriptPath) {
    return { argv: ['sbatch', scriptPath] };
  },

  parseJobId(stdout) {
    const m = /Submitted batch job (\d+)/.exec(stdout) ?? /^\s*(\d+)(?:;\S+)?\s*$/m.exec(stdout);
    return m ? m[1]! : null;
  },

  insideAllocation(env) {
    return Boolean(env.SLURM_JOB_ID || env.SLURM_JOBID);
  },

  discover(env, run): AllocationInfo | null {
    const jobId = env.SLURM_JOB_ID ?? env.SLURM_JOBID;
    if (!jobId) return null;
    const names = expandNodelist(env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST ?? '');
    const counts = expandCounts(env.SLURM_JOB_CPUS_PER_NODE ?? '');
    const onNode = Number(env.SLURM_CPUS_ON_NODE);
    const gpus = gpuIds(env);
    const hostNames = names.length > 0 ? names : [env.SLURMD_NODENAME ?? 'localhost'];
    const nodes: NodeInfo[] = hostNames.map((name, i) => ({
      name,
      cores: counts[i] ?? counts[counts.length - 1] ?? (Number.isInteger(onNode) && onNode > 0 ? onNode : 1),
      gpus: [...gpus],
    }));
    return { scheduler: 'slurm', jobId, nodes, endsAt: parseSlurmTime(run(['squeue', '-h', '-j', jobId, '-o', '%e'])) };
  },

  jobStatesCommand(jobIds) {
    return { argv: ['squeue', '-h', '-j', jobIds.join(','), '-o', '%i %T'] };
  },

  parseJobStates(stdout, jobIds) {
    return parseIdStateLines(stdout, jobIds, { pending: PENDING, running: RUNNING });
  },
};
