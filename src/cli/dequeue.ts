import { Themis } from '../api/themis.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';
import { reportOp } from './requeue.js';
import { selectRuns, type SelectArgs } from './select.js';

/** `themis dequeue IDS [--status queued]` (alias `kill`). */
export function dequeueCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & SelectArgs> {
  return {
    builder: (y) =>
      y
        .positional('ids', { type: 'string', array: true, describe: 'run ids: 1-10,15' })
        .option('status', { alias: 's', type: 'string', array: true, describe: 'only runs with this status (queued, running); alone, every such run' })
        .example('$0 dequeue 5-9', 'stop runs 5 to 9')
        .example('$0 dequeue --status queued', 'start nothing more; running runs finish') as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      const ids = await selectRuns(themis, argv, true, 'dequeue');
      if (ids === null) throw new ThemisError('USAGE', 'no runs selected');
      const report = await themis.dequeueRuns(ids);
      reportOp(output, report, 'dequeued', argv.json);
    },
  };
}
