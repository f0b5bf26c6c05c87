import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gatherReport } from '../api/report-gather.js';
import { renderReportHtml } from '../api/report-html.js';
import { ThemisError, describeFsError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface ReportArgs extends GlobalOptions {
  out?: string;
  open: boolean;
}

/** `themis report`: the picture of the ensemble in one self-contained HTML file (or its data as JSON). */
export function reportCommand(output: Output): CommandBody<GlobalOptions, ReportArgs> {
  return {
    builder: (y) =>
      y
        .option('out', { alias: 'o', type: 'string', describe: 'where to write it [default: report.html; with --json: standard output]' })
        .option('open', { type: 'boolean', default: false, describe: 'open it in the default browser (xdg-open, open)' })
        .example('$0 report', 'write report.html here')
        .example('$0 report --json --out report.json', 'the data behind the report, for other tools') as never,
    handler: async (argv) => {
      const t0 = Date.now();
      const data = await gatherReport(argv.setupDir);
      if (argv.json && argv.out === undefined) {
        output.out(JSON.stringify(data, null, 2));
        return;
      }
      const file = path.resolve(argv.out ?? 'report.html');
      const text = argv.json ? JSON.stringify(data, null, 2) + '\n' : renderReportHtml(data);
      try {
        fs.writeFileSync(file, text);
      } catch (e) {
        throw new ThemisError('IO', `cannot write the report to ${file}: ${describeFsError(e)}; give another place with --out`, { cause: e });
      }
      const mb = Math.round((Buffer.byteLength(text) / 1048576) * 10) / 10;
      const p = data.progress;
      output.out(
        `wrote ${file} (${mb} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s): ${p.total} runs, ${p.completed} complete, ${data.failures.count} failed, aborted or killed; ${data.allocations.length} allocation${data.allocations.length === 1 ? '' : 's'}${argv.json ? '' : '. It needs no network: copy it anywhere and open it in a browser'}`,
      );
      if (argv.open) openFile(file, output);
    },
  };
}

function openFile(file: string, output: Output): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [file], { detached: true, stdio: 'ignore' });
    child.on('error', () => output.err(`themis report: could not run ${cmd}; open ${file} yourself`));
    child.unref();
  } catch {
    output.err(`themis report: could not run ${cmd}; open ${file} yourself`);
  }
}
