import { gatherStatus, renderStatusReport } from '../api/report.js';
import { Themis } from '../api/themis.js';
import type { RunStatus } from '../model/status.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

export interface StatusArgs extends GlobalOptions {
  names?: string[];
  count: boolean;
  allocations: boolean;
  full: boolean;
}

/**
 * `themis status`: the whole picture (counts, progress, blocked runs, packers, allocations), or with
 * status names the matching run ids (the seed's `filter_by_status`/`count_by_status`).
 */
export function statusCommand(output: Output): CommandBody<GlobalOptions, StatusArgs> {
  return {
    builder: (y) =>
      y
        .positional('names', { type: 'string', array: true, describe: 'statuses: queued running successful failed killed aborted' })
        .option('count', { alias: 'c', type: 'boolean', default: false, describe: 'print how many runs match, not their ids' })
        .option('allocations', { type: 'boolean', default: true, describe: 'ask the scheduler about submitted allocations (--no-allocations skips it)' })
        .option('full', {
          type: 'boolean',
          default: false,
          describe: "read every run's status file instead of trusting the summary of finished runs (state/summary/) for them",
        })
        .example('$0 status', 'the overview')
        .example('$0 status failed killed', 'ids of failed and killed runs')
        .example('$0 status queued --count', 'how many runs are still queued')
        .example('$0 status --full', 'the overview from every status file (as `themis doctor` sees them)') as never,
    handler: async (argv) => {
      const names = (argv.names ?? []).flatMap((n) => n.split(',')).filter((n) => n !== '');
      const themis = Themis.open(argv.setupDir, { fullScan: argv.full });
      if (names.length > 0 || argv.count) {
        const ids = await themis.filterByStatus(...(names as RunStatus[]));
        if (argv.json) output.out(JSON.stringify(argv.count ? { count: ids.length } : { ids }));
        else output.out(argv.count ? String(ids.length) : ids.join(' '));
        return;
      }
      const report = await gatherStatus(argv.setupDir, { allocations: argv.allocations, full: argv.full });
      output.out(argv.json ? JSON.stringify(report, null, 2) : renderStatusReport(report));
    },
  };
}
