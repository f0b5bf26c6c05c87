import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileTokens, decodeTextFile, findTokens, renderTemplate, replaceTokens, unknownTokens, valueText } from '../../src/render/tokens.js';

describe('replaceTokens', () => {
  it('inserts values as plain text, never HTML-escaped', () => {
    expect(replaceTokens("a=%%a%% b='%%b%%'\n", { a: `<'&">`, b: 7 }, { file: 'deck' })).toBe(`a=<'&"> b='7'\n`);
  });

  it('keeps CRLF and lone CR line endings byte for byte', () => {
    expect(replaceTokens('x=%%x%%\r\ny=%%y%%\rz\n', { x: '1', y: '2' })).toBe('x=1\r\ny=2\rz\n');
  });

  it('leaves shell constructs alone: ${a%%x}${b%%y}, 100%%, %% a %%', () => {
    const text = 'echo ${a%%x}${b%%y} 100%% %% a %% %%\n';
    expect(replaceTokens(text, {})).toBe(text);
  });

  it('lists every unknown token with file:line before failing', () => {
    expect(() => replaceTokens('a=%%a%%\nb=%%nope%%\n\nc=%%also_no%% %%a%%\n', { a: 1 }, { file: 'deck.in' })).toThrow(/unknown tokens[\s\S]*deck\.in:2: %%nope%%[\s\S]*deck\.in:4: %%also_no%%/);
  });

  it('keeps unknown tokens verbatim when asked', () => {
    expect(replaceTokens('%%a%% %%b%%', { a: 1 }, { keepUnknown: true })).toBe('1 %%b%%');
  });

  it('keys with dots and dashes are matched literally (no regex injection)', () => {
    expect(replaceTokens('%%a.b%% %%aXb%%', { 'a.b': 'dot', aXb: 'x' })).toBe('dot x');
  });

  it('renders numbers, booleans with String() and objects as JSON', () => {
    expect(valueText(1.5)).toBe('1.5');
    expect(valueText(false)).toBe('false');
    expect(valueText({ k: [1, 2] })).toBe('{"k":[1,2]}');
    expect(valueText(null)).toBe('null');
  });

  it('property: text without tokens is unchanged; replacement equals a naive split/join', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (text, value) => {
        const clean = text.replace(/%/g, '');
        expect(replaceTokens(clean, {})).toBe(clean);
        expect(replaceTokens(`${clean}%%v%%${clean}`, { v: value })).toBe(clean + value + clean);
      }),
    );
  });
});

describe('compiled templates', () => {
  it('find tokens with lines, render with a lookup, report unknown ones', () => {
    const t = compileTokens('x\n%%a%% %%b%%\n%%a%%', 'f');
    expect(findTokens('x\n%%a%% %%b%%\n%%a%%')).toEqual([
      { name: 'a', line: 2 },
      { name: 'b', line: 2 },
      { name: 'a', line: 3 },
    ]);
    expect(renderTemplate(t, (n) => (n === 'a' ? 'A' : undefined))).toBe('x\nA %%b%%\nA');
    expect(unknownTokens(t, (n) => n === 'a')).toEqual(['f:2: %%b%%']);
  });
});

describe('decodeTextFile', () => {
  it('refuses binary content', () => {
    expect(() => decodeTextFile(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1]), 'a.out')).toThrow(/a\.out looks binary/);
    expect(() => decodeTextFile(new Uint8Array([0xff, 0xfe, 0x41]), 'latin')).toThrow(/latin is not UTF-8 text/);
  });
  it('keeps a BOM', () => {
    expect(decodeTextFile(new TextEncoder().encode('\uFEFFx'), 'f')).toBe('\uFEFFx');
  });
});
