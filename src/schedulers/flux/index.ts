import { coresPerTask, type StepLaunch } from '../../model/resources.js';
import type { AllocationInfo, NodeInfo, SchedulerAdapter } from '../adapter.js';
import { oneLine, quoteShell } from '../../model/quote.js';
import { expandNodelist } from '../nodelist.js';
import { parseIdStateLines } from '../job-states.js';

const q = (v: unknown) => quoteShell(oneLine(v));

/** Flux Standard Duration: whole minutes as `Nm`, fractions exactly in seconds (0.5 min = `30s`). */
const fsd = (m: number) => (Number.isInteger(m) ? `${m}m` : `${Math.ceil(m * 60)}s`);

/** `-c` always states the cores each task holds (`coresPerTask`: 1 for a step that asked for 0). */
function resourceFlags(step: StepLaunch): string[] {
  const argv = ['-n', String(step.tasks), '-c', String(coresPerTask(step))];
  if (step.gpusPerTask > 0) argv.push('-g', String(step.gpusPerTask));
  return argv;
}
const timeFlags = (step: StepLaunch) => (step.timeout > 0 ? ['-t', fsd(step.timeout)] : []);

const PENDING = new Set(['DEPEND', 'PRIORITY', 'SCHED', 'NEW']);
const RUNNING = new Set(['RUN', 'CLEANUP']);

/**
 * Parse `flux resource list -no "{nnodes} {ncores} {ngpus} {nodelist}"`: one line per group of
 * alike nodes; cores and GPUs are totals for the group, so divide by its node count.
 */
export function parseFluxResources(stdout: string): NodeInfo[] {
  const nodes: NodeInfo[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const names = expandNodelist(m[4]!);
    const nnodes = Math.max(Number(m[1]), names.length, 1);
    const cores = Math.floor(Number(m[2]) / nnodes);
    const gpus = Math.floor(Number(m[3]) / nnodes);
    for (const name of names) nodes.push({ name, cores, gpus: Array.from({ length: gpus }, (_, i) => String(i)) });
  }
  return nodes;
}

export const FLUX_RESOURCE_ARGV = ['flux', 'resource', 'list', '-s', 'up', '-no', '{nnodes} {ncores} {ngpus} {nodelist}'];
/** The instance's own job id in its parent: what a `flux batch` script asks, having no `FLUX_JOB_ID`. */
export const FLUX_JOBID_ARGV = ['flux', 'getattr', 'jobid'];

/**
 * The job id of the allocation: `FLUX_JOB_ID` where Flux sets it (`flux alloc`, tasks of `flux run`);
 * in a `flux batch` script, which runs as the initial program of a new instance without it,
 * `flux getattr jobid`, else `FLUX_ENCLOSING_ID` (the batch job's id in the parent instance).
 */
export function fluxJobId(env: NodeJS.ProcessEnv, run: (argv: string[]) => string | null): string | null {
  if (env.FLUX_JOB_ID) return env.FLUX_JOB_ID;
  const attr = (run(FLUX_JOBID_ARGV) ?? '').trim();
  if (/^\S+$/.test(attr)) return attr;
  return env.FLUX_ENCLOSING_ID || null;
}

export const fluxAdapter: SchedulerAdapter = {
  name: 'flux',
  detectCommand: 'flux',
  outputJobIdPattern: '{{id}}',

  launchPrefix(step) {
    return ['flux', 'run', ...resourceFlags(step), ...timeFlags(step)];
  },

  placedLaunch(step, placement) {
    const names = placement.nodes.map((n) => n.name);
    return ['flux', 'run', '-N', String(names.length), ...resourceFlags(step), `--requires=host:${names.join(',')}`, ...timeFlags(step)];
  },

  nodeLauncher(node) {
    // One task of the batch instance on that host, holding its cores and GPUs for the steps it forks.
    const gpus = node.gpus.length > 0 ? [`--gpus-per-task=${node.gpus.length}`] : [];
    return ['flux', 'run', '--nodes=1', '--ntasks=1', `--cores-per-task=${node.cores}`, ...gpus, `--requires=host:${node.name}`, '--setopt=cpu-affinity=off', `--job-name=themis-launcher`];
  },

  nodeCommand(node) {
    return ['flux', 'run', '--nodes=1', '--ntasks=1', `--requires=host:${node.name}`];
  },

  // `flux run` cannot start a task that holds no core: the script's own `flux run` on that node
  // would wait for the core its wrapper holds. The script runs on the packer's node instead.
  onceLaunch() {
    return null;
  },

  scriptDirectives(ctx) {
    const s = ctx.settings;
    const lines = [`# flux: -N ${s.nodes}`];
    if (s.walltime > 0) lines.push(`# flux: -t ${fsd(s.walltime)}`);
    if (s.partition) lines.push(`# flux: -q ${q(s.partition)}`);
    if (s.bank) lines.push(`# flux: --bank=${q(s.bank)}`);
    lines.push(`# flux: --job-name=${q(`${s.name}-${ctx.allocation}`)}`);
    lines.push(`# flux: --output=${q(ctx.outputFile)}`);
    // One slot per node holding that node's GPUs; --exclusive gives the slot the whole node.
    if (ctx.gpusPerNode > 0) lines.push(`# flux: -n ${s.nodes}`, `# flux: -g ${ctx.gpusPerNode}`);
    lines.push('# flux: --exclusive');
    return lines;
  },

  submitCommand(scriptPath) {
    return { argv: ['flux', 'batch', scriptPath] };
  },

  parseJobId(stdout) {
    const id = stdout.trim().split('\n').pop()?.trim() ?? '';
    return /^\S+$/.test(id) ? id : null;
  },

  // The packer looks for Flux only where a Flux instance is reachable (FLUX_URI).
  insideAllocation(env) {
    return Boolean(env.FLUX_URI);
  },

  discover(env, run): AllocationInfo | null {
    if (!env.FLUX_URI && !env.FLUX_JOB_ID) return null;
    const listed = run(FLUX_RESOURCE_ARGV);
    const nodes = listed === null ? [] : parseFluxResources(listed);
    const left = Number((run(['flux', 'job', 'timeleft']) ?? '').trim());
    const endsAt = Number.isFinite(left) && left > 0 ? Date.now() + left * 1000 : null;
    return { scheduler: 'flux', jobId: fluxJobId(env, run), nodes, endsAt };
  },

  jobStatesCommand(jobIds) {
    return { argv: ['flux', 'jobs', '-no', '{id} {state}', ...jobIds] };
  },

  parseJobStates(stdout, jobIds) {
    return parseIdStateLines(stdout, jobIds, { pending: PENDING, running: RUNNING });
  },
};
