import fs from 'node:fs';
import type { LsfFlavor } from '../../model/allocation.js';
import { coresPerTask, type StepLaunch } from '../../model/resources.js';
import type { AllocationInfo, JobState, NodeInfo, Placement, SchedulerAdapter, ScriptContext } from '../adapter.js';
import { quoteDirective } from '../../model/quote.js';
import { parseIdStateLines } from '../job-states.js';

export type LsfLauncher = 'jsrun' | 'lrun';
export type { LsfFlavor } from '../../model/allocation.js';

const wholeMinutes = (m: number) => Math.ceil(m);

/** bjobs STAT values. */
const PENDING = new Set(['PEND', 'PSUSP', 'WAIT']);
const RUNNING = new Set(['RUN', 'USUSP', 'SSUSP', 'PROV']);

/**
 * Count slots per host, in first-seen order. Under CSM the first host is the launch node, which
 * runs the batch script but no tasks: dropped when others exist. Under classic LSF it is the
 * first execution host, with its slots like any other.
 */
function nodesFromSlots(pairs: [string, number][], flavor: LsfFlavor): NodeInfo[] {
  const counts = new Map<string, number>();
  for (const [host, n] of pairs) counts.set(host, (counts.get(host) ?? 0) + n);
  let hosts = [...counts.keys()];
  if (flavor === 'csm' && hosts.length > 1) hosts = hosts.slice(1);
  return hosts.map((name) => ({ name, cores: counts.get(name)!, gpus: [] }));
}

/** `LSB_HOSTS`: one host name per slot ("vm vm", "node1 node1 node2 node2"). */
export function parseLsbHosts(text: string): [string, number][] {
  return text
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((h) => [h, 1] as [string, number]);
}

/** `LSB_MCPU_HOSTS`: "host1 n1 host2 n2 …" (OpenLava leaves a trailing space: "vm 2 "). */
export function parseMcpuHosts(text: string): [string, number][] {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const pairs: [string, number][] = [];
  for (let i = 0; i + 1 < words.length; i += 2) pairs.push([words[i]!, Number(words[i + 1]) || 0]);
  return pairs;
}

/** `LSB_DJOB_HOSTFILE`: one host per line, one line per slot. */
export function parseHostfile(text: string): [string, number][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((h) => [h, 1] as [string, number]);
}

function gpusFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env.CUDA_VISIBLE_DEVICES ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '' && x !== 'NoDevFiles');
}

/** bjobs without `-o` (classic LSF, OpenLava): `bjobs -a -w` lines "JOBID USER STAT QUEUE …", one per job. */
export function parseBjobsWide(stdout: string, jobIds: readonly string[]): Map<string, JobState> {
  const idState = stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((w) => w.length >= 3 && /^\d+$/.test(w[0]!))
    .map((w) => `${w[0]} ${w[2]}`)
    .join('\n');
  return parseIdStateLines(idState, jobIds, { pending: PENDING, running: RUNNING }, /^\d+$/);
}

/** What bjobs says when it lists no job (exit 255): the jobs asked about are gone. */
const LSF_FORGOTTEN = /is not found|No unfinished job found|No job found/i;

/** The hosts of a placement for `blaunch -z`: each host once per task placed on it (blaunch starts one task per name). */
function blaunchHosts(placement: Placement): string {
  return placement.nodes.flatMap((n) => Array.from({ length: Math.max(1, n.tasks) }, () => n.name)).join(' ');
}

/**
 * The GPUs of a step started through blaunch, which starts every task with one environment: set
 * when every placed node gave the step the same GPU ids (always so on one node); else left as LSF set them.
 */
function blaunchGpuEnv(step: StepLaunch, placement: Placement): string[] {
  if (step.gpusPerTask <= 0 || placement.nodes.length === 0) return [];
  const ids = placement.nodes[0]!.gpus.join(',');
  if (placement.nodes.some((n) => n.gpus.join(',') !== ids)) return [];
  return ['env', `CUDA_VISIBLE_DEVICES=${ids}`, `ROCR_VISIBLE_DEVICES=${ids}`, `HIP_VISIBLE_DEVICES=${ids}`];
}

/** Classic LSF's header: slots (`-n`), spread `ptile` per node, the project (`-P`), GPUs with `-gpu`. */
function classicDirectives(ctx: ScriptContext): string[] {
  const s = ctx.settings;
  const perNode = s.coresPerNode ?? 1;
  const lines = [`#BSUB -J ${quoteDirective(`${s.name}-${ctx.allocation}`)}`, `#BSUB -n ${s.nodes * perNode}`, `#BSUB -R ${quoteDirective(`span[ptile=${perNode}]`)}`];
  if (s.walltime > 0) lines.push(`#BSUB -W ${wholeMinutes(s.walltime)}`);
  if (s.partition) lines.push(`#BSUB -q ${quoteDirective(s.partition)}`);
  if (s.bank) lines.push(`#BSUB -P ${quoteDirective(s.bank)}`);
  if (ctx.gpusPerNode > 0) lines.push(`#BSUB -gpu ${quoteDirective(`num=${ctx.gpusPerNode}`)}`);
  lines.push(`#BSUB -o ${quoteDirective(ctx.outputFile)}`);
  return lines;
}

export interface LsfAdapterOptions {
  /** CSM only: jsrun (IBM CSM) or lrun (LLNL's wrapper around it). */
  launcher?: LsfLauncher;
  /** Which LSF (default csm, what themis rendered for before the choice existed). */
  flavor?: LsfFlavor;
}

