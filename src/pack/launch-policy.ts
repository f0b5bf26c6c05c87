import path from 'node:path';
import type { LsfFlavor } from '../model/allocation.js';
import { coresPerTask } from '../model/resources.js';
import type { StepSpec } from '../model/step.js';
import type { SchedulerAdapter } from '../schedulers/adapter.js';
import { getAdapter } from '../schedulers/index.js';
import type { SchedulerName } from '../store/records.js';
import { ENV, LOG_SPARE, RUN_LOG, RUN_META_DIR } from '../store/layout.js';
import type { SpawnRequest } from './launcher-protocol.js';
import { toPlacement, type PoolState, type Slot } from './pool.js';

export type LauncherMode = 'auto' | 'direct' | 'srun' | 'jsrun' | 'lrun' | 'flux';
export const LAUNCHER_MODES: readonly LauncherMode[] = ['auto', 'direct', 'srun', 'jsrun', 'lrun', 'flux'];

export interface LaunchSetup {
  mode: LauncherMode;
  scheduler: SchedulerName;
  jobId: string | null;
  /** Index of the node the packer runs on (steps there start directly). */
  ownNode: number;
  bind: boolean;
  /** Steps launched through the scheduler so far (Slurm caps them per job). */
  schedulerSteps: number;
  /** LSF only: the flavour discovery found (classic launches through blaunch); default csm. */
  lsfFlavor?: LsfFlavor;
}

function forcedAdapter(mode: LauncherMode, scheduler: SchedulerName, lsfFlavor?: LsfFlavor): SchedulerAdapter {
  switch (mode) {
    case 'srun':
      return getAdapter('slurm');
    case 'jsrun':
      return getAdapter('lsf');
    case 'lrun':
      return getAdapter('lsf', { lsfLauncher: 'lrun' });
    case 'flux':
      return getAdapter('flux');
    default:
      return getAdapter(scheduler, { lsfFlavor });
  }
}

/**
 * Direct launch (a plain fork by the launcher child) for steps on the packer's own node that are
 * one task, or batch scripts that launch their own tasks; the scheduler's launcher (srun --exact,
 * jsrun, flux run) for steps on other nodes or multi-task steps. Each srun costs ~0.2 s and loads
 * the controller, and Slurm caps steps per job, so direct is preferred wherever it is equivalent.
 */
export function isDirect(setup: LaunchSetup, slot: Slot, step: StepSpec): boolean {
  if (setup.mode === 'direct' || setup.scheduler === 'local') return setup.mode === 'auto' || setup.mode === 'direct';
  if (setup.mode !== 'auto') return false;
  const onOwnNode = slot.nodes.length === 1 && slot.nodes[0]!.node === setup.ownNode;
  return onOwnNode && (step.tasks === 1 || step.batchScript);
}

/** The argv and extra environment for one step placed in `slot`. */
export function launchArgv(setup: LaunchSetup, pool: PoolState, slot: Slot, step: StepSpec, runDir: string): { argv: string[]; env: Record<string, string>; direct: boolean } {
  // A batch-script step runs the copy `gen` parsed into the run directory.
  const program = step.batchScript ? [path.join(runDir, path.basename(step.args[0]!)), ...step.args.slice(1)] : [...step.args];
  const env: Record<string, string> = { OMP_NUM_THREADS: String(coresPerTask(step)) };
  const direct = isDirect(setup, slot, step);
  if (direct) {
    const part = slot.nodes[0]!;
    const node = pool.nodes[part.node]!;
    if (node.gpus.length > 0) {
      const ids = part.gpus.map((g) => node.gpus[g]!).join(',');
      env.CUDA_VISIBLE_DEVICES = ids;
      env.ROCR_VISIBLE_DEVICES = ids;
      env.HIP_VISIBLE_DEVICES = ids;
    }
    const bind = setup.bind && part.cores.length > 0 ? ['taskset', '-c', part.cores.join(',')] : [];
    return { argv: [...bind, ...program], env, direct };
  }
  setup.schedulerSteps++;
  const adapter = forcedAdapter(setup.mode, setup.scheduler, setup.lsfFlavor);
  const prefix = adapter.placedLaunch(step, toPlacement(pool, slot), setup.jobId);
  return { argv: [...prefix, ...program], env, direct };
}

/** The launcher's request for one step: argv, cwd, environment, log, timeout. */
export function spawnRequest(
  setup: LaunchSetup,
  pool: PoolState,
  slot: Slot,
  r: { key: string; runId: number; runDir: string; setupDir: string; stepIndex: number; attempt: number; step: StepSpec },
): SpawnRequest {
  const { argv, env } = launchArgv(setup, pool, slot, r.step, r.runDir);
  // Run directories are absolute and normalized (the index resolves them): `.` needs no resolve.
  const cwd = r.step.cwd === '.' || r.step.cwd === '' ? r.runDir : path.resolve(r.runDir, r.step.cwd);
  return {
    key: r.key,
    runId: r.runId,
    step: r.stepIndex,
    attempt: r.attempt,
    argv,
    cwd,
    env: { ...env, [ENV.runId]: String(r.runId), [ENV.runDir]: r.runDir, [ENV.setupDir]: r.setupDir, [ENV.step]: String(r.stepIndex) },
    logName: RUN_LOG,
    // gen's spare log sits in the run's own .themis: usable when the step's log goes in the run dir.
    logSpare: cwd === r.runDir || cwd === path.resolve(r.runDir) ? `${r.runDir}/${RUN_META_DIR}/${LOG_SPARE}` : '',
    timeoutMs: Math.round(r.step.timeout * 60_000),
  };
}
