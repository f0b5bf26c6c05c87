import { quoteShell } from '../model/quote.js';

/**
 * The batch script's guard for the two absolute paths it runs (node and themis-pack.js, as they
 * were when the script was written): when either is gone by the time the job starts (themis moved,
 * uninstalled or upgraded to another path, node upgraded by nvm or a module system), the job stops
 * at once with a message that says so and how to write the script again, rather than with
 * `exec: …: not found` or a stack trace. An upgrade in place (same paths) passes: the script then
 * runs the new themis-pack. Returned as shell lines, every value quoted; templates print it as
 * `{{checkPaths}}`.
 */
export function pathCheckLines(o: { node: string; packBin: string; script: string; setupDir: string; allocation: number }): string {
  const message =
    'themis: this batch script runs %s, which no longer exists: themis or node was moved, uninstalled or upgraded to another path after the script was written.\\n' +
    'Its runs are still queued. Write the script again with the current paths and submit it: rm %s && themis --setup-dir %s submit --allocation %s\\n';
  const args = [o.script, o.setupDir, String(o.allocation)].map(quoteShell).join(' ');
  return [`for f in ${quoteShell(o.node)} ${quoteShell(o.packBin)}; do`, `  if [ ! -e "$f" ]; then printf ${quoteShell(message)} "$f" ${args} >&2; exit 127; fi`, 'done'].join('\n');
}