/**
 * The LSF adapter for one flavour. CSM: `#BSUB -nnodes`, steps through `jsrun` (or `lrun`).
 * Classic: `#BSUB -n SLOTS -R "span[ptile=CORES]"`, steps on other hosts through `blaunch -z`,
 * and `bjobs -a -w` for job states (OpenLava has no `bjobs -o`).
 */
export function makeLsfAdapter(options: LsfAdapterOptions = {}): SchedulerAdapter {
  const { launcher = 'jsrun', flavor = 'csm' } = options;
  const classic = flavor === 'classic';
  // Always explicit, never left to the launcher's defaults (lrun places and binds tasks its own
  // way): `-c` states the cores each task holds (`coresPerTask`: 1 for a step that asked for 0).
  const resourceFlags = (step: StepLaunch) => ['-n', String(step.tasks), '-c', String(coresPerTask(step)), '-g', String(step.gpusPerTask)];
  return {
    name: 'lsf',
    detectCommand: 'bsub',
    outputJobIdPattern: '%J',
    ...(classic && { forgottenJobMessage: LSF_FORGOTTEN }),

    launchPrefix(step) {
      // Classic LSF has no step launcher of its own: an MPI's mpirun reads the job's hosts from LSF.
      if (classic) return step.tasks > 1 ? ['mpirun', '-n', String(step.tasks)] : [];
      return [launcher, ...resourceFlags(step)];
    },

    placedLaunch(step, placement) {
      if (classic) return ['blaunch', '-z', blaunchHosts(placement), ...blaunchGpuEnv(step, placement)];
      // jsrun cannot name hosts on its command line; -N for lrun at least keeps the node count.
      return launcher === 'lrun' ? ['lrun', '-N', String(placement.nodes.length), ...resourceFlags(step)] : ['jsrun', ...resourceFlags(step)];
    },

    nodeLauncher(node) {
      // blaunch starts a task on one of the job's hosts, inside the job (classic LSF and IBM LSF alike).
      return ['blaunch', '-z', node.name];
    },

    nodeCommand(node) {
      return ['blaunch', '-z', node.name];
    },

    // jsrun cannot name a host, and LSF batch scripts run on the launch node, where jsrun and
    // lrun belong: the script runs on the packer's node.
    onceLaunch() {
      return null;
    },

    scriptDirectives(ctx) {
      if (classic) return classicDirectives(ctx);
      const s = ctx.settings;
      const lines = [`#BSUB -J ${quoteDirective(`${s.name}-${ctx.allocation}`)}`, `#BSUB -nnodes ${s.nodes}`];
      if (s.walltime > 0) lines.push(`#BSUB -W ${wholeMinutes(s.walltime)}`);
      if (s.partition) lines.push(`#BSUB -q ${quoteDirective(s.partition)}`);
      if (s.bank) lines.push(`#BSUB -G ${quoteDirective(s.bank)}`);
      lines.push(`#BSUB -o ${quoteDirective(ctx.outputFile)}`);
      return lines;
    },

    submitCommand(scriptPath) {
      // bsub reads #BSUB directives only from a script given on stdin.
      return { argv: ['bsub'], stdinFile: scriptPath };
    },

    parseJobId(stdout) {
      const m = /Job <(\d+)> is submitted/.exec(stdout);
      return m ? m[1]! : null;
    },

    insideAllocation(env) {
      return Boolean(env.LSB_JOBID);
    },

    // IBM LSF writes LSB_DJOB_HOSTFILE; OpenLava does not: then LSB_MCPU_HOSTS, else LSB_HOSTS.
    discover(env): AllocationInfo | null {
      const jobId = env.LSB_JOBID;
      if (!jobId) return null;
      let pairs: [string, number][] = [];
      if (env.LSB_DJOB_HOSTFILE) {
        try {
          pairs = parseHostfile(fs.readFileSync(env.LSB_DJOB_HOSTFILE, 'utf8'));
        } catch {
          pairs = [];
        }
      }
      if (pairs.length === 0 && env.LSB_MCPU_HOSTS) pairs = parseMcpuHosts(env.LSB_MCPU_HOSTS);
      if (pairs.length === 0 && env.LSB_HOSTS) pairs = parseLsbHosts(env.LSB_HOSTS);
      const nodes = nodesFromSlots(pairs, flavor);
      const gpus = gpusFromEnv(env);
      for (const n of nodes) n.gpus = [...gpus];
      return { scheduler: 'lsf', jobId, nodes, endsAt: null, lsfFlavor: flavor };
    },

    jobStatesCommand(jobIds) {
      // OpenLava has no -o; -w keeps every column whole, -a lists jobs that ended a moment ago.
      if (classic) return { argv: ['bjobs', '-a', '-w', ...jobIds] };
      return { argv: ['bjobs', '-noheader', '-o', 'jobid stat', ...jobIds] };
    },

    parseJobStates(stdout, jobIds) {
      if (classic) return parseBjobsWide(stdout, jobIds);
      return parseIdStateLines(stdout, jobIds, { pending: PENDING, running: RUNNING }, /^\d+$/);
    },
  };
}

export const lsfAdapter: SchedulerAdapter = makeLsfAdapter({ launcher: 'jsrun' });
export const lsfLrunAdapter: SchedulerAdapter = makeLsfAdapter({ launcher: 'lrun' });
export const lsfClassicAdapter: SchedulerAdapter = makeLsfAdapter({ flavor: 'classic' });
