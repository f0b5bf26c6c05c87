import Handlebars from 'handlebars';
import fs from 'node:fs';
import { ThemisError, describeFsError } from '../model/errors.js';
import { quoteArgv, quoteShell } from '../model/quote.js';

/**
 * An isolated Handlebars instance (helpers registered here never leak into a user's own use of
 * Handlebars). Templates are compiled in strict mode: a variable the template names but the
 * context lacks is an error, not an empty string in a batch script.
 */
const hb = Handlebars.create();

interface HelperOptions {
  loc?: { start: { line: number; column: number }; end: { line: number; column: number } };
}

/** Thrown by a helper given an undefined value: strict mode does not check helper arguments. */
class UndefinedArgument extends Error {
  constructor(readonly loc: HelperOptions['loc']) {
    super('undefined helper argument');
  }
}

function defined(value: unknown, options: HelperOptions): unknown {
  if (value === undefined) throw new UndefinedArgument(options.loc);
  return value;
}

hb.registerHelper('quote', (value: unknown, options: HelperOptions) => new hb.SafeString(quoteShell(defined(value, options))));
hb.registerHelper('quoteArgv', (value: unknown, options: HelperOptions) => {
  const list = defined(value, options);
  if (!Array.isArray(list)) throw new Error(`quoteArgv wants a list, got ${JSON.stringify(list)}`);
  return new hb.SafeString(quoteArgv(list));
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
      if (e instanceof UndefinedArgument && e.loc) {
        const { start, end } = e.loc;
        const line = text.split('\n')[start.line - 1] ?? '';
        const snippet = start.line === end.line ? line.slice(start.column, end.column) : line.trim();
        throw new ThemisError(
          'INPUT',
          `template ${where}:${start.line}: ${snippet} names a variable that is not defined; ` + 'see the README section "Batch-script templates" for the variables a template may use',
        );
      }
      const msg = (e as Error).message.replace(/\s+/g, ' ').trim();
      // Handlebars says `"nodez" not defined in [object Object] - 2:2`: name the variable and line instead.
      const undef = /^"([^"]+)" not defined in .* - (\d+):(\d+)$/.exec(msg);
      if (undef) {
        throw new ThemisError(
          'INPUT',
          `template ${where}:${undef[2]}: variable "${undef[1]}" is not defined; ` + 'see the README section "Batch-script templates" for the variables a template may use',
          { cause: e },
        );
      }
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
