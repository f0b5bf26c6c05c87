import fs from 'node:fs';
import path from 'node:path';
import type { SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import type { AllocationInfo, SchedulerAdapter } from './adapter.js';
import { fluxAdapter } from './flux/index.js';
import { localAdapter } from './local/index.js';
import { lsfAdapter, lsfLrunAdapter } from './lsf/index.js';
import { slurmAdapter } from './slurm/index.js';

export type { SchedulerAdapter } from './adapter.js';

/**
 * The registry: one adapter per scheduler, in detection order (`gen` picks the first whose
 * `detectCommand` is on PATH; the packer discovers with the first whose allocation it is in).
 * Local is last: the fallback. Adding a scheduler is one line here (see `adapter.ts`).
 */
const ADAPTERS: Readonly<Record<SchedulerName, SchedulerAdapter>> = {
  slurm: slurmAdapter,
  lsf: lsfAdapter,
  flux: fluxAdapter,
  local: localAdapter,
};

export const SCHEDULER_NAMES: readonly SchedulerName[] = Object.keys(ADAPTERS) as SchedulerName[];

/** The adapter for a scheduler name; LSF launches with jsrun unless `lsfLauncher: 'lrun'`. */
export function getAdapter(name: SchedulerName, options: { lsfLauncher?: 'jsrun' | 'lrun' } = {}): SchedulerAdapter {
  if (!isSchedulerName(name)) {
    throw new ThemisError('INPUT', `unknown scheduler ${JSON.stringify(name)}; choose one of ${SCHEDULER_NAMES.join(', ')}`);
  }
  return name === 'lsf' && options.lsfLauncher === 'lrun' ? lsfLrunAdapter : ADAPTERS[name];
}

/** Is `name` an executable file in one of PATH's directories? Never throws. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      if (fs.statSync(path.join(dir, name)).isFile()) return true;
    } catch {
      // not here; keep looking
    }
  }
  return false;
}

/**
 * The scheduler to use when none is named: the first adapter whose command is on PATH (sbatch ->
 * slurm, bsub -> lsf, flux -> flux), else local. Looks at PATH only (runs nothing), so it cannot
 * crash or hang.
 */
export function detectScheduler(env: NodeJS.ProcessEnv = process.env): SchedulerName {
  for (const adapter of Object.values(ADAPTERS)) {
    if (adapter.detectCommand !== null && onPath(adapter.detectCommand, env)) return adapter.name;
  }
  return 'local';
}

/**
 * The allocation this process runs in: the first adapter (`preferred` first, then registry order)
 * whose environment says we are inside it and whose discovery finds it; else this machine.
 * `run` answers the scheduler queries discovery needs (`readSchedulerOutput` in `commands.ts`).
 */
export function discoverAllocation(env: NodeJS.ProcessEnv, preferred: SchedulerName | null, run: (argv: string[]) => string | null): AllocationInfo {
  const order = new Set<SchedulerName>(preferred ? [preferred, ...SCHEDULER_NAMES] : SCHEDULER_NAMES);
  for (const name of order) {
    // Only ask a scheduler whose environment is present: discovery outside it may run commands.
    if (!ADAPTERS[name].insideAllocation(env)) continue;
    const info = ADAPTERS[name].discover(env, run);
    if (info) return info;
  }
  return localAdapter.discover(env, run)!;
}

export function isSchedulerName(value: string): value is SchedulerName {
  return Object.hasOwn(ADAPTERS, value);
}
