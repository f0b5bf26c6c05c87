/**
 * What a step asks for, and what its numbers mean: the one home of the triple (tasks, cores per
 * task, GPUs per task). The pool, the renderer's allocation planning, the launch environment and
 * every scheduler adapter read a step's cores through `coresPerTask`/`coresRequested` below, so
 * `cores_per_task = 0` means the same thing everywhere.
 */
export interface StepResources {
  /** Tasks (processes) the step starts; >= 1. */
  tasks: number;
  /**
   * Cores for each task. 0 = no binding request: the step takes the scheduler's default of one
   * core per task, and the packer holds one core per task for it (see `coresPerTask`).
   */
  coresPerTask: number;
  /** GPUs for each task; 0 = none. */
  gpusPerTask: number;
}

/** What a launcher's argv is built from: the step's resources and its time limit. */
export interface StepLaunch extends StepResources {
  /** Minutes; fractions allowed; 0 = no limit. */
  timeout: number;
}

/**
 * Cores one task of the step holds (and is bound to): `coresPerTask`, or 1 for 0 (no binding
 * request: the scheduler's default of one core per task). The pool reserves this many per task,
 * the launcher sets OMP_NUM_THREADS to it, and adapters that always state a core count pass it.
 * @example coresPerTask({ tasks: 4, coresPerTask: 0, gpusPerTask: 0 }) // 1
 */
export function coresPerTask(r: Pick<StepResources, 'coresPerTask'>): number {
  return Math.max(1, r.coresPerTask);
}

/**
 * The step's own core request, or null when it made none (`coresPerTask` 0). A launcher whose
 * default is one core per task (srun) may leave its flag out then; the result is the same.
 */
export function coresRequested(r: Pick<StepResources, 'coresPerTask'>): number | null {
  return r.coresPerTask > 0 ? r.coresPerTask : null;
}

/** Cores the step holds while it runs: tasks x `coresPerTask(r)`. */
export function coresHeld(r: Pick<StepResources, 'tasks' | 'coresPerTask'>): number {
  return r.tasks * coresPerTask(r);
}

/** GPUs the step holds while it runs: tasks x GPUs per task. */
export function gpusHeld(r: Pick<StepResources, 'tasks' | 'gpusPerTask'>): number {
  return r.tasks * r.gpusPerTask;
}

/** Cores a run holds at its peak (its steps run one after another); 0 for no steps. */
export function peakCores(steps: readonly Pick<StepResources, 'tasks' | 'coresPerTask'>[]): number {
  let max = 0;
  for (const s of steps) max = Math.max(max, coresHeld(s));
  return max;
}

/** Just the triple of a step (or of anything carrying it), as the packer queues it. */
export function resourcesOf(r: StepResources): StepResources {
  return { tasks: r.tasks, coresPerTask: r.coresPerTask, gpusPerTask: r.gpusPerTask };
}

/** True when two steps ask for the same resources (as written: 0 and 1 cores per task differ). */
export function sameResources(a: StepResources, b: StepResources): boolean {
  return a.tasks === b.tasks && a.coresPerTask === b.coresPerTask && a.gpusPerTask === b.gpusPerTask;
}
