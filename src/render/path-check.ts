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
  // echo of separate words: no backslash escapes in the script (some tools that pass a script on, and dash's echo, would read them).
  const q = quoteShell;
  const gone = `echo ${q('themis: this batch script runs')} "$f," ${q('which no longer exists: themis or node was moved, uninstalled or upgraded to another path after the script was written.')} >&2`;
  const fix = `echo ${q('Its runs are still queued. Write the script again with the current paths and submit it: rm')} ${q(o.script)} ${q('&& themis --setup-dir')} ${q(o.setupDir)} submit --allocation ${o.allocation} >&2`;
  return [`for f in ${q(o.node)} ${q(o.packBin)}; do`, '  if [ ! -e "$f" ]; then', `    ${gone}`, `    ${fix}`, '    exit 127', '  fi', 'done'].join('\n');
}
