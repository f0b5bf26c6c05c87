import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { currentRun, parseFile, resultFromFile, sample, setResult } from '../../src/api/runtime.js';
import { readResult } from '../../src/store/records.js';
import { makeTempDir, runThemis } from '../helpers/cli.js';
import { writeHandEnsemble } from './helpers.js';
import { ensureBuilt } from './build.js';

let root: string;
let setupDir: string;
let run2: string;
beforeEach(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, [{ sample: { a: '1' } }, { sample: { zeta: 'z', alpha: 0.5 }, sampleKeys: ['zeta', 'alpha'] }]);
  run2 = path.join(root, 'runs', '2');
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('runtime calls (in process)', () => {
  it('find the run from THEMIS_RUN_DIR, or from the working directory upward', () => {
    expect(currentRun({ env: { THEMIS_RUN_DIR: run2 } }).id).toBe(2);
    fs.mkdirSync(path.join(run2, 'sub', 'deeper'), { recursive: true });
    expect(currentRun({ env: {}, cwd: path.join(run2, 'sub', 'deeper') }).id).toBe(2);
    expect(() => currentRun({ env: {}, cwd: root })).toThrow(/not inside a themis run/);
    expect(() => currentRun({ env: { THEMIS_RUN_DIR: root } })).toThrow(/not a themis run directory/);
  });

  it('sample() in input order; sample(key); an unknown key names the run and the keys', () => {
    const o = { env: { THEMIS_RUN_DIR: run2 } };
    expect(Object.keys(sample(undefined, o))).toEqual(['zeta', 'alpha']);
    expect(sample('alpha', o)).toBe(0.5);
    expect(() => sample('nope', o)).toThrow('run 2 has no sample key "nope"; its keys are: zeta, alpha');
  });

  it('setResult stores JSON data; non-JSON values are refused', async () => {
    const o = { env: { THEMIS_RUN_DIR: run2 } };
    await setResult({ e: 1 }, o);
    expect(readResult(run2)).toEqual({ e: 1 });
    await expect(setResult(() => 1, o)).rejects.toThrow(/JSON cannot hold/);
    await expect(setResult(10n, o)).rejects.toThrow(/not JSON-serialisable/);
  });

  it('resultFromFile: JSON when it parses, else text; binary refused', async () => {
    const o = { env: { THEMIS_RUN_DIR: run2 }, cwd: run2 };
    fs.writeFileSync(path.join(run2, 'r.json'), '{"energy": -1.5}\n');
    await resultFromFile('r.json', o);
    expect(readResult(run2)).toEqual({ energy: -1.5 });
    fs.writeFileSync(path.join(run2, 'r.txt'), 'converged after 12 steps\n');
    await resultFromFile('r.txt', o);
    expect(readResult(run2)).toBe('converged after 12 steps\n');
    fs.writeFileSync(path.join(run2, 'r.bin'), Buffer.from([0, 1, 2, 255]));
    await expect(resultFromFile('r.bin', o)).rejects.toThrow(/not UTF-8 text/);
    await expect(resultFromFile('missing', o)).rejects.toThrow(/cannot read result file/);
  });

  it('parseFile replaces tokens with the sample and built-ins, keeps the mode; unknown tokens are an error', async () => {
    const o = { env: { THEMIS_RUN_DIR: run2 }, cwd: run2 };
    fs.writeFileSync(path.join(run2, 'deck.tmpl'), 'z=%%zeta%% a=%%alpha%% id=%%themis_run_id%%\r\n<&>\n', { mode: 0o750 });
    await parseFile('deck.tmpl', 'deck.in', o);
    expect(fs.readFileSync(path.join(run2, 'deck.in'), 'utf8')).toBe('z=z a=0.5 id=2\r\n<&>\n');
    expect(fs.statSync(path.join(run2, 'deck.in')).mode & 0o777).toBe(0o750);
    fs.writeFileSync(path.join(run2, 'bad.tmpl'), 'x=%%nope%%\n');
    await expect(parseFile('bad.tmpl', 'bad.in', o)).rejects.toThrow(/%%nope%%/);
    expect(fs.existsSync(path.join(run2, 'bad.in'))).toBe(false);
  });
});

describe('runtime commands (the built binary, as a step would run them)', () => {
  beforeAll(() => ensureBuilt());
  it('sample, result set, result file, parse', () => {
    const env = { THEMIS_RUN_DIR: run2, THEMIS_SETUP_DIR: setupDir };
    const s = runThemis(['sample'], { cwd: run2, env });
    expect(s.stdout).toBe('zeta=z\nalpha=0.5\n');
    expect(runThemis(['sample', 'alpha', '--json'], { cwd: run2, env }).stdout).toBe('0.5\n');
    const bad = runThemis(['sample', 'nope'], { cwd: run2, env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('run 2 has no sample key "nope"');
    expect(runThemis(['result', 'set', '{"y": [1, 2]}'], { cwd: run2, env }).code).toBe(0);
    expect(readResult(run2)).toEqual({ y: [1, 2] });
    const notJson = runThemis(['result', 'set', 'hello'], { cwd: run2, env });
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('not JSON');
    fs.writeFileSync(path.join(run2, 'out.txt'), '7\n');
    expect(runThemis(['result', 'file', 'out.txt'], { cwd: run2, env: {} }).code).toBe(0);
    expect(readResult(run2)).toBe(7);
    fs.writeFileSync(path.join(run2, 't'), '%%zeta%%\n');
    expect(runThemis(['parse', 't', 'u'], { cwd: run2, env }).code).toBe(0);
    expect(fs.readFileSync(path.join(run2, 'u'), 'utf8')).toBe('z\n');
    const outside = runThemis(['sample'], { cwd: root, env: { THEMIS_RUN_DIR: '' } });
    expect(outside.code).toBe(2);
    expect(outside.stderr).toContain('not inside a themis run');
  });
});
