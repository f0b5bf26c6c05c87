/**
 * The one error type themis throws on purpose. `code` is stable (scripts may match on it);
 * `exitCode` is what the CLI exits with: 2 for usage and input errors, 1 for everything else.
 */
export type ThemisErrorCode =
  | 'USAGE' // bad command line
  | 'INPUT' // a bad sample file, step file, template, option value
  | 'VALIDATION' // run/step fields that fail validation (lists every problem)
  | 'EXISTS' // an ensemble already exists where one would be created
  | 'NOT_FOUND' // no ensemble, no run, no file
  | 'FORMAT' // a record written by a newer themis, or corrupt
  | 'SCHEDULER' // a scheduler command failed
  | 'IO' // the file system refused
  | 'STATE'; // an operation that does not fit the ensemble's current state

const INPUT_CODES: ReadonlySet<ThemisErrorCode> = new Set(['USAGE', 'INPUT', 'VALIDATION', 'EXISTS', 'NOT_FOUND', 'FORMAT']);

export class ThemisError extends Error {
  override readonly name = 'ThemisError';
  readonly code: ThemisErrorCode;
  /** Every problem found, when there was more than one (validation reports all at once). */
  readonly problems: readonly string[];

  constructor(code: ThemisErrorCode, message: string, options: { cause?: unknown; problems?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.problems = options.problems ?? [message];
  }

  /** 2 for usage and input errors, 1 otherwise (documented in the README). */
  get exitCode(): number {
    return INPUT_CODES.has(this.code) ? 2 : 1;
  }
}

/** Throw one ThemisError listing every problem, or nothing when the list is empty. */
export function throwIfProblems(code: ThemisErrorCode, heading: string, problems: readonly string[]): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, 50).map((p) => `  - ${p}`);
  if (problems.length > 50) shown.push(`  … and ${problems.length - 50} more`);
  throw new ThemisError(code, `${heading}:\n${shown.join('\n')}`, { problems });
}

/** A readable reason for an errno-style error from the file system. */
export function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && err.code) {
    const hints: Record<string, string> = {
      ENOSPC: 'the file system is full; free space and retry (with --resume)',
      EDQUOT: 'your disk quota is exceeded; free space and retry (with --resume)',
      EACCES: 'permission denied',
      EPERM: 'operation not permitted',
      EROFS: 'the file system is read-only',
      EMFILE: 'too many open files; raise `ulimit -n`',
      ENFILE: 'too many open files on this system',
      ENOENT: 'no such file or directory',
    };
    const hint = hints[err.code];
    if (hint) return `${err.code}: ${hint}`;
    // Node's own messages already start with the code ("EEXIST: file already exists, mkdir …").
    return err.message.startsWith(`${err.code}:`) ? err.message : `${err.code}: ${err.message}`;
  }
  return String((e as Error)?.message ?? e);
}
