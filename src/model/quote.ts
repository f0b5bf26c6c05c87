/** Shell and directive quoting for rendered scripts (no template engine: schedulers, the renderer and the packer use these). */

/** Characters that never need quoting in a POSIX shell word. */
const SAFE_WORD = /^[A-Za-z0-9_/.,:=+@%^-]+$/;

/**
 * POSIX single-quote quoting: the result is one shell word whose value is exactly `value`
 * (no expansion of `$`, backticks, globs). Plain words stay bare so scripts stay readable.
 * Example: quoteShell("it's $(x)") === `'it'\''s $(x)'`.
 */
export function quoteShell(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  if (s !== '' && SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A value for a directive line, on one line: a newline would end the `#SBATCH`/`# flux:` comment
 * and turn the rest of the value into a shell command.
 */
export function oneLine(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  return s.replace(/[\r\n\0]+/g, ' ');
}

/**
 * Quoting for `#SBATCH`/`#BSUB` directive lines, which sbatch and bsub parse themselves (not a
 * shell): double quotes group, a backslash escapes the next character even inside single quotes,
 * and `$` means nothing. Example: quoteDirective('a "b" $c') === '"a \\"b\\" $c"'.
 */
export function quoteDirective(value: unknown): string {
  const s = oneLine(value);
  if (s !== '' && SAFE_WORD.test(s)) return s;
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Quote each word and join with spaces: an argv as one shell command line. */
export function quoteArgv(argv: readonly unknown[]): string {
  return argv.map(quoteShell).join(' ');
}
