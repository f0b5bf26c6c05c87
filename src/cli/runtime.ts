import type { CommandModule } from 'yargs';
import { parseFile, resultFromFile, sample, setResult } from '../api/runtime.js';
import { cellText } from '../api/export.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

/**
 * Runtime commands, for an application inside its run: they find the run from THEMIS_RUN_DIR (set
 * for every step) or the working directory, so they work under every scheduler.
 */

/** `themis sample [KEY] [--json]`. */
export function sampleCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & { key?: string }> {
  return {
    builder: (y) => y.positional('key', { type: 'string', describe: 'one sample key' }).example('$0 sample viscosity', 'prints 0.1') as never,
    handler: async (argv) => {
      if (argv.key !== undefined) {
        const v = sample(argv.key);
        output.out(argv.json ? JSON.stringify(v) : cellText(v));
        return;
      }
      const all = sample();
      output.out(
        argv.json
          ? JSON.stringify(all, null, 1)
          : Object.entries(all)
              .map(([k, v]) => `${k}=${cellText(v)}`)
              .join('\n'),
      );
    },
  };
}

/** `themis result set JSON` and `themis result file PATH`. */
export function resultCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions> {
  return {
    builder: (y) =>
      y
        .command({
          command: 'set <value>',
          describe: 'store a JSON value: 42, \'{"energy": 1.5}\', \'"text"\'',
          builder: (yy) => yy.positional('value', { type: 'string', describe: 'a JSON value' }),
          handler: async (argv: { value?: string }) => {
            const text = String(argv.value ?? '');
            let value: unknown;
            try {
              value = JSON.parse(text);
            } catch {
              throw new ThemisError('USAGE', `themis result set: ${JSON.stringify(text)} is not JSON; quote a string as '"${text.replace(/'/g, '')}"', or use \`themis result file PATH\``);
            }
            await setResult(value);
            output.err('result stored');
          },
          // biome-ignore lint/suspicious/noExplicitAny: each subcommand's argv is typed by its own builder
        } as CommandModule<any, any>)
        .command({
          command: 'file <path>',
          describe: "store a file's contents: parsed as JSON when it is JSON, else its text",
          builder: (yy) => yy.positional('path', { type: 'string', describe: 'the file' }),
          handler: async (argv: { path?: string }) => {
            await resultFromFile(String(argv.path));
            output.err('result stored');
          },
          // biome-ignore lint/suspicious/noExplicitAny: each subcommand's argv is typed by its own builder
        } as CommandModule<any, any>)
        .demandCommand(1, 'say `set JSON` or `file PATH`') as never,
    handler: () => {},
  };
}

/** `themis parse SRC DEST`: replace %%tokens%% with the run's sample. */
export function parseCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & { src: string; dest: string }> {
  return {
    builder: (y) => y.positional('src', { type: 'string' }).positional('dest', { type: 'string' }) as never,
    handler: async (argv) => {
      await parseFile(argv.src, argv.dest);
      if (argv.verbose > 0) output.err(`wrote ${argv.dest}`);
    },
  };
}
