/**
 * The terminal width of a string, for laying out `--help` (the bundled CLI uses it in place of
 * yargs' `string-width`, see scripts/bundle.mjs). yargs renders its help text on every command run,
 * not only for `--help`, and `string-width` builds an `Intl.Segmenter` and Unicode property
 * regexes the first time: 11-15 ms of every `themis status`. Help text is ours and plain; this
 * counts code points the way wcwidth does: no width for escape sequences, controls and combining
 * marks, two columns for East Asian wide and fullwidth characters and emoji, one for the rest.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences are what it strips
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x25fd, 0x25fe],
  [0x2614, 0x2615],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x3fffd],
];

function isWide(cp: number): boolean {
  for (const [lo, hi] of WIDE) {
    if (cp < lo) return false;
    if (cp <= hi) return true;
  }
  return false;
}

function isZeroWidth(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || (cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0x20d0 && cp <= 0x20ff) || cp === 0xfeff;
}

export default function textWidth(text: string): number {
  if (typeof text !== 'string' || text === '') return 0;
  const plain = text.includes('\u001b') ? text.replace(ANSI, '') : text;
  let width = 0;
  for (let i = 0; i < plain.length; i++) {
    const code = plain.charCodeAt(i);
    // Printable ASCII, the whole of themis' own help, without a code point decode.
    if (code >= 0x20 && code < 0x7f) {
      width++;
      continue;
    }
    const cp = plain.codePointAt(i)!;
    if (cp > 0xffff) i++;
    if (isZeroWidth(cp)) continue;
    width += isWide(cp) ? 2 : 1;
  }
  return width;
}
