/**
 * Allocations: the scheduler names and the allocation settings `gen` records (plain types shared
 * by the schedulers, below the store, and the records on disk; `src/store/records.ts` re-exports
 * them), and one check of those settings for every way they are set (`themis gen`'s flags,
 * `Themis.create` and `executeAlloc`'s options): the same rules and the same messages; only the
 * name each caller's users know a field by differs.
 */

/** Every scheduler themis drives; `src/schedulers/index.ts` has one adapter for each. */
export type SchedulerName = 'slurm' | 'lsf' | 'flux' | 'local';

/**
 * The two kinds of LSF: `classic` (most LSF sites, OpenLava: a job asks for slots with `bsub -n`
 * and `span[ptile=…]`, and starts processes on its other hosts with `blaunch`) and `csm` (IBM LSF
 * with CSM, Sierra/Lassen class: `bsub -nnodes`, `jsrun`/`lrun`). Classic LSF refuses `-nnodes`.
 */
export type LsfFlavor = 'classic' | 'csm';
export const LSF_FLAVORS: readonly LsfFlavor[] = ['classic', 'csm'];

/** Allocation settings rendered into batch scripts (`gen`'s -N, -t, -p, -b, -m, …). */
export interface AllocationSettings {
  nodes: number;
  /** Minutes; 0 = scheduler default. */
  walltime: number;
  partition: string | null;
  bank: string | null;
  name: string;
  allocations: number;
  repeats: number;
  /** Minutes before the end of the allocation when no new run starts. */
  earlyStop: number;
  /** GPUs per node to ask for; null = derived from what the runs need. */
  gpusPerNode: number | null;
  /** Most steps each allocation's packer runs at once (`executeAlloc({maxConcurrency})`); null = fill the cores. */
  maxConcurrency?: number | null;
  /** A user's own Handlebars template, absolute, or null for the built-in one. */
  template: string | null;
  /**
   * LSF only: which LSF the scripts are for. `gen` always records it (given, or detected);
   * absent or null in an older ensemble means `csm`, the one LSF themis rendered for before.
   */
  lsfFlavor?: LsfFlavor | null;
  /** Classic LSF only: the cores (job slots) of one node, for `#BSUB -n` and `span[ptile=…]`. */
  coresPerNode?: number | null;
}

/** The allocation settings a user sets (the fields of `AllocationSettings` that are checked). */
export interface AllocationInput {
  nodes: unknown;
  walltime: unknown;
  name: unknown;
  repeats: unknown;
  earlyStop: unknown;
  allocations?: unknown;
  gpusPerNode?: unknown;
  maxConcurrency?: unknown;
  lsfFlavor?: unknown;
  coresPerNode?: unknown;
}

export type AllocationField = keyof AllocationInput;

/** What `themis gen` calls each field. */
export const GEN_ALLOCATION_FLAGS: Readonly<Record<AllocationField, string>> = {
  nodes: '--nodes',
  walltime: '--walltime',
  name: '--name',
  repeats: '--repeats',
  earlyStop: '--early-stop',
  allocations: '--allocations',
  gpusPerNode: '--gpus-per-node',
  maxConcurrency: 'maxConcurrency',
  lsfFlavor: '--lsf-flavor',
  coresPerNode: '--cores-per-node',
};

/** What `executeAlloc({...})` calls each field (the seed's keyword arguments). */
export const EXECUTE_ALLOC_OPTIONS: Readonly<Record<AllocationField, string>> = {
  nodes: 'nodes',
  walltime: 'timeout',
  name: 'name',
  repeats: 'repeats',
  earlyStop: 'earlyStop',
  allocations: 'allocations',
  gpusPerNode: 'gpusPerNode',
  maxConcurrency: 'maxConcurrency',
  lsfFlavor: 'lsfFlavor',
  coresPerNode: 'coresPerNode',
};

const isInt = (v: unknown, min: number) => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isMinutes = (v: unknown) => typeof v === 'number' && v >= 0;
const got = (v: unknown) => `got ${JSON.stringify(v)}`;

/**
 * Every problem with the settings, as "name: what is wrong, got X; what to give" strings (empty =
 * valid). Optional fields are checked only when set (null = derived / no cap). With `scheduler`
 * the settings that scheduler needs are checked too (classic LSF needs the cores per node).
 * @example allocationProblems({ ...settings, nodes: 0 }, GEN_ALLOCATION_FLAGS)
 *   // ['--nodes: must be an integer >= 1, got 0; give the nodes each allocation asks for']
 */
export function allocationProblems(a: AllocationInput, names: Readonly<Record<AllocationField, string>>, scheduler?: SchedulerName): string[] {
  const problems: string[] = [];
  const say = (field: AllocationField, rule: string, fix: string) => problems.push(`${names[field]}: ${rule}, ${got(a[field])}; ${fix}`);
  if (!isInt(a.nodes, 1)) say('nodes', 'must be an integer >= 1', 'give the nodes each allocation asks for');
  if (a.allocations !== undefined && !isInt(a.allocations, 1)) say('allocations', 'must be an integer >= 1', 'give how many batch scripts to split the runs over');
  if (!isInt(a.repeats, 0)) say('repeats', 'must be an integer >= 0', 'give how often an allocation that ends with work left is resubmitted (0 = never)');
  if (!isMinutes(a.walltime)) say('walltime', 'must be minutes >= 0', "give each allocation's time limit (0 = the scheduler's default)");
  if (!isMinutes(a.earlyStop)) say('earlyStop', 'must be minutes >= 0', 'give how long before the end of an allocation no new run starts');
  if (a.gpusPerNode != null && !isInt(a.gpusPerNode, 0)) say('gpusPerNode', 'must be an integer >= 0', 'give the GPUs per node to ask for, or leave it out to ask for what the runs need');
  if (a.maxConcurrency != null && !isInt(a.maxConcurrency, 1)) say('maxConcurrency', 'must be an integer >= 1', 'give the most steps each allocation runs at once, or null to fill its cores');
  if (typeof a.name !== 'string' || a.name.trim() === '') say('name', 'the job name must not be empty', 'give a name, or leave it out for "themis"');
  if (a.lsfFlavor != null && !LSF_FLAVORS.includes(a.lsfFlavor as LsfFlavor))
    say('lsfFlavor', `must be one of ${LSF_FLAVORS.join(', ')}`, 'give classic (bsub -n, blaunch) or csm (IBM CSM: bsub -nnodes, jsrun)');
  if (a.coresPerNode != null && !isInt(a.coresPerNode, 1)) say('coresPerNode', 'must be an integer >= 1', 'give the cores (job slots) of one node');
  if (scheduler === 'lsf' && a.lsfFlavor === 'classic' && a.coresPerNode == null) {
    say('coresPerNode', 'classic LSF counts job slots, not nodes, so it needs the cores of one node', `give them (\`bhosts\` shows each host's MAX slots), or ${names.lsfFlavor} csm for IBM CSM`);
  }
  return problems;
}
