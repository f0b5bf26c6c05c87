import { gatherStatus, progressBar } from '../api/report.js';
import { RUN_STATUSES } from '../model/status.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

/** `themis progress [-v]`: completed/total, completed = successful + failed + killed + aborted. */
export function progressCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & { full: boolean }> {
  return {
    builder: (y) =>
      y
        .option('full', { type: 'boolean', default: false, describe: "read every run's status file instead of trusting the summary of finished runs" })
        .example('$0 progress -v', 'counts per status, then the bar') as never,
    handler: async (argv) => {
      const r = await gatherStatus(argv.setupDir, { allocations: false, full: argv.full });
      if (argv.json) {
        output.out(JSON.stringify({ completed: r.completed, total: r.total, percent: r.percent, counts: r.counts, unreadable: r.unreadableCount }));
        return;
      }
      const lines: string[] = [];
      if (argv.verbose > 0) {
        for (const s of RUN_STATUSES) lines.push(`${s} runs: ${r.counts[s]}`);
        if (r.unreadableCount > 0) lines.push(`unreadable runs: ${r.unreadableCount} (\`themis status\` says why)`);
      }
      lines.push(progressBar(r.completed, r.total));
      output.out(lines.join('\n'));
    },
  };
}
