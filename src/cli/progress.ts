import type { CommandModule } from 'yargs';
import { progressBar } from '../api/report.js';
import { Themis } from '../api/themis.js';
import { RUN_STATUSES } from '../model/status.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

/** `themis progress [-v]`: completed/total, completed = successful + failed + killed + aborted. */
export function progressCommand(output: Output): CommandModule<GlobalOptions, GlobalOptions> {
  return {
    command: 'progress',
    describe: 'completed/total runs (completed = successful, failed, killed or aborted); -v adds a line per status',
    builder: (y) => y.example('$0 progress -v', 'counts per status, then the bar') as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      const runs = themis.scan();
      const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<string, number>;
      let unreadable = 0;
      for (const r of runs) {
        if (r.status) counts[r.status.status]!++;
        else unreadable++;
      }
      const completed = counts.successful! + counts.failed! + counts.killed! + counts.aborted!;
      const total = runs.length;
      if (argv.json) {
        output.out(JSON.stringify({ completed, total, percent: total === 0 ? 100 : Math.round((completed / total) * 1000) / 10, counts, unreadable }));
        return;
      }
      const lines: string[] = [];
      if (argv.verbose > 0) {
        for (const s of RUN_STATUSES) lines.push(`${s} runs: ${counts[s]}`);
        if (unreadable > 0) lines.push(`unreadable runs: ${unreadable} (\`themis status\` says why)`);
      }
      lines.push(progressBar(completed, total));
      output.out(lines.join('\n'));
    },
  };
}
