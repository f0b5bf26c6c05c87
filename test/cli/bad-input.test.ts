import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, THEMIS_BIN, listTree, makeTempDir } from '../helpers/cli.js';

/**
 * The bad-input corpus: one folder per case under fixtures/bad-input with its inputs and a
 * case.json {args, stderr (a regex), before?}. Each case must exit 2, name the culprit in its
 * message, and leave nothing on disk (no ensemble, no run directory, no staging directory).
 */
const CORPUS = path.join(FIXTURES, 'bad-input');
const cases = fs
  .readdirSync(CORPUS)
  .filter((n) => fs.existsSync(path.join(CORPUS, n, 'case.json')))
  .sort();
const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

interface Case {
  args: string[];
  stderr: string;
  before?: string[][];
}

function themis(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [THEMIS_BIN, ...args], { cwd, env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('bad-input corpus', () => {
  it('has at least 25 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.concurrent.each(cases)('%s: exit 2, names the culprit, leaves nothing', async (name) => {
    const c = JSON.parse(fs.readFileSync(path.join(CORPUS, name, 'case.json'), 'utf8')) as Case;
    const dir = makeTempDir(`themis-bad-${name}-`);
    temps.push(dir);
    fs.cpSync(path.join(CORPUS, name), dir, { recursive: true });
    fs.rmSync(path.join(dir, 'case.json'));
    for (const pre of c.before ?? []) {
      const r = await themis(pre, dir);
      expect(r.stderr, `setup command ${pre.join(' ')}`).toBe('');
    }
    const before = listTree(dir);
    const r = await themis(c.args, dir);
    expect(r.stderr).toMatch(new RegExp(c.stderr));
    expect(r.stderr).toMatch(/^themis: /);
    expect(r.stderr).not.toMatch(/unexpected error|at .*\.js:\d+/);
    expect(r.code).toBe(2);
    expect(listTree(dir)).toEqual(before);
  });
});
