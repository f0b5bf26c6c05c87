import { Themis } from '../api/themis.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface RunDirsArgs extends GlobalOptions {
  nonexistent: boolean;
}

/** `themis rundirs [--json] [--nonexistent]`: absolute run directories, one per line. */
export function rundirsCommand(output: Output): CommandBody<GlobalOptions, RunDirsArgs> {
  return {
    builder: (y) => y.option('nonexistent', { alias: 'n', type: 'boolean', default: false, describe: 'include directories that do not exist (yet)' }) as never,
    handler: async (argv) => {
      const dirs = await Themis.open(argv.setupDir).runDirs({ nonexistent: argv.nonexistent });
      if (argv.json)
        output.out(
          JSON.stringify(
            dirs.map(([id, dir]) => ({ id, dir })),
            null,
            1,
          ),
        );
      else if (dirs.length > 0) output.out(dirs.map(([, d]) => d).join('\n'));
    },
  };
}
