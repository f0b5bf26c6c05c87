import { Themis } from '../api/themis.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';
import { selectRuns, type SelectArgs } from './select.js';

/** `themis post [IDS] [--save]`: call postRun in this process; --save stores each value as the result. */
export function postCommand(output: Output): CommandBody<GlobalOptions, GlobalOptions & SelectArgs & { save: boolean }> {
  return {
    builder: (y) =>
      y
        .positional('ids', { type: 'string', array: true, describe: 'run ids: 1-10,15' })
        .option('status', { alias: 's', type: 'string', array: true, describe: 'only runs with this status (e.g. successful)' })
        .option('save', { type: 'boolean', default: false, describe: "store each return value as the run's result (null too)" }) as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      // Without a postRun, --save would overwrite every stored result with null.
      if (!(await themis.interfaceHooks()).includes('postRun')) {
        const iface = themis.ensemble.interface;
        throw new ThemisError(
          'INPUT',
          iface ? `${iface} has no postRun (or post_run) export; add one, or check the module` : 'the ensemble has no interface module; make one with `themis gen --interface MODULE`',
        );
      }
      const ids = (await selectRuns(themis, argv, false, 'post')) ?? (await themis.filterByStatus());
      const results: { id: number; result: unknown }[] = [];
      for (const id of ids) {
        const result = await themis.callPostRun(id);
        if (argv.save) await themis.setResult(id, result);
        results.push({ id, result });
        if (!argv.json) output.out(`run ${id}: ${JSON.stringify(result)}`);
      }
      if (argv.json) output.out(JSON.stringify(results, null, 1));
      else if (argv.save) output.err(`stored ${results.length} result${results.length === 1 ? '' : 's'}`);
    },
  };
}
