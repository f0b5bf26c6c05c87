import { processOutput, reportError, type Output } from './output.js';
import type { StatusArgs } from './status.js';

/**
 * `themis status` without yargs. Someone watching an ensemble runs it every few seconds, and loading
 * and configuring yargs was a fifth of its time (issue 14). Only the plain forms are taken here:
 * each token once, from the set below. Anything else (`--help`, an unknown or repeated flag, `-vv`,
 * a global option before the command, `--`) returns undefined and goes through yargs as before, so
 * help, errors and every other spelling stay yargs' own.
 */
export function parseDirectStatus(argv: readonly string[]): StatusArgs | undefined {
  if (argv[0] !== 'status') return undefined;
  const args: StatusArgs = { setupDir: './.themis_setup', json: false, verbose: 0, count: false, allocations: true, full: false };
  const names: string[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < argv.length; i++) {
    const token = argv[i]!;
    let flag = token;
    let value: string | undefined;
    if (token.startsWith('--setup-dir=')) {
      flag = '--setup-dir';
      value = token.slice('--setup-dir='.length);
    } else if (token === '--setup-dir') {
      value = argv[++i];
      if (value === undefined || value.startsWith('-')) return undefined;
    }
    if (!flag.startsWith('-')) {
      // Status names, as `status failed,killed` or `status failed killed`.
      if (!/^[a-z,]+$/.test(flag)) return undefined;
      names.push(flag);
      continue;
    }
    // Which option a token sets: a repeat (`--full --full`, `-c --count`) goes to yargs.
    const option = FLAGS[flag];
    if (option === undefined || seen.has(option)) return undefined;
    seen.add(option);
    if (flag === '--setup-dir') {
      if (value === '') return undefined;
      args.setupDir = value!;
    } else if (flag === '--no-allocations') args.allocations = false;
    else if (flag === '-v' || flag === '--verbose') args.verbose = 1;
    else (args as unknown as Record<string, boolean>)[option] = true;
  }
  if (names.length > 0) args.names = names;
  return args;
}

/** The tokens parseDirectStatus takes, and the option each sets. */
const FLAGS: Record<string, string> = {
  '--setup-dir': 'setupDir',
  '--json': 'json',
  '--full': 'full',
  '--count': 'count',
  '-c': 'count',
  '--allocations': 'allocations',
  '--no-allocations': 'allocations',
  '-v': 'verbose',
  '--verbose': 'verbose',
};

/**
 * Run `argv` here when parseDirectStatus takes it: returns the exit code, or undefined when the
 * command is for the full CLI (src/cli/main.ts).
 */
export async function runDirect(argv: readonly string[], output: Output = processOutput): Promise<number | undefined> {
  const args = parseDirectStatus(argv);
  if (args === undefined) return undefined;
  process.exitCode = undefined;
  try {
    const { statusCommand } = await import('./status.js');
    await statusCommand(output).handler!(args as never);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e, output, false);
  }
}
