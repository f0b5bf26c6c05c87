import fs from 'node:fs';
import path from 'node:path';
import type { SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import type { SchedulerAdapter } from './adapter.js';
import { fluxAdapter } from './flux/index.js';
import { localAdapter } from './local/index.js';
import { lsfAdapter, lsfLrunAdapter } from './lsf/index.js';
import { slurmAdapter } from './slurm/index.js';

export type { SchedulerAdapter } from './adapter.js';
export const SCHEDULER_NAMES: readonly SchedulerName[] = ['slurm', 'lsf', 'flux', 'local'];

/** The adapter for a scheduler name; LSF launches with jsrun unless `lsfLauncher: 'lrun'`. */
export function getAdapter(name: SchedulerName, options: { lsfLauncher?: 'jsrun' | 'lrun' } = {}): SchedulerAdapter {
  switch (name) {
    case 'slurm':
      return slurmAdapter;
    case 'lsf':
      return options.lsfLauncher === 'lrun' ? lsfLrunAdapter : lsfAdapter;
    case 'flux':
      return fluxAdapter;
    case 'local':
      return localAdapter;
    default:
      throw new ThemisError('INPUT', `unknown scheduler ${JSON.stringify(name)}; choose one of ${SCHEDULER_NAMES.join(', ')}`);
  }
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
 * The scheduler to use when none is named: sbatch -> slurm, bsub -> lsf, flux -> flux on PATH,
 * else local. Looks at PATH only (runs nothing), so it cannot crash or hang.
 */
export function detectScheduler(env: NodeJS.ProcessEnv = process.env): SchedulerName {
  if (onPath('sbatch', env)) return 'slurm';
  if (onPath('bsub', env)) return 'lsf';
  if (onPath('flux', env)) return 'flux';
  return 'local';
}

export function isSchedulerName(value: string): value is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(value);
}
