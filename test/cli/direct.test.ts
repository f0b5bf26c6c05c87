import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDirectStatus, runDirect } from '../../src/cli/direct.js';
import { makeTempDir } from '../helpers/cli.js';
import { cli, writeHandEnsemble, type HandRun } from '../api/helpers.js';

/**
 * `themis status` without yargs (src/cli/direct.ts): the forms it takes give what yargs gives,
 * output and exit code alike, and every other form is left to yargs.
 */
let root: string;
let setupDir: string;
const RUNS: HandRun[] = [
  { sample: { x: '1' }, status: 'successful' },
  { sample: { x: '2' }, status: 'failed', reason: 'exit 3' },
  { sample: { x: '3' }, status: 'queued' },
  { sample: { x: '4' }, status: 'killed' },
];
beforeAll(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, RUNS);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function direct(args: string[]): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const line = (t: string) => (t.endsWith('\n') ? t : `${t}\n`);
  const output = {
    out: (t: string) => {
      stdout += line(t);
    },
    err: (t: string) => {
      stderr += line(t);
    },
    interactive: false,
  };
  const code = await runDirect(args, output);
  process.exitCode = undefined;
  return { code, stdout, stderr };
}

describe('themis status, parsed without yargs', () => {
  it('takes the plain forms, with the values yargs would give', () => {
    expect(parseDirectStatus(['status'])).toEqual({ setupDir: './.themis_setup', json: false, verbose: 0, count: false, allocations: true, full: false });
    expect(parseDirectStatus(['status', 'failed,killed', 'queued', '--json', '-c', '--no-allocations', '--full', '--setup-dir=/x/y', '-v'])).toEqual({
      setupDir: '/x/y',
      json: true,
      verbose: 1,
      count: true,
      allocations: false,
      full: true,
      names: ['failed,killed', 'queued'],
    });
    expect(parseDirectStatus(['status', '--setup-dir', 'here', '--count'])).toMatchObject({ setupDir: 'here', count: true });
  });

  it('leaves every other form to yargs', () => {
    for (const argv of [
      ['run'],
      ['--json', 'status'],
      ['status', '--help'],
      ['status', '-h'],
      ['status', '--json', '--json'],
      ['status', '-c', '--count'],
      ['status', '--allocations', '--no-allocations'],
      ['status', '-vv'],
      ['status', '--verbose=2'],
      ['status', '--setup-dir'],
      ['status', '--setup-dir', '--json'],
      ['status', '--setup-dir='],
      ['status', '--bogus'],
      ['status', '--', 'failed'],
      ['status', 'Failed'],
      ['status', '--json=false'],
    ]) {
      expect(parseDirectStatus(argv), argv.join(' ')).toBeUndefined();
    }
  });

  it('answers as the yargs path does: overview, ids, counts and errors', async () => {
    const S = ['--setup-dir', setupDir];
    for (const args of [
      ['status', '--json', '--no-allocations', ...S],
      ['status', '--no-allocations', '--full', ...S],
      ['status', 'failed,killed', ...S],
      ['status', 'queued', 'successful', '--json', ...S],
      ['status', 'failed', '-c', ...S],
      ['status', '--count', '--json', `--setup-dir=${setupDir}`],
      ['status', 'nosuch', ...S],
      ['status', '--setup-dir', `${root}/missing`],
    ]) {
      const viaYargs = await cli(args);
      const here = await direct(args);
      expect(here, args.join(' ')).toEqual(viaYargs);
    }
    expect((await direct(['status', 'failed,killed', '--setup-dir', setupDir])).stdout).toBe('2 4\n');
    expect((await direct(['status', '--setup-dir', `${root}/missing`])).code).toBe(2);
  });
});
