import type { CommandModule } from 'yargs';
import type { Output } from './output.js';

/**
 * What a command's module supplies: its options (the builder, the one place they are defined) and
 * what it does. Its name, aliases and description live in `commands` below, so `themis --help`
 * lists every command without loading any command's module.
 */
// biome-ignore lint/suspicious/noExplicitAny: yargs types each command's argv itself; the table holds commands of any shape
export type CommandBody<T = any, U = any> = Pick<CommandModule<T, U>, 'builder' | 'handler'>;

/** A command module factory: receives the output sink, returns the command's options and handler. */
export type CommandFactory = (output: Output) => CommandBody;

/** A command as the top-level parser sees it; `load` imports its module only when the command runs. */
export interface CommandEntry {
  /** The yargs command string (name and positionals), or several: the first is the name. */
  command: string | string[];
  aliases?: string[];
  describe: string;
  load: () => Promise<CommandFactory>;
}

/** Every `themis` command (in the order `themis --help` lists them). */
export const commands: CommandEntry[] = [
  {
    command: ['gen [application] [samples]', 'create'],
    describe: 'create an ensemble: one run directory per sample and one batch script per allocation',
    load: async () => (await import('./gen.js')).genCommand,
  },
  {
    command: 'add [samples]',
    describe: 'add runs to an existing ensemble (ids continue; safe while packers run)',
    load: async () => (await import('./gen.js')).addCommand,
  },
  {
    command: 'submit',
    describe: 'submit the batch scripts (sbatch, bsub, flux batch, or start them here) and record the job ids',
    load: async () => (await import('./submit.js')).submitCommand,
  },
  {
    command: 'run',
    describe: "run the queued runs here, packed onto this machine's cores and GPUs",
    load: async () => (await import('./run.js')).runCommand,
  },
  {
    command: 'status [names..]',
    describe: 'show the ensemble: counts per status, progress, blocked runs, live packers, allocations; or the ids of runs with the given statuses',
    load: async () => (await import('./status.js')).statusCommand,
  },
  {
    command: 'report',
    describe: 'write one self-contained HTML file with the picture of the ensemble: progress, timeline, utilisation, runtimes, failures, results',
    load: async () => (await import('./report.js')).reportCommand,
  },
  {
    command: 'plan',
    describe: "estimate the queued runs' durations and simulate the packer on candidate allocations: makespan, utilisation, node-hours, which to ask for",
    load: async () => (await import('./plan.js')).planCommand,
  },
  {
    command: 'progress',
    describe: 'completed/total runs (completed = successful, failed, killed or aborted); -v adds a line per status',
    load: async () => (await import('./progress.js')).progressCommand,
  },
  {
    command: 'requeue [ids..]',
    aliases: ['restart'],
    describe: 'queue finished runs again with a fresh restart budget (soft: resume at the step that stopped; --hard: from step 0)',
    load: async () => (await import('./requeue.js')).requeueCommand,
  },
  {
    command: 'dequeue [ids..]',
    aliases: ['kill'],
    describe: 'stop runs: queued ones never start, running ones are stopped by their packer; both end killed',
    load: async () => (await import('./dequeue.js')).dequeueCommand,
  },
  {
    command: 'write <format>',
    describe: 'export every run (id, status, resources, sample, result) as CSV, JSON or YAML',
    load: async () => (await import('./write.js')).writeCommand,
  },
  {
    command: 'rundirs',
    describe: 'print the run directories (absolute), one per line in id order',
    load: async () => (await import('./rundirs.js')).rundirsCommand,
  },
  {
    command: 'display [ids..]',
    describe: 'a table of runs: status, directory, args, resources, sample and result (one line per step)',
    load: async () => (await import('./display.js')).displayCommand,
  },
  {
    command: 'dry-run [ids..]',
    aliases: ['dryrun'],
    describe: "check runs without running them: call the interface's prepRun for each (default: every queued run), serially",
    load: async () => (await import('./dry-run.js')).dryRunCommand,
  },
  {
    command: 'post [ids..]',
    describe: "call the interface's postRun for runs (default: all) in this process and print what it returns",
    load: async () => (await import('./post.js')).postCommand,
  },
  {
    command: 'completion [command..]',
    describe: 'run a command once every run has finished (after postEnsemble); only the last one set is kept',
    load: async () => (await import('./completion.js')).completionCommand,
  },
  {
    command: 'clear',
    describe: "remove the ensemble's own files (setup directory records, batch scripts, logs, each run's .themis/), keeping run directories and your files",
    load: async () => (await import('./clear.js')).clearCommand,
  },
  {
    command: 'sample [key]',
    describe: 'inside a run: print its sample (KEY=VALUE lines), or one value',
    load: async () => (await import('./runtime.js')).sampleCommand,
  },
  {
    command: 'result <action>',
    describe: 'inside a run: store its result (shown by `themis write`)',
    load: async () => (await import('./runtime.js')).resultCommand,
  },
  {
    command: 'parse <src> <dest>',
    describe: "inside a run: copy SRC to DEST replacing %%name%% with the run's sample (and themis_run_id, themis_run_dir)",
    load: async () => (await import('./runtime.js')).parseCommand,
  },
  {
    command: 'doctor',
    describe: 'check the ensemble for what crashes leave behind (stale claims, orphaned runs, unreadable files) and explain the fix',
    load: async () => (await import('./doctor.js')).doctorCommand,
  },
];
