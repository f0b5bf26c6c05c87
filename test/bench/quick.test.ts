// Keeps the bench harness working: `bench/run.mjs --quick` exits 0 and writes a JSON result with
// every case present. Benchmarks are not tests: nothing here looks at a time or a ratio.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CASES = ['gen', 'launch', 'large', 'memory', 'status', 'packing', 'idle', 'srun', 'scale', 'metaops', 'summary'];

describe('bench --quick', () => {
  it('runs every case and writes the JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'themis-bench-test-'));
    const out = path.join(dir, 'quick.json');
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'bench/run.mjs'), '--quick', '--out', out], { encoding: 'utf8', timeout: 280_000 });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      const result = JSON.parse(fs.readFileSync(out, 'utf8'));
      expect(result.mode).toBe('quick');
      expect(typeof result.machine.cores).toBe('number');
      expect(Object.keys(result.cases).sort()).toEqual([...CASES].sort());
      for (const name of CASES) {
        const c = result.cases[name];
        expect(['ok', 'skipped'], `${name}: ${c.error ?? ''}`).toContain(c.status);
        if (c.status === 'ok') expect(c.rows.length, name).toBeGreaterThan(0);
        else expect(c.reason, name).toBeTruthy();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
