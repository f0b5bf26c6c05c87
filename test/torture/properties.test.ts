import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ThemisError } from '../../src/model/errors.js';
import { parseSamples } from '../../src/model/samples.js';
import { quoteShell } from '../../src/model/quote.js';
import { compileRunDirTemplate, isInside, planRunDirs } from '../../src/render/run-dirs.js';
import { replaceTokens } from '../../src/render/tokens.js';
import { makeTempDir } from '../helpers/cli.js';
import { LONG, SEED, bump, flushFigures, newFigures } from './helpers.js';

/**
 * Hostile and arbitrary input for the pure parsers: the CSV sample reader, the %%token%% replacer,
 * run-directory naming and shell quoting. Properties: round trips keep every byte, arbitrary input
 * never crashes, and every rejection is a ThemisError with a message.
 */

const figures = newFigures();
afterAll(() => flushFigures('properties', figures));

const RUNS = LONG ? 5000 : 1000;
const params = (kind: string) => {
  bump(figures.badInputsByKind, kind, RUNS);
  figures.badInputs += RUNS;
  return { numRuns: RUNS, seed: SEED };
};

/** Either a value, or a ThemisError with a non-empty message; anything else fails the property. */
function themisOrValue<T>(f: () => T): T | ThemisError {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof ThemisError)) throw new Error(`not a ThemisError: ${(e as Error)?.stack ?? e}`);
    expect(e.message.length).toBeGreaterThan(10);
    return e;
  }
}

// Text full of what breaks parsers and shells: quotes, separators, newlines, $(…), `…`, globs,
// unicode (including astral and combining characters), BOMs, NUL and control characters.
const nasty = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({
    unit: fc.constantFrom(
      '"',
      "'",
      ',',
      ';',
      '\n',
      '\r',
      '\t',
      ' ',
      '$',
      '(',
      ')',
      '`',
      '*',
      '?',
      '[',
      ']',
      '{',
      '}',
      '%',
      '\\',
      '|',
      '&',
      '<',
      '>',
      '#',
      '~',
      '!',
      '\u0000',
      '\ufeff',
      'é',
      '😀',
      '\u0301',
      'a',
      '1',
    ),
    maxLength: 30,
  }),
  fc.constantFrom('$(touch canary)', '`touch canary`', "'; touch canary; '", '"; touch canary; "', '*', '../../etc/passwd', '%%x%%', '{run_id}', '\n#SBATCH --wrap=x', '-rf /', ''),
);

function csvField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

describe('CSV sample reader', () => {
  it('round trip: quoted fields keep every character (quotes, commas, newlines, unicode)', () => {
    const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }).filter((k) => k.trim() === k && k.length > 0 && !/[\r\n\0\ufeff]/.test(k) && k !== '__proto__');
    const value = fc
      .string({ unit: fc.oneof(fc.constantFrom('"', ',', '\n', ' ', '$', '`', ';', '*', 'é', '😀', '\t'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), maxLength: 20 })
      .filter((v) => !/[\r\0]/.test(v));
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 1, maxLength: 5 }), fc.array(fc.array(value, { minLength: 5, maxLength: 5 }), { minLength: 1, maxLength: 6 }), (keys, rows) => {
        const text = [keys.map(csvField).join(','), ...rows.map((r) => keys.map((_, c) => csvField(r[c]!)).join(','))].join('\n') + '\n';
        const got = themisOrValue(() => parseSamples(text, 'samples.csv'));
        if (got instanceof ThemisError) throw new Error(`rejected a well-formed CSV: ${got.message}\n${JSON.stringify(text)}`);
        expect(got.keys).toEqual(keys);
        expect(got.samples.map((s) => keys.map((k) => s[k]))).toEqual(rows.map((r) => r.slice(0, keys.length)));
      }),
      params('CSV round trip'),
    );
  });

  it('arbitrary text (CSV, JSON, JSONL): a result or a ThemisError, never a crash', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.array(nasty, { maxLength: 12 }).map((a) => a.join(fc.sample(fc.constantFrom(',', '\n', '"', ''), 1)[0]!)),
    );
    for (const file of ['s.csv', 's.json', 's.jsonl']) {
      fc.assert(
        fc.property(text, (t) => {
          themisOrValue(() => parseSamples(t, file));
        }),
        params(`arbitrary ${path.extname(file)} samples`),
      );
    }
  });
});

