import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteShell } from '../../src/model/quote.js';
import { makeTempDir } from '../helpers/cli.js';
import { allFiles, bump, flushFigures, newFigures, themis } from './helpers.js';

/**
 * Sample values that are code in disguise, rendered everywhere a value can go: every scheduler's
 * batch script (job name, partition, bank from the command line; run-directory names from the
 * samples), the application script (values become quoted shell words), an input deck (values
 * are copied byte for byte) and argv (--vary-all args). Every script is then executed with bash on
 * this machine (directives are comments to bash, so this runs the whole script body): the canary
 * command in the values must never run, and the values must arrive with their exact bytes.
 */

const figures = newFigures();
afterAll(() => flushFigures('injection', figures));

const SCHEDULERS = ['slurm', 'lsf', 'flux', 'local'] as const;

/** Each value tries to run `touch canary-*` (relative: it would land in a run dir or the root). */
const VALUES = [
  '$(touch canary-dollar)',
  '`touch canary-backtick`',
  "'; touch canary-squote; '",
  '"; touch canary-dquote; "',
  'a\nb; touch canary-newline',
  'x;touch canary-semi',
  '&& touch canary-and &',
  '| touch canary-pipe',
  '> canary-redirect',
  '$((1+1))${IFS}touch${IFS}canary-ifs',
  '\\$(touch canary-escaped)',
  "$'\\x41' touch canary-ansi",
  '*',
  '?[a-z]*',
  '{a,b}',
  '~root',
  '$HOME',
  '%%label%%',
  '{run_id}',
  '-rf',
  '--help',
  ' leading and trailing ',
  'tab\there',
  'é😀\u0301 ünïcödé',
  'x\r\ny; touch canary-crlf',
  '!!',
  '#SBATCH --wrap=touch canary-directive',
];

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what the names must not hold
const dirName = (v: string) => v.replace(/[\u0000-\u001f\u007f]/g, '_');

