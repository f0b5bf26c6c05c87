import type { AllocationSettings, SchedulerName } from '../model/allocation.js';

/** The resources a step asks for (a subset of StepSpec). */
export interface StepResources {
  tasks: number;
  coresPerTask: number;
  gpusPerTask: number;
  /** Minutes; 0 = none. */
  timeout: number;
}

/** One node of an allocation as the packer sees it. */
export interface NodeInfo {
  name: string;
  cores: number;
  /** GPU ids on this node as the scheduler names them (e.g. ["0","1"]); length = GPU count. */
  gpus: string[];
}

/** What the packer learns about the allocation it runs in. */
export interface AllocationInfo {
  scheduler: SchedulerName;
  /** The scheduler's job id, or null outside any allocation. */
  jobId: string | null;
  nodes: NodeInfo[];
  /** When the allocation ends (epoch ms), if the scheduler says; null = unknown / never. */
  endsAt: number | null;
}

/** Where the packer placed a step: per node, how many tasks and which GPU ids. */
export interface Placement {
  nodes: { name: string; tasks: number; cores: number[]; gpus: string[] }[];
}

/** What `gen` renders into a batch script's header and body. */
export interface ScriptContext {
  settings: AllocationSettings;
  allocation: number;
  /** GPUs per node the job must ask for (0 = none). */
  gpusPerNode: number;
  /** Absolute path of the batch script's own output file. */
  outputFile: string;
}

/** A command to run: argv, plus a file to feed on stdin (`bsub < script`). */
export interface CommandSpec {
  argv: string[];
  stdinFile?: string;
}

export type JobState = 'pending' | 'running' | 'gone';

/**
 * One adapter per scheduler: data plus pure functions. Everything returns argv arrays; where a
 * string must go into a script the renderer quotes it.
 */
export interface SchedulerAdapter {
  readonly name: SchedulerName;
  /** The scheduler's job-id placeholder in an output file name (`%j`, `%J`, `{{id}}`); '' for none. */
  readonly outputJobIdPattern?: string;
  /** Submitting starts the script in the background here (local): the job id is its pid. */
  readonly submitDetached?: boolean;
  /** The launcher prefix for `%%themis_launch%%` (no placement known yet); [] for local. */
  launchPrefix(step: StepResources): string[];
  /** The launcher argv for a step the packer placed (prefix to the step's own argv). */
  placedLaunch(step: StepResources, placement: Placement, jobId: string | null): string[];
  /** Header directive lines for a batch script (`#SBATCH …`), already quoted. */
  scriptDirectives(ctx: ScriptContext): string[];
  /** How to submit a rendered script. */
  submitCommand(scriptPath: string): CommandSpec;
  /** The job id from the submit command's stdout, or null if none can be found. */
  parseJobId(stdout: string): string | null;
  /** Read the allocation from the environment (and, if needed, a scheduler command). */
  discover(env: NodeJS.ProcessEnv, run: (argv: string[]) => string | null): AllocationInfo | null;
  /** How to ask the scheduler which of these jobs are still known, and parse its answer. */
  jobStatesCommand(jobIds: string[]): CommandSpec;
  parseJobStates(stdout: string, jobIds: string[]): Map<string, JobState>;
}
