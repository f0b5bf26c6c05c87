import path from 'node:path';
import { Themis } from '../api/themis.js';
import { writeFileAtomicSync } from '../store/atomic.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface WriteArgs extends GlobalOptions {
  format: 'csv' | 'json' | 'yaml';
  output?: string;
}

/** `themis write csv|json|yaml [-o FILE]`: every run's status, sample, steps and result. */
export function writeCommand(output: Output): CommandBody<GlobalOptions, WriteArgs> {
  return {
    builder: (y) =>
      y
        .positional('format', { choices: ['csv', 'json', 'yaml'] as const, describe: 'output format' })
        .option('output', { alias: 'o', type: 'string', describe: 'write to this file (atomically) instead of stdout' })
        .example('$0 write csv -o results.csv', 'a table for a spreadsheet or pandas') as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      let text = '';
      const sink = {
        write: (s: string) => {
          text += s;
        },
      };
      if (argv.format === 'csv') await themis.writeCsv(sink);
      else if (argv.format === 'json') await themis.writeJson(sink);
      else await themis.writeYaml(sink);
      if (argv.output) {
        const file = path.resolve(argv.output);
        writeFileAtomicSync(file, text);
        output.err(`wrote ${file}`);
      } else {
        output.out(text);
      }
    },
  };
}
