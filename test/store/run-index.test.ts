import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { setupPaths } from '../../src/store/layout.js';
import { formatIndexBatch, readIndex, readIndexTable, writeIndexBatch } from '../../src/store/run-index.js';

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

describe('range stamps (state/index-stamps/NNNNNN.range): a plain batch read without its lines', () => {
  const runsOf = (root: string, from: number, n: number, prefix = 'runs/') => Array.from({ length: n }, (_, i) => ({ id: from + i, dir: path.join(root, `${prefix}${from + i}`) }));

  it('add writes a stamp for a plain batch, none for others; the table says what readIndex says', () => {
    const { setupDir, root } = setup([]);
    writeIndexBatch(setupDir, root, 1, runsOf(root, 1, 500));
    writeIndexBatch(setupDir, root, 2, [
      { id: 501, dir: path.join(root, 'runs/501') },
      { id: 503, dir: path.join(root, 'runs/503') },
    ]);
    writeIndexBatch(setupDir, root, 3, [...runsOf(root, 504, 3, 'sweep-a/r')]);
    writeIndexBatch(setupDir, root, 4, [{ id: 507, dir: '/elsewhere/507' }]);
    // The index directory holds the batches alone (scripts read index/*); stamps live in state/.
    expect(fs.readdirSync(setupPaths(setupDir).indexDir).sort()).toEqual(['000001.jsonl', '000002.jsonl', '000003.jsonl', '000004.jsonl']);
    expect(fs.readdirSync(setupPaths(setupDir).indexStampsDir).sort()).toEqual(['000001.range', '000003.range']);
    const got = tableEntries(setupDir, root);
    expect(got.entries).toEqual(readIndex(setupDir, root));
    expect(got.t.has(500) && got.t.has(503) && !got.t.has(502)).toBe(true);
    expect(got.t.known.subarray(1, 501).indexOf(0)).toBe(-1);
  });

  it('a fresh stamp stands for the lines; once the batch changes (by hand, a rewrite) the lines are read', () => {
    const { setupDir, root } = setup([]);
    writeIndexBatch(setupDir, root, 1, runsOf(root, 1, 50));
    const stampFile = path.join(setupPaths(setupDir).indexStampsDir, '000001.range');
    const stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
    expect(stamp).toMatchObject({ format: 1, first: 1, count: 50, prefix: 'runs/' });
    // The same stamp with another prefix: a reader that trusts it says so in the directories.
    fs.writeFileSync(stampFile, JSON.stringify({ ...stamp, prefix: 'stamped/' }));
    expect(tableEntries(setupDir, root).entries[7]).toEqual({ id: 8, dir: path.join(root, 'stamped/8') });
    // An edit by hand (a line appended): its stat changes, the stamp is stale, the lines decide.
    fs.appendFileSync(setupPaths(setupDir).indexFile(1), '{"id":51,"dir":"runs/51"}\n');
    const after = tableEntries(setupDir, root);
    expect(after.entries).toEqual(readIndex(setupDir, root));
    expect(after.entries).toHaveLength(51);
    expect(after.entries[7]).toEqual({ id: 8, dir: path.join(root, 'runs/8') });
  });

  it('a damaged or foreign stamp is ignored', () => {
    const { setupDir, root } = setup([]);
    writeIndexBatch(setupDir, root, 1, runsOf(root, 1, 20));
    const stampFile = path.join(setupPaths(setupDir).indexStampsDir, '000001.range');
    const stamp = JSON.parse(fs.readFileSync(stampFile, 'utf8'));
    // Each would show in the directories if it were trusted (prefix `stamped/`).
    const other = { ...stamp, prefix: 'stamped/' };
    for (const bad of [
      '{"format":1,"first":1',
      JSON.stringify({ ...other, format: 2 }),
      JSON.stringify({ ...stamp, prefix: '../x/' }),
      JSON.stringify({ ...other, count: 0 }),
      JSON.stringify({ ...other, ino: '1' }),
      JSON.stringify({ ...other, mtimeNs: '5' }),
    ]) {
      fs.writeFileSync(stampFile, bad);
      expect(tableEntries(setupDir, root).entries).toEqual(readIndex(setupDir, root));
    }
  });
});