function csvField(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

describe('args with bare shell operators', () => {
  it('are refused at gen (exit 2, file:line and the operator named), never passed to a shell', () => {
    const root = makeTempDir('themis-inject-args-');
    fs.writeFileSync(path.join(root, 'app.sh'), '#!/bin/sh\ntrue\n', { mode: 0o755 });
    const bad = ['x; touch canary', 'x | touch canary', 'x && touch canary', '$(touch canary)', 'x > canary', '`touch canary`'];
    fs.writeFileSync(path.join(root, 's.csv'), ['args', ...bad.map(csvField)].join('\n') + '\n');
    bump(figures.badInputsByKind, 'args with bare shell operators', bad.length);
    figures.badInputs += bad.length;
    const g = themis(['gen', './app.sh', 's.csv', '--vary-all', '--scheduler', 'local'], root);
    expect(g.code).toBe(2);
    expect(g.stderr).toMatch(/s\.csv:2: args: shell operator/);
    expect(fs.existsSync(path.join(root, '.themis_setup'))).toBe(false);
    expect(allFiles(root).filter((p) => path.basename(p).startsWith('canary'))).toEqual([]);
  });
});

describe('hostile sample values in batch scripts, app scripts, decks and argv', () => {
  let root: string;
  const jobName = '$(touch canary-job)`touch canary-job2`;"\'\n#SBATCH --wrap=touch canary-job3';
  beforeAll(() => {
    root = makeTempDir('themis-inject-');
    // The app is a batch script: themis replaces %%tokens%% with shell-quoted words.
    fs.writeFileSync(path.join(root, 'app.sh'), '#!/bin/sh\nprintf "%s" %%label%% > label.out\nprintf "%s\\0" "$@" > args.out\n', { mode: 0o755 });
    fs.writeFileSync(path.join(root, 'deck.in'), 'label=%%label%%\nnote=%%note%%\nend\n');
    // Run-directory names refuse control characters (newline, tab, …): `name` is the value without them.
    const rows = VALUES.map((v, i) => [v, `../../${v}/$(touch canary-note-${i})`, `--flag ${quoteShell(v)} ${quoteShell(`$(touch canary-args-${i})`)}`, dirName(v)]);
    fs.writeFileSync(path.join(root, 'samples.csv'), ['label,note,args,name', ...rows.map((r) => r.map(csvField).join(','))].join('\n') + '\n');
  });

  it.each(SCHEDULERS)(
    '%s: gen renders, bash runs the batch script, no canary, exact bytes',
    (scheduler) => {
      const setup = path.join(root, `setup-${scheduler}`);
      const g = themis(
        [
          'gen',
          './app.sh',
          'samples.csv',
          '--parse',
          'deck.in',
          '--vary-all',
          '--scheduler',
          scheduler,
          // LSF: the CSM header, as before the flavours (classic would need --cores-per-node).
          ...(scheduler === 'lsf' ? ['--lsf-flavor', 'csm'] : []),
          '-m',
          jobName,
          '-p',
          'part$(touch canary-part)',
          '-b',
          "bank';touch canary-bank",
          '--run-dir-names',
          `runs-${scheduler}/{run_id:02}-{name}`,
          '--setup-dir',
          setup,
        ],
        root,
      );
      bump(figures.faults, `hostile values rendered (${scheduler})`);
      bump(figures.badInputsByKind, `hostile sample values (${scheduler})`, VALUES.length * 3 + 3);
      figures.badInputs += VALUES.length * 3 + 3;
      expect(g.code, g.stderr).toBe(0);
      const scripts = fs.readdirSync(path.join(setup, 'batch')).filter((f) => f.endsWith('.sh'));
      expect(scripts.length).toBe(1);
      const script = path.join(setup, 'batch', scripts[0]!);
      const text = fs.readFileSync(script, 'utf8');
      // The job name is on directive lines only, on one line each.
      // (Elsewhere, e.g. the script's own file name, only a sanitised form may appear.)
      for (const line of text.split('\n')) if (/\$\(touch canary|`touch canary|canary-part\)|touch canary-bank/.test(line)) expect(line.startsWith('#'), line).toBe(true);
      expect(spawnSync('bash', ['-n', script]).status).toBe(0);
      // Run the whole script body here with bash (no scheduler: directives are comments).
      const env = { ...process.env, CI: 'true' };
      for (const k of Object.keys(env)) if (/^(SLURM|LSB|LSF|FLUX|PMI)_/.test(k)) delete env[k];
      const r = spawnSync('bash', [script], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`${VALUES.length} successful`));
      const runs = fs.readdirSync(path.join(root, `runs-${scheduler}`)).sort();
      expect(runs.length).toBe(VALUES.length);
      for (const name of runs) {
        const id = Number(name.slice(0, 2));
        const v = VALUES[id - 1]!;
        expect(name).toBe(`${String(id).padStart(2, '0')}-${dirName(v)}`);
        const dir = path.join(root, `runs-${scheduler}`, name);
        // Exact bytes: in the deck (raw), through the shell (quoted word), as argv.
        expect(fs.readFileSync(path.join(dir, 'deck.in'), 'utf8')).toBe(`label=${v}\nnote=../../${v}/$(touch canary-note-${id - 1})\nend\n`);
        expect(fs.readFileSync(path.join(dir, 'label.out'), 'utf8')).toBe(v);
        const argv = fs.readFileSync(path.join(dir, 'args.out'), 'utf8').split('\0').slice(0, -1);
        expect(argv).toEqual(['--flag', v, `$(touch canary-args-${id - 1})`]);
      }
      const canaries = allFiles(root).filter((p) => path.basename(p).startsWith('canary'));
      expect(canaries).toEqual([]);
      expect(fs.readdirSync('/tmp').filter((n) => n.startsWith('canary-'))).toEqual([]);
    },
    150_000,
  );
});
