import os from 'node:os';
import type { AllocationInfo, JobState, SchedulerAdapter } from '../adapter.js';

/** GPU ids this machine offers: CUDA_VISIBLE_DEVICES when set (even empty = none), else `nvidia-smi -L`. */
export function localGpus(env: NodeJS.ProcessEnv, run: (argv: string[]) => string | null): string[] {
  const cvd = env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined)
    return cvd
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '' && x !== 'NoDevFiles' && x !== '-1');
  const listed = run(['nvidia-smi', '-L']) ?? '';
  const ids: string[] = [];
  for (const line of listed.split('\n')) {
    const m = /^GPU (\d+):/.exec(line.trim());
    if (m) ids.push(m[1]!);
  }
  return ids;
}

/** This machine, no scheduler: scripts run in the background, steps run directly. */
export const localAdapter: SchedulerAdapter = {
  name: 'local',
  detectCommand: null,
  outputJobIdPattern: '',
  submitDetached: true,
  // `ps -p` exits 1 when none of the pids is alive: that is an answer, not a failure.
  forgottenJobMessage: /(?:)/,

  launchPrefix() {
    return [];
  },

  placedLaunch() {
    return [];
  },

  onceLaunch() {
    return null;
  },

  scriptDirectives() {
    return [];
  },

  submitCommand(scriptPath) {
    return { argv: [scriptPath] };
  },

  parseJobId(stdout) {
    const m = /^\s*(\d+)\s*$/.exec(stdout);
    return m ? m[1]! : null;
  },

  // Never "inside": this machine is the fallback when no scheduler's allocation is found.
  insideAllocation() {
    return false;
  },

  discover(env, run): AllocationInfo {
    return {
      scheduler: 'local',
      jobId: null,
      nodes: [{ name: os.hostname(), cores: os.availableParallelism(), gpus: localGpus(env, run) }],
      endsAt: null,
    };
  },

  jobStatesCommand(jobIds) {
    // The "job id" of a local allocation is the pid of its script.
    return { argv: ['ps', '-o', 'pid=,stat=', '-p', jobIds.join(',')] };
  },

  parseJobStates(stdout, jobIds) {
    const alive = new Set<string>();
    for (const line of stdout.split('\n')) {
      const [pid, stat] = line.trim().split(/\s+/);
      if (pid && stat && !stat.startsWith('Z')) alive.add(pid);
    }
    const out = new Map<string, JobState>();
    for (const id of jobIds) out.set(id, alive.has(id) ? 'running' : 'gone');
    return out;
  },
};
