import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { PROJECT_ROOT } from './cli.js';

/**
 * Replace volatile values (temp dirs, the project checkout, the node binary) by placeholders so
 * rendered files can be compared with golden files. Longest first: the temp dir may sit inside the
 * project, and node may sit inside either.
 */
export function normaliseVolatile(text: string, extra: Record<string, string> = {}): string {
  const pairs: [string, string][] = [...Object.entries(extra).map(([from, to]) => [from, to] as [string, string]), [process.execPath, '<NODE>'], [PROJECT_ROOT, '<PROJECT>']];
  pairs.sort((a, b) => b[0].length - a[0].length);
  let out = text;
  for (const [from, to] of pairs) if (from !== '') out = out.split(from).join(to);
  return out;
}

/**
 * Compare `actual` with the golden file; `UPDATE_GOLDEN=1 npx vitest run …` rewrites the golden
 * file instead (review the diff like code before committing it).
 */
export function expectGolden(goldenFile: string, actual: string): void {
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.mkdirSync(path.dirname(goldenFile), { recursive: true });
    fs.writeFileSync(goldenFile, actual);
    return;
  }
  if (!fs.existsSync(goldenFile)) {
    throw new Error(`golden file ${goldenFile} is missing; run with UPDATE_GOLDEN=1 to create it, then review it`);
  }
  expect(actual, `differs from ${path.relative(PROJECT_ROOT, goldenFile)} (UPDATE_GOLDEN=1 rewrites it)`).toBe(fs.readFileSync(goldenFile, 'utf8'));
}
