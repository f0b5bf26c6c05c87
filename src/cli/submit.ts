import { submitAllocations } from '../api/submit.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface SubmitArgs extends GlobalOptions {
  allocation?: (number | string)[];
  force: boolean;
}

/** `themis submit`: hand each allocation's batch script to the scheduler and record the job ids. */
export function submitCommand(output: Output): CommandBody<GlobalOptions, SubmitArgs> {
  return {
    builder: (y) =>
      y
        .option('allocation', {
          alias: 'k',
          type: 'array',
          describe: 'submit only these allocations (1-based; repeatable)',
        })
        .option('force', {
          type: 'boolean',
          default: false,
          describe: "submit even if the allocation's previous job is still pending or running",
        })
        .example('$0 submit', 'submit every allocation')
        .example('$0 submit --allocation 2', 'submit allocation 2 again (after it was cancelled)') as never,
    handler: async (argv) => {
      const allocations = (argv.allocation ?? []).map((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new ThemisError('USAGE', `--allocation ${JSON.stringify(v)}: must be a whole number >= 1`);
        return n;
      });
      const report = await submitAllocations(argv.setupDir, { force: argv.force, ...(allocations.length > 0 ? { allocations } : {}) });
      if (argv.json) {
        output.out(JSON.stringify(report, null, 2));
        return;
      }
      for (const j of report.jobs) output.out(`allocation ${j.allocation}: job ${j.jobId}  (${j.command})`);
      output.out(`recorded in ${report.jobsFile}; \`themis status\` shows whether each allocation is pending, running or gone`);
    },
  };
}
