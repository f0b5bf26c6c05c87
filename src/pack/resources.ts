import os from 'node:os';
import { LSF_FLAVORS, type LsfFlavor, type SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import type { AllocationInfo, NodeInfo } from '../schedulers/adapter.js';
import { readSchedulerOutput } from '../schedulers/commands.js';
import { detectLsfFlavor, discoverAllocation } from '../schedulers/index.js';
import { ENV } from '../store/layout.js';

export interface ResourceOverrides {
  /** Node names (comma list or count); overrides what the scheduler says. */
  nodes?: string | number;
  /** Cores per node. */
  cores?: number;
  /** GPUs per node (ids 0..n-1, unless the scheduler named them). */
  gpus?: number;
}

/**
 * What this packer may use: the scheduler's allocation (the preferred scheduler's first, then
 * Slurm, LSF, Flux as the environment hints; else this machine), with `--nodes/--cores/--gpus`
 * laid over it so a packer runs anywhere with resources declared by hand.
 */
export function discoverResources(
  env: NodeJS.ProcessEnv,
  overrides: ResourceOverrides = {},
  preferred: SchedulerName | null = null,
  run: (argv: string[]) => string | null = readSchedulerOutput,
): AllocationInfo {
  return applyOverrides(discoverAllocation(env, preferred, run, { lsfFlavor: packerLsfFlavor(env) }), overrides);
}

/**
 * The LSF flavour a packer reads its allocation as: what the batch script says (`THEMIS_LSF_FLAVOR`,
 * set by the classic script gen renders), else what PATH shows (`jsrun`/`lrun`: CSM, else classic).
 */
export function packerLsfFlavor(env: NodeJS.ProcessEnv): LsfFlavor {
  const said = env[ENV.lsfFlavor];
  if (said && LSF_FLAVORS.includes(said as LsfFlavor)) return said as LsfFlavor;
  return detectLsfFlavor(env).flavor;
}

export function applyOverrides(info: AllocationInfo, o: ResourceOverrides): AllocationInfo {
  let nodes: NodeInfo[] = info.nodes.map((n) => ({ ...n, gpus: [...n.gpus] }));
  if (o.nodes !== undefined) {
    if (typeof o.nodes === 'number' || /^\d+$/.test(String(o.nodes))) {
      const count = Number(o.nodes);
      if (!Number.isInteger(count) || count < 1) throw new ThemisError('USAGE', `--nodes ${o.nodes}: give a node count >= 1 or a comma list of names`);
      const base = nodes[0] ?? { name: os.hostname(), cores: os.availableParallelism(), gpus: [] };
      nodes = Array.from({ length: count }, (_, i) => nodes[i] ?? { ...base, name: i === 0 ? base.name : `${base.name}-${i}`, gpus: [...base.gpus] });
    } else {
      const names = String(o.nodes)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const base = nodes[0] ?? { name: os.hostname(), cores: os.availableParallelism(), gpus: [] };
      nodes = names.map((name, i) => ({ ...(nodes[i] ?? base), name, gpus: [...(nodes[i] ?? base).gpus] }));
    }
  }
  if (o.cores !== undefined) {
    if (!Number.isInteger(o.cores) || o.cores < 1) throw new ThemisError('USAGE', `--cores ${o.cores}: give a whole number of cores per node >= 1`);
    nodes = nodes.map((n) => ({ ...n, cores: o.cores! }));
  }
  if (o.gpus !== undefined) {
    if (!Number.isInteger(o.gpus) || o.gpus < 0) throw new ThemisError('USAGE', `--gpus ${o.gpus}: give a whole number of GPUs per node >= 0`);
    nodes = nodes.map((n) => ({ ...n, gpus: n.gpus.length >= o.gpus! ? n.gpus.slice(0, o.gpus) : Array.from({ length: o.gpus! }, (_, i) => String(i)) }));
  }
  return { ...info, nodes };
}

/** "2 nodes x 32 cores, 4 GPUs each" for logs. */
export function describeResources(info: AllocationInfo): string {
  const n = info.nodes;
  const same = n.every((x) => x.cores === n[0]!.cores && x.gpus.length === n[0]!.gpus.length);
  const gpuText = (g: number) => (g > 0 ? `, ${g} GPU${g === 1 ? '' : 's'}` : '');
  if (same && n.length > 0) return `${n.length} node${n.length === 1 ? '' : 's'} (${n.map((x) => x.name).join(',')}) x ${n[0]!.cores} cores${gpuText(n[0]!.gpus.length)}${n.length > 1 ? ' each' : ''}`;
  return n.map((x) => `${x.name}: ${x.cores} cores${gpuText(x.gpus.length)}`).join('; ');
}
