import yargs, { type Argv, type CommandModule } from 'yargs';
import { ThemisError } from '../model/errors.js';
import { commands, type CommandBody, type CommandEntry } from './commands.js';
import { EXIT, processOutput, reportError, type Output } from './output.js';

export { reportError };

/** Options every command takes. */
export interface GlobalOptions {
  setupDir: string;
  json: boolean;
  verbose: number;
}

/**
 * yargs refuses an option value that starts with `-` (`-a "-x 1"`); glue such values to their
 * flag (`--args=-x 1`) for the commands that take application arguments.
 */
export function glueArgsValues(argv: readonly string[]): string[] {
  const cmd = argv.find((a) => !a.startsWith('-'));
  if (!cmd || !['gen', 'create', 'add'].includes(cmd)) return [...argv];
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if ((a === '-a' || a === '--args') && next !== undefined && next.startsWith('-') && next !== '--') {
      out.push(`--args=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * A command for yargs that imports its module only when the command is being run (or asked for
 * its --help): the builder loads the module, then defines the command's options as before.
 */
// biome-ignore lint/suspicious/noExplicitAny: a lazily loaded command's argv type is its module's business
function lazyCommand({ load, ...head }: CommandEntry, output: Output): CommandModule<any, any> {
  let body: CommandBody | undefined;
  return {
    ...head,
    builder: async (y) => {
      body = (await load())(output);
      const options = body.builder;
      return typeof options === 'function' ? options(y) : options ? y.options(options) : y;
    },
    handler: (argv) => body!.handler(argv),
  };
}

/** `version`: what `--version` prints (versionText(), which runCli loads only when it is asked for). */
export function buildCli(argv: string[], output: Output = processOutput, version?: string): Argv {
  // `-a "-x 1"`: yargs would take the value for a flag; gen/add glue it to --args first.
  let cli = yargs(glueArgsValues(argv))
    .scriptName('themis')
    .usage('$0 <command> [options]\n\nRun one executable many times with varied inputs, packed onto Slurm, LSF, Flux or this machine.')
    .option('setup-dir', {
      type: 'string',
      default: './.themis_setup',
      describe: "the ensemble's setup directory",
      global: true,
    })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output', global: true })
    .option('verbose', { alias: 'v', type: 'count', describe: 'more detail (-vv: stack traces)', global: true })
    .strict()
    .demandCommand(1, 'name a command; `themis --help` lists them')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version('version', 'show the version, where themis and node are, and which launcher starts steps here', version ?? '')
    // Measuring text for wrapping costs tens of ms (string-width): only for help.
    .wrap(argv.includes('--help') || argv.includes('-h') || argv.length === 0 ? Math.min(110, process.stdout.columns || 100) : null)
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new ThemisError('USAGE', `${msg}\nRun with --help for usage.`);
    });
  for (const entry of commands) cli = cli.command(lazyCommand(entry, output));
  return cli;
}

/** Run the CLI; returns the exit code (never calls process.exit itself, so tests can use it). */
export async function runCli(argv: string[], output: Output = processOutput): Promise<number> {
  process.exitCode = undefined;
  try {
    const version = argv.includes('--version') ? (await import('./version.js')).versionText() : undefined;
    await buildCli(argv, output, version).parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    return reportError(e, output, argv.includes('-vv') || argv.includes('--verbose=2'));
  }
}
