import { describe, expect, it } from 'vitest';
import textWidth from '../../src/cli/text-width.js';

describe('textWidth (the help layout width the bundled CLI gives yargs)', () => {
  it('counts printable ASCII one column each', () => {
    expect(textWidth('')).toBe(0);
    expect(textWidth('--setup-dir  [string]')).toBe(21);
  });

  it('gives escape sequences, controls and combining marks no width', () => {
    expect(textWidth('\u001b[1mbold\u001b[22m')).toBe(4);
    expect(textWidth('\u001b]8;;https://x\u0007link\u001b]8;;\u0007')).toBe(4);
    expect(textWidth('a\tb\n')).toBe(2);
    expect(textWidth('e\u0301')).toBe(1);
    expect(textWidth('a\u200bb')).toBe(2);
  });

  it('gives East Asian wide characters and emoji two columns, other letters one', () => {
    expect(textWidth('日本語')).toBe(6);
    expect(textWidth('ｔｈｅｍｉｓ')).toBe(12);
    expect(textWidth('😀')).toBe(2);
    expect(textWidth('Ωμέγα')).toBe(5);
  });

  it('answers 0 for what is not a string, as string-width does', () => {
    expect(textWidth(undefined as unknown as string)).toBe(0);
  });
});
