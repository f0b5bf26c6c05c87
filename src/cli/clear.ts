import { Themis } from '../api/themis.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

/** `themis clear [--force]`: remove what themis made for its own use; never user files. */
export function clearCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & { force: boolean }> {
  return {
    builder: (y) => y.option('force', { type: 'boolean', default: false, describe: 'clear even while packers look alive' }) as never,
    handler: async (argv) => {
      const report = await Themis.clear(argv.setupDir, { force: argv.force });
      if (argv.json) output.out(JSON.stringify(report, null, 2));
      else if (report.removed.length === 0 && report.runsCleared === 0) output.out(`nothing to clear in ${argv.setupDir}`);
      else {
        output.out(
          `cleared ${report.removed.length} entr${report.removed.length === 1 ? 'y' : 'ies'} of the setup directory and the records of ${report.runsCleared} run${report.runsCleared === 1 ? '' : 's'}`,
        );
        if (!report.setupDirRemoved) output.out(`kept ${argv.setupDir}: it holds files themis did not make`);
      }
    },
  };
}
