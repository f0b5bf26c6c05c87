import path from 'node:path';
import { cellText } from '../api/export.js';
import { table } from '../api/report.js';
import { Themis } from '../api/themis.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';
import { selectRuns, type SelectArgs } from './select.js';

interface DisplayArgs extends GlobalOptions, SelectArgs {
  width: number;
}

function clip(text: string, width: number): string {
  const one = text.replace(/\s*\n\s*/g, ' ');
  return width > 0 && one.length > width ? `${one.slice(0, Math.max(1, width - 1))}…` : one;
}

/** `themis display [IDS]`: a table of runs; one line per step (run fields on its first line). */
export function displayCommand(output: Output): CommandBody<GlobalOptions, DisplayArgs> {
  return {
    builder: (y) =>
      y
        .positional('ids', { type: 'string', array: true, describe: 'run ids: 1-10,15 (default: all)' })
        .option('status', { alias: 's', type: 'string', array: true, describe: 'only runs with this status' })
        .option('width', { alias: 'w', type: 'number', default: 40, describe: 'cut cells longer than this (0: never)' }) as never,
    handler: async (argv) => {
      const themis = Themis.open(argv.setupDir);
      const ids = await selectRuns(themis, argv, false, 'display');
      const runs = await themis.exportRuns(ids ?? undefined);
      const dirs = new Map(themis.scan(ids ?? undefined).map((r) => [r.id, r.dir]));
      const root = themis.ensemble.root;
      if (argv.json) {
        output.out(
          JSON.stringify(
            runs.map((r) => ({ ...r, dir: dirs.get(r.id) ?? null })),
            null,
            1,
          ),
        );
        return;
      }
      const w = argv.width;
      const rows: string[][] = [];
      for (const r of runs) {
        const dir = dirs.get(r.id) ?? '';
        const rel = path.relative(root, dir);
        const shownDir = rel.startsWith('..') || path.isAbsolute(rel) ? dir : rel;
        const sample = r.sampleKeys.map((k) => `${k}=${cellText(r.sample[k])}`).join(' ');
        const steps = r.steps.length > 0 ? r.steps : [null];
        steps.forEach((s, i) => {
          const first = i === 0;
          const marker = r.steps.length > 1 ? `${i === r.step ? '>' : ' '}${i}` : '';
          rows.push([
            first ? String(r.id) : '',
            first ? (r.status ?? 'unknown') : '',
            first ? clip(shownDir, w) : '',
            clip(`${marker ? marker + ' ' : ''}${s ? s.args.join(' ') : '(unreadable run.json)'}`, w),
            s ? `${s.tasks}x${s.coresPerTask}c${s.gpusPerTask ? `+${s.gpusPerTask}g` : ''}` : '',
            first ? clip(sample, w) : '',
            first ? clip(cellText(r.result), w) : '',
          ]);
        });
      }
      if (rows.length === 0) {
        output.out('no runs');
        return;
      }
      output.out(table(['run', 'status', 'directory', 'args', 'resources', 'sample', 'result'], rows).join('\n'));
    },
  };
}
