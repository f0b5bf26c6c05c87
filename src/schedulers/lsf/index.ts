import fs from 'node:fs';
import { coresPerTask, type StepLaunch } from '../../model/resources.js';
import type { AllocationInfo, NodeInfo, SchedulerAdapter } from '../adapter.js';
import { quoteDirective } from '../../model/quote.js';
import { parseIdStateLines } from '../job-states.js';

export type LsfLauncher = 'jsrun' | 'lrun';

const wholeMinutes = (m: number) => Math.ceil(m);

/** bjobs STAT values. */
const PENDING = new Set(['PEND', 'PSUSP', 'WAIT']);
const RUNNING = new Set(['RUN', 'USUSP', 'SSUSP', 'PROV']);

/** Count slots per host, in first-seen order. The first host is the launch node: dropped when others exist. */
function nodesFromSlots(pairs: [string, number][]): NodeInfo[] {
  const counts = new Map<string, number>();
  for (const [host, n] of pairs) counts.set(host, (counts.get(host) ?? 0) + n);
  let hosts = [...counts.keys()];
  if (hosts.length > 1) hosts = hosts.slice(1);
  return hosts.map((name) => ({ name, cores: counts.get(name)!, gpus: [] }));
}

/** `LSB_MCPU_HOSTS`: "host1 n1 host2 n2 …". */
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

/** The LSF adapter; `launcher` picks jsrun (IBM CSM) or lrun (LLNL's wrapper around it). */
export function makeLsfAdapter(launcher: LsfLauncher = 'jsrun'): SchedulerAdapter {
  // Always explicit, never left to the launcher's defaults (lrun places and binds tasks its own
  // way): `-c` states the cores each task holds (`coresPerTask`: 1 for a step that asked for 0).
  const resourceFlags = (step: StepLaunch) => ['-n', String(step.tasks), '-c', String(coresPerTask(step)), '-g', String(step.gpusPerTask)];
  return {
    name: 'lsf',
    detectCommand: 'bsub',
    outputJobIdPattern: '%J',

    launchPrefix(step) {
      return [launcher, ...resourceFlags(step)];
    },

    placedLaunch(step, placement) {
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
      const nodes = nodesFromSlots(pairs);
      const gpus = gpusFromEnv(env);
      for (const n of nodes) n.gpus = [...gpus];
      return { scheduler: 'lsf', jobId, nodes, endsAt: null };
    },

    jobStatesCommand(jobIds) {
      return { argv: ['bjobs', '-noheader', '-o', 'jobid stat', ...jobIds] };
    },

    parseJobStates(stdout, jobIds) {
      return parseIdStateLines(stdout, jobIds, { pending: PENDING, running: RUNNING }, /^\d+$/);
    },
  };
}

export const lsfAdapter: SchedulerAdapter = makeLsfAdapter('jsrun');
export const lsfLrunAdapter: SchedulerAdapter = makeLsfAdapter('lrun');