describe('token replacer', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}$/);
  const literal = fc.string({ maxLength: 12 }).filter((s) => !s.includes('%'));
  it('round trip: every %%token%% becomes its exact value; values are never expanded again', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(literal, name), { maxLength: 6 }), literal, fc.dictionary(name, nasty), (pieces, tail, extra) => {
        const values: Record<string, string> = { ...extra };
        for (const [, n] of pieces) values[n] ??= `<${n}>%%${n}%%$(x)`;
        const text = pieces.map(([l, n]) => `${l}%%${n}%%`).join('') + tail;
        const want = pieces.map(([l, n]) => l + values[n]).join('') + tail;
        expect(replaceTokens(text, values, { file: 'deck.in' })).toBe(want);
      }),
      params('token round trip'),
    );
  });

  it('arbitrary text and values: a string or a ThemisError naming file:line; text without tokens is unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 120 }), fc.dictionary(fc.string({ maxLength: 6 }), nasty), fc.boolean(), (text, values, keep) => {
        const got = themisOrValue(() => replaceTokens(text, values, { file: 'deck.in', keepUnknown: keep }));
        if (got instanceof ThemisError) expect(got.message).toMatch(/deck\.in:\d+: %%/);
        else if (!/%%[A-Za-z0-9_][A-Za-z0-9_.-]*%%/.test(text)) expect(got).toBe(text);
        if (keep) expect(typeof got).toBe('string');
      }),
      params('arbitrary deck text'),
    );
  });
});

describe('run-directory naming', () => {
  const root = '/ens/root';
  const setup = '/ens/root/.themis_setup';
  it('arbitrary templates: compiled or a ThemisError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 30 }), nasty), (t) => {
        themisOrValue(() => compileRunDirTemplate(t));
      }),
      params('arbitrary --run-dir-names'),
    );
  });

  it('hostile sample values: every directory stays strictly inside the root and outside the setup dir, or a ThemisError', () => {
    const template = fc.constantFrom('runs/{k}', '{k}', 'runs/{run_id:04}-{k}', '{k}/{j}', '../{k}', 'runs/{k}/../..', '/abs/{k}', 'runs/{j}{k}');
    fc.assert(
      fc.property(template, fc.array(fc.record({ k: nasty, j: nasty }), { minLength: 1, maxLength: 5 }), (tpl, samples) => {
        const got = themisOrValue(() =>
          planRunDirs(
            compileRunDirTemplate(tpl),
            root,
            setup,
            samples.map((sample, i) => ({ id: i + 1, sample })),
          ),
        );
        if (got instanceof ThemisError) return;
        for (const d of got) {
          if (tpl.startsWith('/abs') || tpl.startsWith('..')) continue; // outside the root by the user's own choice
          expect(isInside(root, d), d).toBe(true);
          expect(d === setup || isInside(setup, d)).toBe(false);
        }
        expect(new Set(got).size).toBe(got.length);
      }),
      params('hostile run-dir sample values'),
    );
  });

  it('round trip: safe values name the directory exactly', () => {
    const safe = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.é😀 -]{0,10}$/u).filter((s) => s !== '.' && s !== '..');
    fc.assert(
      fc.property(fc.uniqueArray(safe, { minLength: 1, maxLength: 6 }), (vals) => {
        const dirs = planRunDirs(
          compileRunDirTemplate('runs/{run_id:03}-{k}'),
          root,
          setup,
          vals.map((k, i) => ({ id: i + 1, sample: { k } })),
        );
        for (const [i, d] of dirs.entries()) expect(d).toBe(`${root}/runs/${String(i + 1).padStart(3, '0')}-${vals[i]}`);
      }),
      params('run-dir round trip'),
    );
  });
});

describe('shell quoting', () => {
  it('any value quoted by quoteShell reaches a real sh as the exact same bytes, and runs nothing', () => {
    const dir = makeTempDir('themis-quote-');
    const canary = path.join(dir, 'canary');
    const values = fc.sample(
      fc.oneof(nasty, fc.string({ unit: 'binary', maxLength: 40 })).map((s) => s.replace(/\0/g, '') + fc.sample(fc.constantFrom('', '$(touch canary)', '`touch canary`', "';touch canary;'"), 1)[0]),
      { numRuns: RUNS, seed: SEED },
    );
    bump(figures.badInputsByKind, 'shell-quoted values run through sh', values.length);
    figures.badInputs += values.length;
    const script = values.map((v) => `printf '%s\\0' ${quoteShell(v)}`).join('\n') + '\n';
    const r = spawnSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(values);
    expect(fs.existsSync(canary)).toBe(false);
  });
});
