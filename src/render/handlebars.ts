import Handlebars from 'handlebars';
import fs from 'node:fs';
import { ThemisError, describeFsError } from '../model/errors.js';

/** Characters that never need quoting in a POSIX shell word. */
const SAFE_WORD = /^[A-Za-z0-9_\/.,:=+@%^-]+$/;

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

/** Quote each word and join with spaces: an argv as one shell command line. */
export function quoteArgv(argv: readonly unknown[]): string {
  return argv.map(quoteShell).join(' ');
}

/**
 * An isolated Handlebars instance (helpers registered here never leak into a user's own use of
 * Handlebars). Templates are compiled in strict mode: a variable the template names but the
 * context lacks is an error, not an empty string in a batch script.
 */
const hb = Handlebars.create();
hb.registerHelper('quote', (value: unknown) => new hb.SafeString(quoteShell(value)));
hb.registerHelper('quoteArgv', (value: unknown) => {
  if (!Array.isArray(value)) throw new Error(`quoteArgv wants a list, got ${JSON.stringify(value)}`);
  return new hb.SafeString(quoteArgv(value));
});

export type CompiledTemplate = (context: object) => string;

/** Compile template text; `where` (a file name) goes into every error message. */
export function compileTemplate(text: string, where: string): CompiledTemplate {
  let fn: HandlebarsTemplateDelegate;
  try {
    // noEscape: this is shell, not HTML; values that need it go through {{quote}}.
    fn = hb.compile(text, { strict: true, noEscape: true });
  } catch (e) {
    throw new ThemisError('INPUT', `template ${where}: ${(e as Error).message}`, { cause: e });
  }
  return (context) => {
    try {
      return fn(context);
    } catch (e) {
      const msg = (e as Error).message.replace(/\s+/g, ' ').trim();
      const hint = /not defined in/.test(msg) ? '; see the README section "Batch-script templates" for the variables a template may use' : '';
      throw new ThemisError('INPUT', `template ${where}: ${msg}${hint}`, { cause: e });
    }
  };
}

/** Read and compile a template file. */
export function loadTemplate(file: string): CompiledTemplate {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ThemisError('INPUT', `cannot read template ${file}: ${describeFsError(e)}; check the --template path`, { cause: e });
  }
  return compileTemplate(text, file);
}
