import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupPaths } from '../../src/store/layout.js';
import { removePacker, writePackerHeartbeat, type PackerInfo } from '../../src/store/ensemble-state.js';
import { hostName, pidStartTime } from '../../src/store/proc.js';
import { FIXTURES, listTree, makeTempDir, runThemis } from '../helpers/cli.js';

const GOLDEN = path.join(FIXTURES, 'gen');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A temp copy of a fixture folder to run gen in. */
function workspace(fixture: string): string {
  const d = makeTempDir('themis-gen-');
  dirs.push(d);
  fs.cpSync(path.join(GOLDEN, fixture), d, { recursive: true });
  return d;
}

/**
 * Every entry under `dir` (skipping volatile status.json) as text: type, mode, content or link
 * target, with the temp root replaced by @ROOT@ so the golden file is stable.
 */
function snapshot(dir: string, root: string, skip: RegExp = /\.themis\/status\.json$/): string {
  const out: string[] = [];
  for (const rel of listTree(dir)) {
    const p = path.join(dir, rel);
    const st = fs.lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (skip.test(rel)) continue;
    if (st.isSymbolicLink()) out.push(`== ${rel} -> ${fs.readlinkSync(p).split(root).join('@ROOT@')}`);
    else if (st.isDirectory()) out.push(`== ${rel} (dir ${mode})`);
    else out.push(`== ${rel} (file ${mode})\n${JSON.stringify(fs.readFileSync(p, 'utf8').split(root).join('@ROOT@'))}`);
  }
  return out.join('\n') + '\n';
}

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (UPDATE || !fs.existsSync(file)) fs.writeFileSync(file, actual);
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

function gen(cwd: string, args: string[]) {
  return runThemis(['gen', ...args], { cwd });
}

