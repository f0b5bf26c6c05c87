import { Themis } from '../api/themis.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface CompletionArgs extends GlobalOptions {
  command?: string[];
  stdout?: string;
  stderr?: string;
  cwd?: string;
}

/** `themis completion [--stdout F] [--stderr F] [--cwd D] -- CMD ARGS…`: run once the ensemble completes. */
export function completionCommand(output: Output): CommandBody<GlobalOptions, CompletionArgs> {
  return {
    builder: (y) =>
      y
        .positional('command', { type: 'string', array: true, describe: 'the program and its arguments (put them after --)' })
        .option('stdout', { type: 'string', describe: 'append its stdout to this file (default: the packer log)' })
        .option('stderr', { type: 'string', describe: 'append its stderr to this file (default: the packer log)' })
        .option('cwd', { type: 'string', describe: 'run it in this directory (default: the ensemble root)' })
        .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': false })
        .example('$0 completion --stdout done.log -- python3 summarize.py --all', 'summarise when the ensemble is done') as never,
    handler: async (argv) => {
      const rest = ((argv as unknown as Record<string, unknown>)['--'] as string[] | undefined) ?? [];
      const words = [...(argv.command ?? []), ...rest].map(String);
      if (words.length === 0) throw new ThemisError('USAGE', 'give the command to run after --, e.g. `themis completion -- mail -s done me@lab.org`');
      const themis = Themis.open(argv.setupDir);
      await themis.onCompletion(words, { cwd: argv.cwd ?? themis.ensemble.root, stdout: argv.stdout ?? null, stderr: argv.stderr ?? null });
      const stored = themis.ensemble.onCompletion;
      if (argv.json) output.out(JSON.stringify(stored));
      else output.out(`on completion: ${stored?.args.join(' ')} (in ${stored?.cwd})`);
    },
  };
}
