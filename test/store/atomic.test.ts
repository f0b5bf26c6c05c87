import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonSync, sparePathFor, writeFileRecycledSync } from '../../src/store/atomic.js';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});
const ATOMIC_JS = pathToFileURL(path.join(PROJECT_ROOT, 'dist/store/atomic.js')).href;

function tempDir(): string {
  const d = makeTempDir('themis-atomic-');
  temps.push(d);
  return d;
}

describe('writeFileRecycledSync', () => {
  it("replaces the file whole and reuses the replaced version's inode for the next write", () => {
    const dir = tempDir();
    const file = path.join(dir, 'status.json');
    writeFileRecycledSync(file, '{"v":1}\n'); // no file yet: a new inode, no spare
    expect(fs.readFileSync(file, 'utf8')).toBe('{"v":1}\n');
    expect(fs.readdirSync(dir)).toEqual(['status.json']);
    const first = fs.statSync(file).ino;
    writeFileRecycledSync(file, '{"v":2, "longer": "content"}\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['.status.json.spare', 'status.json']);
    expect(fs.statSync(sparePathFor(file)).ino).toBe(first);
    const second = fs.statSync(file).ino;
    writeFileRecycledSync(file, '{"v":3}\n'); // shorter than what the spare held: truncated
    expect(fs.readFileSync(file, 'utf8')).toBe('{"v":3}\n');
    expect(fs.statSync(file).ino).toBe(first);
    expect(fs.statSync(sparePathFor(file)).ino).toBe(second);
    expect(fs.readdirSync(dir).sort()).toEqual(['.status.json.spare', 'status.json']);
  });

  it('says which file it could not write, and leaves no temp file behind', () => {
    const dir = tempDir();
    const file = path.join(dir, 'missing-dir', 'status.json');
    expect(() => writeFileRecycledSync(file, 'x')).toThrow(/cannot write .*missing-dir\/status\.json/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('never shows a reader a torn file while three processes rewrite it every millisecond', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'status.json');
    writeFileRecycledSync(file, JSON.stringify({ writer: 0, n: 0, pad: 'x'.repeat(300) }));
    const script = path.join(dir, 'writer.mjs');
    fs.writeFileSync(
      script,
      `const { writeFileRecycledSync } = await import(${JSON.stringify(ATOMIC_JS)});
const [file, id, until] = process.argv.slice(2);
let n = 0;
const nap = new Int32Array(new SharedArrayBuffer(4));
// Faster than any packer rewrites one status (twice per step), and three writers at once, where
// the claim allows one: a stress of the recycling, not a model of real use.
while (Date.now() < Number(until)) {
  writeFileRecycledSync(file, JSON.stringify({ writer: Number(id), n: ++n, pad: 'x'.repeat(100 + (n % 400)) }));
  Atomics.wait(nap, 0, 0, 1);
}
process.stdout.write(String(n));`,
    );
    const until = Date.now() + 1500;
    const writers = [1, 2, 3].map((id) => spawn(process.execPath, [script, file, String(id), String(until)], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const counts = writers.map(
      (w) =>
        new Promise<number>((resolve) => {
          let out = '';
          w.stdout!.on('data', (d) => (out += d));
          w.on('close', () => resolve(Number(out)));
        }),
    );
    let reads = 0;
    while (Date.now() < until) {
      const v = readJsonSync<{ writer: number; n: number }>(file)!;
      expect(typeof v.n).toBe('number');
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    const written = await Promise.all(counts);
    for (const n of written) expect(n).toBeGreaterThan(10);
    expect(reads).toBeGreaterThan(10);
    // Whatever the interleaving, what is left is the last write of some writer plus at most a spare
    // and the stray names of a writer that lost a race to return its old version (temp names only).
    const left = fs.readdirSync(dir).filter((n) => n !== 'writer.mjs' && n !== 'status.json' && n !== '.status.json.spare');
    for (const n of left) expect(n).toMatch(/^\.status\.json\.tmp-/);
    expect(readJsonSync<{ writer: number }>(file)!.writer).toBeGreaterThan(0);
  }, 20_000);
});