describe('themis gen (subprocess, golden trees)', () => {
  let root: string;
  let result: ReturnType<typeof gen>;
  beforeAll(() => {
    root = workspace('basic');
    fs.chmodSync(path.join(root, 'input/deck.in'), 0o640);
    result = gen(root, [
      './input/sim.sh',
      'input/samples.csv',
      '--parse',
      'input/deck.in',
      '--copy',
      'input/data',
      '--symlink',
      'input/table.dat',
      '--scheduler',
      'slurm',
      '-N',
      '2',
      '-n',
      '2',
      '-c',
      '3',
      '-g',
      '1',
      '--timeout',
      '5',
      '-a',
      '-x 1',
      '--allocations',
      '2',
      '-m',
      'visc study',
    ]);
  });

  it('exits 0 and prints the scripts and exact submit commands', () => {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('3 runs rendered (ids 1-3)');
    expect(result.stdout).toContain(`sbatch ${root}/.themis_setup/batch/visc_study-1.sh`);
    expect(result.stdout).toContain(`sbatch ${root}/.themis_setup/batch/visc_study-2.sh`);
  });

  it('renders every run directory byte for byte (tokens, CRLF, modes, copies, symlinks, run.json)', () => {
    golden('basic/expected-runs.txt', snapshot(path.join(root, 'runs'), root));
  });

  it('queues every run and indexes them relative to the root', () => {
    for (const id of [1, 2, 3]) {
      const st = JSON.parse(fs.readFileSync(path.join(root, `runs/${id}/.themis/status.json`), 'utf8'));
      expect(st).toMatchObject({ format: 1, id, status: 'queued', step: 0, attempt: 0, restarts: 0 });
    }
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000001.jsonl'), 'utf8')).toBe('{"id":1,"dir":"runs/1"}\n{"id":2,"dir":"runs/2"}\n{"id":3,"dir":"runs/3"}\n');
    const ens = JSON.parse(fs.readFileSync(path.join(root, '.themis_setup/ensemble.json'), 'utf8'));
    expect(ens).toMatchObject({
      root,
      application: path.join(root, 'input/sim.sh'),
      appIsBatchScript: true,
      scheduler: 'slurm',
      parse: [path.join(root, 'input/deck.in')],
      allocation: { nodes: 2, allocations: 2, name: 'visc study' },
      gpusPerNodeNeeded: 1,
    });
    const plans = [1, 2].map((k) => JSON.parse(fs.readFileSync(path.join(root, `.themis_setup/batch/plan-${k}.json`), 'utf8')).runIds);
    expect(plans.flat().sort()).toEqual([1, 2, 3]);
    expect(fs.statSync(path.join(root, '.themis_setup/batch/visc_study-1.sh')).mode & 0o111).toBe(0o111);
  });

  it('leaves no staging directory behind', () => {
    expect(fs.readdirSync(root).filter((n) => n.includes('staging'))).toEqual([]);
  });

  it('refuses to replace an existing ensemble without a flag (exit 2, names the flags), and changes nothing', () => {
    const before = listTree(root);
    const r = gen(root, ['./input/sim.sh', 'input/samples.csv', '--scheduler', 'local']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/an ensemble already exists in .*\.themis_setup \(3 runs.*--overwrite.*--resume/);
    expect(listTree(root)).toEqual(before);
  });

  it('--resume renders only what is missing and adds new samples', () => {
    fs.rmSync(path.join(root, 'runs/2'), { recursive: true });
    const before = fs.readFileSync(path.join(root, 'runs/1/.themis/status.json'), 'utf8');
    fs.appendFileSync(path.join(root, 'input/samples.csv'), '4,mud,4\n');
    const r = gen(root, ['./input/sim.sh', 'input/samples.csv', '--resume', '-n', '2', '-c', '3', '-g', '1', '--timeout', '5', '-a', '-x 1', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep).toMatchObject({ action: 'resumed', skipped: 2, runs: { count: 2, first: 2, last: 4 } });
    expect(rep.batchScripts[0].command).toMatch(/^sbatch /);
    expect(fs.readFileSync(path.join(root, 'runs/1/.themis/status.json'), 'utf8')).toBe(before);
    expect(fs.readFileSync(path.join(root, 'runs/2/deck.in'), 'utf8')).toContain('viscosity = 2.5\r\n');
    expect(fs.readFileSync(path.join(root, 'runs/4/deck.in'), 'utf8')).toContain('label = "mud"');
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000002.jsonl'), 'utf8')).toBe('{"id":4,"dir":"runs/4"}\n');
  });

  it('--overwrite refuses while a packer is alive on the old ensemble, and changes nothing', () => {
    // A live packer's heartbeat file (this test process stands in for it).
    const info: PackerInfo = {
      packerId: 'test-packer',
      host: hostName(),
      pid: process.pid,
      pidStart: pidStartTime(process.pid),
      jobId: '77',
      allocation: 1,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      running: [1],
    };
    const sd = path.join(root, '.themis_setup');
    writePackerHeartbeat(sd, info);
    const before = listTree(root).filter((n) => !n.includes('clock-probe'));
    const r = gen(root, ['./input/sim.sh', '--overwrite', '--scheduler', 'local', '--no-batch-script']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot --overwrite .*packers are still working on it: test-packer \(host .*, pid \d+, job 77\)/);
    expect(listTree(root).filter((n) => !n.includes('clock-probe'))).toEqual(before);
    removePacker(sd, 'test-packer');
  });

  it('--overwrite removes the old ensemble and its run directories first', () => {
    const r = gen(root, ['./input/sim.sh', '--overwrite', '--scheduler', 'local', '--no-batch-script', '-r', 'other/{run_id:03}']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(root, 'runs'))).toBe(false);
    expect(listTree(path.join(root, '.themis_setup/index'))).toEqual(['000001.jsonl']);
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000001.jsonl'), 'utf8')).toBe('');
  });
});

describe('themis gen --steps (composite runs, JSON samples, named run directories)', () => {
  it('renders each step, per-step launch prefixes, sample-key names, step cwd', () => {
    const root = workspace('composite');
    const r = gen(root, ['--steps', 'steps.csv', 'samples.json', '--scheduler', 'flux', '-r', 'cases/{case}/{run_id:02}']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    golden('composite/expected-runs.txt', snapshot(path.join(root, 'cases'), root));
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000001.jsonl'), 'utf8')).toBe('{"id":1,"dir":"cases/alpha/01"}\n{"id":2,"dir":"cases/beta/02"}\n');
  });
});

describe('themis add', () => {
  it('continues ids, refuses collisions with earlier runs, and bumps the generation', () => {
    const root = workspace('composite');
    fs.writeFileSync(path.join(root, 's1.csv'), 'x\na\nb\n');
    fs.writeFileSync(path.join(root, 's2.csv'), 'x\nc\n');
    fs.writeFileSync(path.join(root, 'clash.csv'), 'x\nd\na\n');
    expect(gen(root, ['/bin/echo', 's1.csv', '--no-batch-script', '--scheduler', 'local', '-r', 'r/{x}', '-a=-n']).code).toBe(0);
    const add = runThemis(['add', 's2.csv', '-a', '-e hi', '--json'], { cwd: root });
    expect(add.stderr).toBe('');
    expect(JSON.parse(add.stdout)).toMatchObject({ action: 'added', runs: { count: 1, first: 3, last: 3 }, totalRuns: 3 });
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'r/c/.themis/run.json'), 'utf8'));
    expect(rec).toMatchObject({ id: 3, sample: { x: 'c' }, steps: [{ args: ['/bin/echo', '-e', 'hi'], batchScript: false }] });
    expect(JSON.parse(fs.readFileSync(path.join(root, 'r/a/.themis/run.json'), 'utf8')).steps[0].args).toEqual(['/bin/echo', '-n']);
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000002.jsonl'), 'utf8')).toBe('{"id":3,"dir":"r/c"}\n');
    expect(JSON.parse(fs.readFileSync(path.join(root, '.themis_setup/state/generation.json'), 'utf8')).generation).toBeGreaterThan(0);
    expect(JSON.parse(fs.readFileSync(path.join(root, '.themis_setup/batch/plan-1.json'), 'utf8')).runIds).toEqual([1, 2, 3]);

    const before = listTree(root);
    const clash = runThemis(['add', 'clash.csv'], { cwd: root });
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/runs 1 and 5 both map to the run directory .*r\/a/);
    expect(listTree(root)).toEqual(before);
  });

  it('waits for nobody: a held write lock is reported with its owner', () => {
    const root = workspace('composite');
    fs.writeFileSync(path.join(root, 's.csv'), 'x\n1\n');
    expect(gen(root, ['/bin/true', 's.csv', '--no-batch-script', '--scheduler', 'local']).code).toBe(0);
    const lock = path.join(root, '.themis_setup/write.lock');
    fs.mkdirSync(lock);
    // Our own pid on this host: alive, so the lock is not stale.
    fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ host: os.hostname(), pid: process.pid, pidStart: null, at: 'now', command: 'add' }));
    const r = runThemis(['add', 's.csv'], { cwd: root });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/`themis add` \(pid \d+ on .*\) is changing this ensemble .*write\.lock/);
    fs.rmSync(lock, { recursive: true });
    expect(runThemis(['add', 's.csv'], { cwd: root }).code).toBe(0);
  });
});

