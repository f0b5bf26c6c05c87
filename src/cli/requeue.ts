import { Themis, type OpReport } from '../api/themis.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import { EXIT, type Output } from './output.js';
import { formatIds, selectRuns, type SelectArgs } from './select.js';

interface RequeueArgs extends GlobalOptions, SelectArgs {
  hard: boolean;
}

/** Print what a requeue/dequeue did; unknown ids make the exit code 2 (an input error). */
export function reportOp(output: Output, report: OpReport, done: string, json: boolean): void {
  if (json) output.out(JSON.stringify(report, null, 2));
  else {
    if (report.changed.length > 0) output.out(`${done} ${report.changed.length} run${report.changed.length === 1 ? '' : 's'}: ${formatIds(report.changed)}`);
    if (report.pending.length > 0) {
      output.out(
        `stopping ${report.pending.length} running run${report.pending.length === 1 ? '' : 's'} (${formatIds(report.pending)}): their packers stop them within one heartbeat and mark them killed`,
      );
    }
    if (report.changed.length === 0 && report.pending.length === 0) output.out('no run changed');
    // Grouped by reason: `requeue 1-100000` must not print a line per queued run.
    const byReason = new Map<string, number[]>();
    for (const s of report.skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.id]);
    for (const [reason, ids] of byReason) {
      output.err(`${ids.length === 1 ? `run ${ids[0]} left as it is` : `runs ${formatIds(ids)} left as they are`}: ${reason}`);
    }
  }
  if (report.unknown.length > 0) {
    output.err(`themis: no such run${report.unknown.length === 1 ? '' : 's'}: ${formatIds(report.unknown)}; \`themis status\` lists the run ids`);
    process.exitCode = EXIT.usage;
  }
}

/** `themis requeue IDS [--hard] [--status failed]` (alias `restart`). */
export function requeueCommand(output: Output): CommandBody<GlobalOptions, RequeueArgs> {
  return {
    builder: (y) =>
      y
        .positional('ids', { type: 'string', array: true, describe: 'run ids: 1-10,15' })
        .option('hard', { type: 'boolean', default: false, describe: 'start again at step 0' })
        .option('status', { alias: 's', type: 'string', array: true, describe: 'only runs with this status (e.g. failed); alone, every such run' })
        .example('$0 requeue --status failed', 'retry every failed run where it stopped')
        .example('$0 requeue 1-10,15 --hard', 'run these again from their first step') as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      const ids = await selectRuns(themis, argv, true, 'requeue');
      if (ids === null) throw new ThemisError('USAGE', 'no runs selected');
      const report = await themis.requeueRuns(ids, { hard: argv.hard });
      reportOp(output, report, 'requeued', argv.json);
    },
  };
}
