import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { setupPaths } from '../../src/store/layout.js';
import { formatIndexBatch, readIndex, readIndexTable } from '../../src/store/run-index.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

function setup(batches: string[]): { setupDir: string; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'themis-index-'));
  temps.push(root);
  const setupDir = path.join(root, '.themis_setup');
  batches.forEach((text, i) => {
    const file = setupPaths(setupDir).indexFile(i + 1);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  });
  return { setupDir, root };
}

const tableEntries = (setupDir: string, root: string) => {
  const t = readIndexTable(setupDir, root);
  return { ids: [...t.ids], entries: Array.from({ length: t.count }, (_, i) => t.entryAt(i)), t };
};

describe('readIndexTable (the index without an object per run)', () => {
  it('says what readIndex says, in the same order, across batches, plain lines and others', () => {
    const root0 = '/r';
    const plain = formatIndexBatch(
      root0,
      Array.from({ length: 300 }, (_, i) => ({ id: i + 1, dir: `${root0}/runs/${i + 1}` })),
    );
    const { setupDir, root } = setup([
      plain.replaceAll('/r/', ''),
      // Written by hand or by an older themis: other key orders, an absolute directory, escapes,
      // a relative path that resolves elsewhere, blank lines.
      '{"dir":"runs/x","id":301}\n\n{"id":302,"dir":"/elsewhere/run 302"}\n{"id":303,"dir":"runs/a\\"b"}\n{"id":304,"dir":"runs/../up"}\n',
      '{"id":305,"dir":"runs/305"}',
    ]);
    const want = readIndex(setupDir, root);
    const got = tableEntries(setupDir, root);
    expect(want).toHaveLength(305);
    expect(got.ids).toEqual(want.map((e) => e.id));
    expect(got.entries).toEqual(want);
    expect(got.entries[301]).toEqual({ id: 302, dir: '/elsewhere/run 302' });
    expect(got.entries[303]).toEqual({ id: 304, dir: path.join(root, 'up') });
    expect(got.t.has(1) && got.t.has(305) && got.t.has(303)).toBe(true);
    expect(got.t.has(0) || got.t.has(306) || got.t.has(-1) || got.t.has(1e9)).toBe(false);
  });

  it('an ensemble with no index yet has no runs', () => {
    const { setupDir, root } = setup([]);
    expect(readIndexTable(setupDir, root).count).toBe(0);
  });

  it('names the file and line of a corrupt entry, and refuses a run id that is not a small integer', () => {
    const a = setup(['{"id":1,"dir":"runs/1"}\n{"i\n']);
    expect(() => readIndexTable(a.setupDir, a.root)).toThrow(/000001\.jsonl:2: corrupt index line; run `themis doctor`/);
    // Damage after the id shows when that run's directory is wanted.
    const c = setup(['{"id":1,"dir":"runs/1"}\n{"id":2,"dir":"runs/2"\n']);
    const t = readIndexTable(c.setupDir, c.root);
    expect(t.entryAt(0).dir).toBe(path.join(c.root, 'runs/1'));
    expect(() => t.entryAt(1)).toThrow(/000001\.jsonl: corrupt index line; run `themis doctor`/);
    const b = setup(['{"id":1,"dir":"runs/1"}\n{"id":1.5,"dir":"runs/x"}\n']);
    expect(() => readIndexTable(b.setupDir, b.root)).toThrow(/000001\.jsonl:2: index line with a bad run id/);
  });
});
