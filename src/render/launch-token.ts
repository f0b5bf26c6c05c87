import { quoteArgv } from '../model/quote.js';
import { ENV } from '../store/layout.js';

/**
 * What `%%themis_launch%%` becomes in a batch-script step. Where the step's tasks go is known only
 * when the packer places it, so the packer puts the launcher for that placement in
 * `THEMIS_LAUNCH` (one line of plain words: `srun --exact -N 2 -n 2 -c 1 --nodelist=n1,n2`) and
 * the rendered token reads it. In a POSIX shell script the token becomes
 * `${THEMIS_LAUNCH-<gen-time prefix>}`: the packer's launcher, or the prefix `gen` knew (no node
 * list) when the script runs outside themis. `-`, not `:-`: an empty THEMIS_LAUNCH means "no
 * launcher, run the program itself" (local). Any other script (Python, csh, …) cannot read a
 * shell expansion: there the token is the gen-time prefix as text, and the script should read
 * THEMIS_LAUNCH itself (`shlex.split(os.environ.get("THEMIS_LAUNCH", "<prefix>"))`).
 */
export function renderLaunchToken(prefix: readonly string[], scriptText: string): string {
  const text = quoteArgv(prefix);
  return isPosixShellScript(scriptText) ? `\${${ENV.launch}-${text}}` : text;
}

/** Shells in which `${NAME-word}` means "$NAME if set, else word". */
const POSIX_SHELLS = new Set(['sh', 'bash', 'dash', 'ash', 'ksh', 'ksh93', 'mksh', 'pdksh', 'zsh', 'busybox']);

/**
 * Is this script run by a POSIX shell? By its `#!` line (`/usr/bin/env [-S] bash` names the shell
 * after env); a script without one is run by `/bin/sh` (execvp's fallback).
 */
export function isPosixShellScript(scriptText: string): boolean {
  if (!scriptText.startsWith('#!')) return true;
  const end = scriptText.indexOf('\n');
  const words = scriptText
    .slice(2, end === -1 ? undefined : end)
    .trim()
    .split(/\s+/);
  let program = words[0] ?? '';
  if (program.endsWith('/env')) program = words.slice(1).find((w) => !w.startsWith('-')) ?? '';
  return POSIX_SHELLS.has(program.slice(program.lastIndexOf('/') + 1));
}
