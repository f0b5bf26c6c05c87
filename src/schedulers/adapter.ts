import type { AllocationSettings, LsfFlavor, SchedulerName } from '../model/allocation.js';
import type { StepLaunch } from '../model/resources.js';

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
  /** LSF only: the flavour the allocation was read as (classic keeps the first host; its steps go through blaunch). */
  lsfFlavor?: LsfFlavor;
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
 * One adapter per scheduler: data plus pure functions. An adapter never runs a command itself:
 * it says what to run (argv arrays, never a joined shell string) and how to read the answer;
 * `src/schedulers/commands.ts` runs it, with one timeout and one error shape. Where a string must
 * go into a script the adapter quotes it with `src/model/quote.ts`.
 *
 * Adding a scheduler: one file `src/schedulers/<name>/index.ts` exporting its adapter, one line in
 * the registry (`src/schedulers/index.ts`), its name in `SchedulerName` (`src/model/allocation.ts`;
 * the compiler then insists on the registry line) and a template `templates/<name>.sh.hbs`.
 * Test it beside the others in `test/schedulers/` (argv, job-id parsing, states, discovery).
 */
export interface SchedulerAdapter {
  readonly name: SchedulerName;
  /**
   * The command whose presence on PATH means this scheduler is here (`sbatch`): `gen` picks the
   * first adapter in registry order whose command is found. null: never detected (local, the fallback).
   */
  readonly detectCommand: string | null;
  /** The scheduler's job-id placeholder in an output file name (`%j`, `%J`, `{{id}}`); '' for none. */
  readonly outputJobIdPattern?: string;
  /**
   * Submitting starts the script in the background here (local): `submitCommand`'s argv is run
   * detached, in its own session, and the job id is its pid.
   */
  readonly submitDetached?: boolean;
  /**
   * When the job-states command exits non-zero, jobs it did not list count as gone only if its
   * stderr matches this (squeue: "Invalid job id specified"); else their state is unknown.
   * Default: `FORGOTTEN_JOB` (`job-states.ts`). An exit 0 always proves an unlisted job gone.
   */
  readonly forgottenJobMessage?: RegExp;
  /**
   * The launcher prefix for `%%themis_launch%%` (no placement known yet); [] when steps run
   * directly. Cores per task follow `model/resources.ts`: 0 means one core per task, never a
   * literal 0 on the argv.
   */
  launchPrefix(step: StepLaunch): string[];
  /** The launcher argv for a step the packer placed (prefix to the step's own argv); [] for none; cores as above. */
  placedLaunch(step: StepLaunch, placement: Placement, jobId: string | null): string[];
  /**
   * The prefix that starts one long-lived process on `node` inside the allocation (the packer's
   * launcher for that node), holding the node's cores and GPUs so the steps it forks may use them,
   * without keeping later job steps off them (Slurm: `srun --overlap`). Its stdin and stdout must
   * reach the process unbuffered. Absent: the scheduler has no other nodes to reach (local).
   */
  nodeLauncher?(node: NodeInfo): string[];
  /** The prefix that runs one short command on `node` in the allocation (cleanup after its launcher died). */
  nodeCommand?(node: NodeInfo): string[];
  /**
   * The most job steps one job may create, and how to learn it: a command whose stdout
   * `parseStepLimit` reads (`scontrol show config`: MaxStepCount). Absent: no such limit.
   */
  readonly stepLimitCommand?: string[];
  parseStepLimit?(stdout: string): number | null;
  /** The limit when the configuration cannot be read (Slurm's default MaxStepCount, 40,000). */
  readonly defaultStepLimit?: number;
  /**
   * Did the scheduler refuse to create a step started through `placedLaunch` (its complaint in
   * the tail of the step's log), rather than the step failing? `limitReached`: no step can be
   * created in this job any more. null: the step itself ran and failed.
   */
  refusedStep?(logTail: string): { why: string; limitReached: boolean } | null;
  /**
   * The launcher argv that runs a program exactly once, as one task, on the named node of the
   * allocation, holding none of the resources the packer placed the step on: for a batch-script
   * step placed away from the packer's node, whose script starts its own tasks through
   * `THEMIS_LAUNCH` (those tasks hold the cores and GPUs). null when the scheduler cannot start
   * such a task on a named node: the packer then runs the script on its own node (still once; its
   * tasks still go where they were placed).
   */
  onceLaunch(node: string, step: StepLaunch, jobId: string | null): string[] | null;
  /** Header directive lines for a batch script (`#SBATCH …`), each value already quoted; [] for none. */
  scriptDirectives(ctx: ScriptContext): string[];
  /** How to submit a rendered script (absolute path): the argv, and the script as stdin if the tool reads it there. */
  submitCommand(scriptPath: string): CommandSpec;
  /**
   * The job id in the submit command's stdout (after it exited 0), or null when none is there:
   * the caller then says the job may have been submitted, and never guesses an id.
   */
  parseJobId(stdout: string): string | null;
  /**
   * Is this process inside one of this scheduler's allocations? From the environment only (runs
   * nothing, never throws): the packer asks each adapter in turn and discovers with the first yes.
   */
  insideAllocation(env: NodeJS.ProcessEnv): boolean;
  /**
   * Read the allocation from the environment and, where the environment is not enough, from a
   * scheduler query through `run` (argv in, stdout out, null when it failed: go on without it).
   * null outside an allocation. Must not throw on odd values; fill in what is known.
   */
  discover(env: NodeJS.ProcessEnv, run: (argv: string[]) => string | null): AllocationInfo | null;
  /** How to ask the scheduler about these jobs in one command (never sacct, which many sites lack). */
  jobStatesCommand(jobIds: string[]): CommandSpec;
  /** Its stdout as pending/running/gone for every asked-for id; an id it does not list is gone. */
  parseJobStates(stdout: string, jobIds: string[]): Map<string, JobState>;
}
