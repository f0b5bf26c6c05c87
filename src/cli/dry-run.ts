import { Themis } from '../api/themis.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';
import { selectRuns, type SelectArgs } from './select.js';

/** `themis dry-run [IDS]`: call prepRun for runs without running them (default: every queued run). */
export function dryRunCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & SelectArgs> {
  return {
    builder: (y) =>
      y.positional('ids', { type: 'string', array: true, describe: 'run ids: 1-10,15' }).option('status', { alias: 's', type: 'string', array: true, describe: 'only runs with this status' }) as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      const ids = (await selectRuns(themis, argv, false, 'dry-run')) ?? [];
      const done = await themis.dryRun(ids, { verbosity: argv.json ? 0 : argv.verbose + 1, log: (l) => output.out(l) });
      if (argv.json) output.out(JSON.stringify({ ids: done }));
      else output.out(`dry-ran ${done.length} run${done.length === 1 ? '' : 's'}`);
    },
  };
}
