import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonSync, sparePathFor, writeFileReplacingSync } from '../../src/store/atomic.js';
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

describe('writeFileReplacingSync', () => {
  it('fills the spare gen left for the first write (no create), then writes new inodes; the replaced version is never reused', () => {
    const dir = tempDir();
    const file = path.join(dir, 'status.json');
    fs.writeFileSync(file, '{"v":0}\n');
    fs.writeFileSync(sparePathFor(file), '');
    const spare = fs.statSync(sparePathFor(file)).ino;
    writeFileReplacingSync(file, '{"v":1, "longer": "content"}\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('{"v":1, "longer": "content"}\n');
    expect(fs.statSync(file).ino).toBe(spare);
    expect(fs.readdirSync(dir)).toEqual(['status.json']);
    writeFileReplacingSync(file, '{"v":2}\n'); // no spare left: a temp file renamed into place
    expect(fs.readFileSync(file, 'utf8')).toBe('{"v":2}\n');
    expect(fs.readdirSync(dir)).toEqual(['status.json']);
  });

  it('cuts the tail when the spare held more than the new version', () => {
    const dir = tempDir();
    const file = path.join(dir, 'status.json');
    fs.writeFileSync(sparePathFor(file), 'x'.repeat(500));
    writeFileReplacingSync(file, '{"v":3}\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('{"v":3}\n');
  });

  it('says which file it could not write, and leaves no temp file behind', () => {
    const dir = tempDir();
    const file = path.join(dir, 'missing-dir', 'status.json');
    expect(() => writeFileReplacingSync(file, 'x')).toThrow(/cannot write .*missing-dir\/status\.json/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('never shows a reader a torn file while another process rewrites it every millisecond', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'status.json');
    fs.writeFileSync(file, JSON.stringify({ writer: 0, n: 0 }));
    fs.writeFileSync(sparePathFor(file), '');
    const script = path.join(dir, 'writer.mjs');
    fs.writeFileSync(
      script,
      `const { writeFileReplacingSync } = await import(${JSON.stringify(ATOMIC_JS)});
const [file, until] = process.argv.slice(2);
let n = 0;
const nap = new Int32Array(new SharedArrayBuffer(4));
// Far faster than any packer rewrites one status (twice per step).
while (Date.now() < Number(until)) {
  writeFileReplacingSync(file, JSON.stringify({ writer: 1, n: ++n, pad: 'x'.repeat(100 + (n % 400)) }));
  Atomics.wait(nap, 0, 0, 1);
}
process.stdout.write(String(n));`,
    );
    const until = Date.now() + 1500;
    const writer = spawn(process.execPath, [script, file, String(until)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const count = new Promise<number>((resolve) => {
      let out = '';
      writer.stdout!.on('data', (d) => (out += d));
      writer.on('close', () => resolve(Number(out)));
    });
    let reads = 0;
    while (Date.now() < until) {
      // A plain read, no retry: a torn version would fail to parse here.
      const v = JSON.parse(fs.readFileSync(file, 'utf8')) as { n: number };
      expect(typeof v.n).toBe('number');
      reads++;
      await new Promise((r) => setImmediate(r));
    }
    expect(await count).toBeGreaterThan(10);
    expect(reads).toBeGreaterThan(10);
    expect(fs.readdirSync(dir).sort()).toEqual(['status.json', 'writer.mjs']);
    expect(readJsonSync<{ writer: number }>(file)!.writer).toBe(1);
  }, 20_000);
});
