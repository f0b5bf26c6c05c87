import path from 'node:path';
import { quoteArgv } from '../model/quote.js';
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

/** What decides how steps start: fixed for the packer's life. */
export interface LaunchSetup {
  mode: LauncherMode;
  scheduler: SchedulerName;
  jobId: string | null;
  /** Index of the node the packer runs on (its own launcher forks there). */
  ownNode: number;
  bind: boolean;
  /** The scheduler can start a launcher on each other node of the allocation (`nodeLauncher`). */
  nodeLaunchers: boolean;
  /** LSF only: the flavour discovery found (classic launches through blaunch); default csm. */
  lsfFlavor?: LsfFlavor;
}

/**
 * Where a step starts: forked by the launcher of one node (the packer's own, or that node's
 * long-lived launcher), or through the scheduler's launcher (`srun --exact`, `jsrun`, `flux run`),
 * itself started by the packer's own launcher.
 */
export type Route = { kind: 'node'; node: number } | { kind: 'scheduler' };

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
 * The route of a step, pure. A step on one node that is one task is forked by that node's
 * launcher: no job step per run, so no `srun` cost (~0.2 s and a controller round trip each) and
 * no run into Slurm's step limit. A batch-script step runs exactly once, whatever its tasks (its
 * script starts them through THEMIS_LAUNCH): forked by the launcher of its first placed node, or,
 * without launchers on other nodes, as one task there through the scheduler (`onceLaunch`), or
 * else on the packer's node. Steps whose tasks must be started together (several tasks, or tasks on
 * several nodes: MPI) go through the scheduler's launcher. `--launcher direct` forks everything on
 * the packer's node; a named launcher (`--launcher srun`, …) starts every other step through it.
 */
export function routeOf(setup: LaunchSetup, slot: Slot, step: StepSpec): Route {
  const own: Route = { kind: 'node', node: setup.ownNode };
  if (setup.mode === 'direct' || setup.scheduler === 'local') return setup.mode === 'auto' || setup.mode === 'direct' ? own : { kind: 'scheduler' };
  const first = slot.nodes[0]!.node;
  if (step.batchScript) {
    if (first === setup.ownNode) return own;
    if (setup.nodeLaunchers) return { kind: 'node', node: first };
    // Whether the scheduler has a one-task launcher at all does not depend on the node's name.
    return onceLauncher(setup, step, '') !== null ? { kind: 'scheduler' } : own;
  }
  if (setup.mode !== 'auto' || slot.nodes.length !== 1 || step.tasks !== 1) return { kind: 'scheduler' };
  // Without launchers on other nodes, a step there goes through the scheduler, one job step each.
  return first === setup.ownNode || setup.nodeLaunchers ? { kind: 'node', node: first } : { kind: 'scheduler' };
}

/** The scheduler's one-task launcher on node `name` for a batch-script step, or null when it has none. */
function onceLauncher(setup: LaunchSetup, step: StepSpec, name: string): string[] | null {
  return forcedAdapter(setup.mode, setup.scheduler, setup.lsfFlavor).onceLaunch(name, step, setup.jobId);
}

/** The GPU variables for a step given `gpus` (ids as the scheduler names them); empty for a CPU-only step. */
function gpuEnv(gpus: readonly string[]): Record<string, string> {
  const ids = gpus.join(',');
  return { CUDA_VISIBLE_DEVICES: ids, ROCR_VISIBLE_DEVICES: ids, HIP_VISIBLE_DEVICES: ids };
}

/** The argv and extra environment for one step placed in `slot` and started by `route`. */
export function launchArgv(setup: LaunchSetup, pool: PoolState, slot: Slot, step: StepSpec, runDir: string, route: Route): { argv: string[]; env: Record<string, string> } {
  // A batch-script step runs the copy `gen` parsed into the run directory.
  const program = step.batchScript ? [path.join(runDir, path.basename(step.args[0]!)), ...step.args.slice(1)] : [...step.args];
  const env: Record<string, string> = { OMP_NUM_THREADS: String(coresPerTask(step)) };
  const adapter = forcedAdapter(setup.mode, setup.scheduler, setup.lsfFlavor);
  // The script's %%themis_launch%% starts its tasks on exactly the nodes and cores placed here.
  if (step.batchScript) env[ENV.launch] = quoteArgv(adapter.placedLaunch(step, toPlacement(pool, slot), setup.jobId));
  const first = slot.nodes[0]!;
  const firstNode = pool.nodes[first.node]!;
  if (route.kind === 'node') {
    // What the step holds on the node that forks it (nothing, for a batch script run on the
    // packer's node because its own node could not be reached).
    const part = slot.nodes.find((p) => p.node === route.node) ?? null;
    const node = pool.nodes[route.node]!;
    if (node.gpus.length > 0) Object.assign(env, gpuEnv(part ? part.gpus.map((g) => node.gpus[g]!) : []));
    const bind = part && setup.bind && part.cores.length > 0 ? ['taskset', '-c', part.cores.join(',')] : [];
    return { argv: [...bind, ...program], env };
  }
  if (step.batchScript) {
    // One task on the first placed node. The scheduler sets the GPU variables of a task itself
    // (Slurm: every GPU of the node for an --overlap step): env puts back the ones placed here.
    const once = onceLauncher(setup, step, firstNode.name)!;
    const gpus = firstNode.gpus.length > 0 ? Object.entries(gpuEnv(first.gpus.map((g) => firstNode.gpus[g]!))).map(([k, v]) => `${k}=${v}`) : [];
    return { argv: [...once, ...(gpus.length > 0 ? ['env', ...gpus] : []), ...program], env };
  }
  const prefix = adapter.placedLaunch(step, toPlacement(pool, slot), setup.jobId);
  return { argv: [...prefix, ...program], env };
}

/** The launcher's request for one step: argv, cwd, environment, log, timeout. */
export function spawnRequest(
  setup: LaunchSetup,
  pool: PoolState,
  slot: Slot,
  r: { key: string; runId: number; runDir: string; setupDir: string; stepIndex: number; attempt: number; step: StepSpec; route: Route },
): SpawnRequest {
  const { argv, env } = launchArgv(setup, pool, slot, r.step, r.runDir, r.route);
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
