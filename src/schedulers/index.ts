import fs from 'node:fs';
import path from 'node:path';
import type { LsfFlavor, SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import type { AllocationInfo, SchedulerAdapter } from './adapter.js';
import { fluxAdapter } from './flux/index.js';
import { localAdapter } from './local/index.js';
import { lsfAdapter, lsfClassicAdapter, lsfLrunAdapter } from './lsf/index.js';
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

/** Which variant of an adapter: LSF's flavour (default csm) and, under CSM, its launcher (default jsrun). */
export interface AdapterOptions {
  lsfFlavor?: LsfFlavor | null;
  lsfLauncher?: 'jsrun' | 'lrun';
}

/** The adapter for a scheduler name; for LSF the flavour's (classic: bsub -n, blaunch; csm: jsrun, or lrun). */
export function getAdapter(name: SchedulerName, options: AdapterOptions = {}): SchedulerAdapter {
  if (!isSchedulerName(name)) {
    throw new ThemisError('INPUT', `unknown scheduler ${JSON.stringify(name)}; choose one of ${SCHEDULER_NAMES.join(', ')}`);
  }
  if (name !== 'lsf') return ADAPTERS[name];
  if (options.lsfFlavor === 'classic') return lsfClassicAdapter;
  return options.lsfLauncher === 'lrun' ? lsfLrunAdapter : lsfAdapter;
}

/** The adapter an ensemble's allocation settings call for (`ensemble.json`'s scheduler and LSF flavour). */
export function adapterFor(scheduler: SchedulerName, allocation: { lsfFlavor?: LsfFlavor | null }): SchedulerAdapter {
  return getAdapter(scheduler, { lsfFlavor: allocation.lsfFlavor ?? null });
}

/** The commands whose presence on PATH means LSF with IBM CSM. */
const CSM_COMMANDS = ['jsrun', 'lrun'];

/**
 * Which LSF this is, when nobody said: IBM CSM where `jsrun` or `lrun` is on PATH (CSM's launchers;
 * classic LSF has neither), else classic. Looks at PATH only, like `detectScheduler`.
 */
export function detectLsfFlavor(env: NodeJS.ProcessEnv = process.env): { flavor: LsfFlavor; why: string } {
  const found = CSM_COMMANDS.find((c) => onPath(c, env));
  return found ? { flavor: 'csm', why: `\`${found}\` is on PATH` } : { flavor: 'classic', why: `no ${CSM_COMMANDS.map((c) => `\`${c}\``).join(' or ')} on PATH` };
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
 * `run` answers the scheduler queries discovery needs (`readSchedulerOutput` in `commands.ts`);
 * `options` picks the LSF flavour to read an LSF allocation as (default csm).
 */
export function discoverAllocation(env: NodeJS.ProcessEnv, preferred: SchedulerName | null, run: (argv: string[]) => string | null, options: AdapterOptions = {}): AllocationInfo {
  const order = new Set<SchedulerName>(preferred ? [preferred, ...SCHEDULER_NAMES] : SCHEDULER_NAMES);
  for (const name of order) {
    // Only ask a scheduler whose environment is present: discovery outside it may run commands.
    if (!ADAPTERS[name].insideAllocation(env)) continue;
    const info = getAdapter(name, options).discover(env, run);
    if (info) return info;
  }
  return localAdapter.discover(env, run)!;
}

export function isSchedulerName(value: string): value is SchedulerName {
  return Object.hasOwn(ADAPTERS, value);
}
