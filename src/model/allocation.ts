/**
 * The scheduler names and the allocation settings `gen` records: plain types shared by the
 * schedulers (below the store) and the records on disk (`src/store/records.ts` re-exports them).
 */

/** Every scheduler themis drives; `src/schedulers/index.ts` has one adapter for each. */
export type SchedulerName = 'slurm' | 'lsf' | 'flux' | 'local';

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
}