describe('themis gen: more options', () => {
  it('--vary-all, an absolute template, --keep-unknown-tokens, a symlinked directory, LSF launch prefixes', () => {
    const root = workspace('composite');
    const abs = path.join(root, 'abs-runs');
    fs.writeFileSync(path.join(root, 'vary.csv'), 'x,tasks,args,timeout\na,2,"-v --n 1",\nb,,,1.5\n');
    fs.writeFileSync(path.join(root, 'job.sh'), '#!/bin/sh\n%%themis_launch%% ./a.out %%x%% %%nope%%\n', { mode: 0o750 });
    fs.mkdirSync(path.join(root, 'lib'));
    const r = gen(root, [
      './job.sh',
      'vary.csv',
      '--vary-all',
      '-n',
      '4',
      '-c',
      '2',
      '--scheduler',
      'lsf',
      '--lsf-flavor',
      'csm',
      '-r',
      `${abs}/{x}-{run_id:04}`,
      '--keep-unknown-tokens',
      '--symlink',
      'lib',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const a = JSON.parse(fs.readFileSync(path.join(abs, 'a-0001/.themis/run.json'), 'utf8'));
    const b = JSON.parse(fs.readFileSync(path.join(abs, 'b-0002/.themis/run.json'), 'utf8'));
    expect(a.steps[0]).toMatchObject({ args: [path.join(abs, 'a-0001/job.sh'), '-v', '--n', '1'], tasks: 2, coresPerTask: 2, timeout: 0 });
    expect(b.steps[0]).toMatchObject({ args: [path.join(abs, 'b-0002/job.sh')], tasks: 4, coresPerTask: 2, timeout: 1.5 });
    expect(a.sample).toEqual({ x: 'a', tasks: '2', args: '-v --n 1', timeout: '' });
    const script = fs.readFileSync(path.join(abs, 'a-0001/job.sh'), 'utf8');
    // %%themis_launch%% reads the packer's THEMIS_LAUNCH, with the LSF prefix as the fallback.
    expect(script).toMatch(/^#!\/bin\/sh\n\$\{THEMIS_LAUNCH-(jsrun|lrun) [^}]*\} \.\/a\.out a %%nope%%\n$/);
    expect(fs.statSync(path.join(abs, 'a-0001/job.sh')).mode & 0o777).toBe(0o750);
    expect(fs.readlinkSync(path.join(abs, 'b-0002/lib'))).toBe(path.join(root, 'lib'));
    expect(fs.readFileSync(path.join(root, '.themis_setup/index/000001.jsonl'), 'utf8')).toBe('{"id":1,"dir":"abs-runs/a-0001"}\n{"id":2,"dir":"abs-runs/b-0002"}\n');
    expect(JSON.parse(r.stdout).batchScripts[0].command).toMatch(/^bsub < /);
  });

  it('a failed gen into a new nested --setup-dir leaves no directory behind', () => {
    const root = workspace('composite');
    fs.writeFileSync(path.join(root, 'bad.csv'), 'x\n..\n');
    const before = listTree(root);
    const r = gen(root, ['./prep.sh', 'bad.csv', '--setup-dir', 'deep/er/setup', '-r', '{x}', '--scheduler', 'local']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/run 1: sample value x="\.\." is "\.\."/);
    expect(listTree(root)).toEqual(before);
  });
});

describe('themis gen: one script in two steps of a run', () => {
  it('gets two copies when the launcher prefixes differ (job.sh, 2-job.sh)', () => {
    const root = workspace('composite');
    fs.writeFileSync(path.join(root, 'job.sh'), '#!/bin/sh\n%%themis_launch%% ./a.out\n', { mode: 0o755 });
    fs.writeFileSync(path.join(root, 'two.csv'), 'args,tasks\n./job.sh,1\n./job.sh,8\n./job.sh,1\n');
    fs.writeFileSync(path.join(root, 's.csv'), 'x\n1\n');
    const r = gen(root, ['--steps', 'two.csv', 's.csv', '--scheduler', 'slurm']);
    expect(r.stderr).toBe('');
    const rec = JSON.parse(fs.readFileSync(path.join(root, 'runs/1/.themis/run.json'), 'utf8'));
    expect(rec.steps.map((s: { args: string[] }) => path.basename(s.args[0]!))).toEqual(['job.sh', '2-job.sh', 'job.sh']);
    expect(fs.readFileSync(path.join(root, 'runs/1/job.sh'), 'utf8')).toMatch(/-n 1 /);
    expect(fs.readFileSync(path.join(root, 'runs/1/2-job.sh'), 'utf8')).toMatch(/-n 8 /);
  });
});

describe('themis gen: %%themis_launch%% in shell and non-shell batch scripts', () => {
  it('a POSIX shell script (sh, env -S bash) reads ${THEMIS_LAUNCH-prefix}; a Python script gets the prefix as text', () => {
    const root = workspace('launch-token');
    const r = gen(root, ['--steps', 'steps.csv', 'samples.csv', '--scheduler', 'slurm']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    golden('launch-token/expected-runs.txt', snapshot(path.join(root, 'runs'), root, /\.themis\//));
  });
});

describe('themis gen after a killed gen', () => {
  it('removes the staging directory a dead gen left, keeps one of a live gen', () => {
    const root = workspace('composite');
    const dead = setupPaths(path.join(root, '.themis_setup')).stagingPrefix + 'deadbeef';
    const live = setupPaths(path.join(root, '.themis_setup')).stagingPrefix + '0a0a0a0a';
    fs.mkdirSync(path.join(dead, 'tree/runs/1'), { recursive: true });
    fs.writeFileSync(path.join(dead, 'owner.json'), JSON.stringify({ host: os.hostname(), pid: 2 ** 22 + 7, pidStart: null }));
    fs.mkdirSync(live);
    fs.writeFileSync(path.join(live, 'owner.json'), JSON.stringify({ host: os.hostname(), pid: process.pid, pidStart: null }));
    fs.writeFileSync(path.join(root, 's.csv'), 'x\n1\n');
    const r = gen(root, ['./prep.sh', 's.csv', '--scheduler', 'local', '--keep-unknown-tokens']);
    expect(r.stderr).toBe('');
    expect(fs.existsSync(dead)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
  });
});

describe('themis gen --scheduler lsf: the two flavours', () => {
  const bin = (names: string[]) => {
    const d = makeTempDir('themis-genbin-');
    dirs.push(d);
    for (const n of names) fs.writeFileSync(path.join(d, n), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return `${d}:/usr/bin:/bin`;
  };
  const lsfGen = (args: string[], PATH: string) => {
    const root = makeTempDir('themis-genlsf-');
    dirs.push(root);
    fs.writeFileSync(path.join(root, 'samples.csv'), 'x\n1\n2\n');
    const r = runThemis(['gen', '/bin/echo', 'samples.csv', '--no-batch-script', '--scheduler', 'lsf', ...args], { cwd: root, env: { PATH } });
    const script = path.join(root, '.themis_setup', 'batch', 'themis-1.sh');
    return { r, root, script: () => fs.readFileSync(script, 'utf8'), ens: () => JSON.parse(fs.readFileSync(path.join(root, '.themis_setup', 'ensemble.json'), 'utf8')) };
  };

  it('without --lsf-flavor: classic where no jsrun/lrun is on PATH, and gen says so; classic then needs --cores-per-node (exit 2 naming it)', () => {
    const refused = lsfGen(['-N', '1'], bin(['bsub']));
    expect(refused.r.code).toBe(2);
    expect(refused.r.stderr).toContain('--cores-per-node: classic LSF counts job slots, not nodes');
    const g = lsfGen(['-N', '2', '--cores-per-node', '4'], bin(['bsub']));
    expect(g.r.stderr).toBe('');
    expect(g.r.code).toBe(0);
    expect(g.r.stdout).toContain('LSF flavour: classic (detected: no `jsrun` or `lrun` on PATH; --lsf-flavor csm for IBM CSM)');
    expect(g.script()).toMatch(/^#BSUB -n 8\n#BSUB -R "span\[ptile=4\]"\n/m);
    expect(g.ens().allocation).toMatchObject({ lsfFlavor: 'classic', coresPerNode: 4 });
  });

  it('CSM where jsrun is on PATH (the -nnodes script as before); --lsf-flavor overrides the detection either way', () => {
    const csm = lsfGen(['-N', '2'], bin(['bsub', 'jsrun']));
    expect(csm.r.code, csm.r.stderr).toBe(0);
    expect(csm.r.stdout).toContain('LSF flavour: csm (detected: `jsrun` is on PATH; --lsf-flavor classic for LSF without CSM)');
    expect(csm.script()).toContain('#BSUB -nnodes 2\n');
    const forced = lsfGen(['-N', '1', '--lsf-flavor', 'classic', '--cores-per-node', '2', '--json'], bin(['bsub', 'jsrun']));
    expect(forced.r.code, forced.r.stderr).toBe(0);
    expect(JSON.parse(forced.r.stdout).lsf).toEqual({ flavor: 'classic', source: 'option' });
    expect(forced.script()).toContain('#BSUB -n 2\n');
  });
});
