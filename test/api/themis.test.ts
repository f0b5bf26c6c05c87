import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Themis } from '../../src/api/themis.js';
import { setupPaths } from '../../src/store/layout.js';
import { readEnsemble, readResult } from '../../src/store/records.js';
import { ensureBatchScripts } from '../../src/render/batch.js';
import { FIXTURES, makeTempDir } from '../helpers/cli.js';
import { cli, ensembleRecord, writeHandEnsemble } from './helpers.js';

let root: string;
let setupDir: string;
beforeEach(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, [
    { sample: { a: '1' }, status: 'successful', result: { y: 1 } },
    { sample: { a: '2' }, status: 'failed' },
    { sample: { a: '3' }, status: 'queued', missing: true },
  ]);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('Themis (hand-written ensembles)', () => {
  it('open is synchronous and names the fix when there is no ensemble; exists', () => {
    expect(Themis.open(setupDir)).toBeInstanceOf(Themis);
    expect(Themis.exists(setupDir)).toBe(true);
    expect(Themis.exists(path.join(root, 'none'))).toBe(false);
    expect(() => Themis.open(path.join(root, 'none'))).toThrow(/create one with `themis gen`/);
  });

  it('status constants are the on-disk names', () => {
    expect([Themis.RUN_QUEUED, Themis.RUN_RUNNING, Themis.RUN_SUCCESS, Themis.RUN_FAILURE, Themis.RUN_KILLED, Themis.RUN_ABORTED]).toEqual([
      'queued',
      'running',
      'successful',
      'failed',
      'killed',
      'aborted',
    ]);
  });

  it('filterByStatus/countByStatus with none, one or several statuses; a run whose status is unreadable matches none', async () => {
    const t = Themis.open(setupDir);
    expect(await t.filterByStatus()).toEqual([1, 2, 3]);
    expect(await t.filterByStatus('successful', 'failed')).toEqual([1, 2]);
    expect(await t.countByStatus('queued')).toBe(0); // run 3 was never rendered
    expect(await t.countByStatus()).toBe(3);
    await expect(t.filterByStatus('nope' as never)).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('runDirs: existing only, or all with nonexistent', async () => {
    const t = Themis.open(setupDir);
    expect(await t.runDirs()).toEqual([
      [1, path.join(root, 'runs/1')],
      [2, path.join(root, 'runs/2')],
    ]);
    expect((await t.runDirs({ nonexistent: true })).map(([id]) => id)).toEqual([1, 2, 3]);
  });

  it('setResult stores JSON values and refuses unknown runs and non-JSON values', async () => {
    const t = Themis.open(setupDir);
    await t.setResult(2, [1, 'two']);
    expect(readResult(path.join(root, 'runs/2'))).toEqual([1, 'two']);
    await expect(t.setResult(9, 1)).rejects.toThrow(/no run 9 .*run ids: 1-3/);
    await expect(t.setResult(2, Symbol('x'))).rejects.toThrow(/JSON cannot hold/);
  });

  it('asRecords: one object per run; includeNone: false keeps runs with a result', async () => {
    const t = Themis.open(setupDir);
    const all = await t.asRecords();
    expect(all).toHaveLength(3);
    expect(all[0]).toEqual({ run_id: 1, status: 'successful', tasks: 1, cores_per_task: 1, gpus_per_task: 0, a: '1', y: 1 });
    expect((await t.asRecords({ includeNone: false })).map((r) => r.run_id)).toEqual([1]);
  });

  it('writeJson/writeYaml/writeCsv write to any sink', async () => {
    const t = Themis.open(setupDir);
    let json = '';
    await t.writeJson({
      write: (s: string) => {
        json += s;
      },
    });
    expect(JSON.parse(json)[1]).toMatchObject({ run_id: 2, status: 'failed', sample: { a: '2' }, result: null });
    const file = path.join(root, 'out.csv');
    const stream = fs.createWriteStream(file);
    await t.writeCsv(stream);
    await new Promise((r) => stream.end(r));
    expect(fs.readFileSync(file, 'utf8').split('\n')[0]).toBe('run_id,status,tasks,cores_per_task,gpus_per_task,a,y');
  });

  it('onCompletion stores the resolved command (only the last call counts); a missing program or cwd is an input error', async () => {
    const t = Themis.open(setupDir);
    await t.onCompletion(['true']);
    await t.onCompletion(['sh', '-c', 'echo done'], { stdout: 'done.log' });
    const stored = t.ensemble.onCompletion!;
    expect(path.isAbsolute(stored.args[0]!) && path.basename(stored.args[0]!)).toBe('sh');
    expect(stored).toEqual({ args: [stored.args[0], '-c', 'echo done'], cwd: root, stdout: path.join(root, 'done.log'), stderr: null });
    await expect(t.onCompletion(['no-such-program-xyz'])).rejects.toMatchObject({ code: 'INPUT' });
    await expect(t.onCompletion(['true'], { cwd: 'missing-dir' })).rejects.toThrow(/not a directory/);
    await expect(t.onCompletion([])).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('themis completion -- CMD stores it; without a command it is a usage error', async () => {
    const r = await cli(['completion', '--stdout', 'o.log', '--setup-dir', setupDir, '--', 'sh', '-c', 'echo hi']);
    expect(r.code).toBe(0);
    expect(readEnsemble(setupDir).onCompletion?.args.slice(1)).toEqual(['-c', 'echo hi']);
    expect(readEnsemble(setupDir).onCompletion?.stdout).toBe(path.join(root, 'o.log'));
    expect((await cli(['completion', '--setup-dir', setupDir])).code).toBe(2);
  });
});

describe('hooks from the API and the CLI (dry-run, post)', () => {
  let calls: string;
  beforeEach(() => {
    calls = path.join(root, 'calls.log');
    const iface = path.join(root, 'iface.mjs');
    fs.writeFileSync(
      iface,
      `import fs from 'node:fs';
const log = (s) => fs.appendFileSync(${JSON.stringify(calls)}, s + '\\n');
export function prepRun(ctx) { log('prepRun ' + ctx.runId + ' ' + ctx.run.sample.a); if (ctx.runId === 2 && process.env.BREAK) throw new Error('deck missing'); }
export async function postRun(ctx) { log('postRun ' + ctx.runId); return { twice: Number(ctx.run.sample.a) * 2, handle: ctx.themis !== null }; }
export function prepEnsemble(ctx) { log('prepEnsemble ' + (ctx.runId === null)); }
`,
    );
    const e = readEnsemble(setupDir);
    fs.writeFileSync(setupPaths(setupDir).ensemble, JSON.stringify({ ...e, interface: iface }));
  });
  const logged = () => fs.readFileSync(calls, 'utf8').trim().split('\n');

  it('callPostRun returns the value without storing it; callPrepEnsemble; callPostEnsemble without a hook is a no-op', async () => {
    const t = Themis.open(setupDir);
    expect(await t.callPostRun(2)).toEqual({ twice: 4, handle: true });
    expect(readResult(path.join(root, 'runs/2'))).toBeNull();
    await t.callPrepEnsemble();
    await t.callPostEnsemble();
    expect(logged()).toEqual(['postRun 2', 'prepEnsemble true']);
  });

  it('dry-run calls prepRun for the given runs, and a throwing prepRun names the run', async () => {
    const r = await cli(['dry-run', '1-2', '--setup-dir', setupDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dry-ran 2 runs');
    expect(logged()).toEqual(['prepRun 1 1', 'prepRun 2 2']);
    process.env.BREAK = '1';
    try {
      const bad = await cli(['dry-run', '2', '--setup-dir', setupDir]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('run 2: prepRun threw: deck missing');
    } finally {
      delete process.env.BREAK;
    }
  });

  it('post without a postRun hook is an input error and stores nothing', async () => {
    const e = readEnsemble(setupDir);
    fs.writeFileSync(setupPaths(setupDir).ensemble, JSON.stringify({ ...e, interface: null }));
    const r = await cli(['post', '--save', '--setup-dir', setupDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no interface module');
    expect(readResult(path.join(root, 'runs/1'))).toEqual({ y: 1 });
    expect(await Themis.open(setupDir).interfaceHooks()).toEqual([]);
  });

  it('post prints postRun values; --save stores them as results', async () => {
    expect(await Themis.open(setupDir).interfaceHooks()).toEqual(['prepEnsemble', 'prepRun', 'postRun']);
    const r = await cli(['post', '1', '--setup-dir', setupDir]);
    expect(r.stdout).toBe('run 1: {"twice":2,"handle":true}\n');
    expect(readResult(path.join(root, 'runs/1'))).toEqual({ y: 1 });
    const s = await cli(['post', '--status', 'failed', '--save', '--json', '--setup-dir', setupDir]);
    expect(JSON.parse(s.stdout)).toEqual([{ id: 2, result: { twice: 4, handle: true } }]);
    expect(readResult(path.join(root, 'runs/2'))).toEqual({ twice: 4, handle: true });
  });
});

describe('executeAlloc with a fake sbatch', () => {
  it('applies the allocation options, re-renders the script and returns the job id', async () => {
    const slurmRoot = makeTempDir();
    try {
      const sd = writeHandEnsemble(slurmRoot, [{}, {}], { scheduler: 'slurm', allocation: { ...ensembleRecord(slurmRoot, slurmRoot).allocation } });
      ensureBatchScripts(sd, readEnsemble(sd));
      const log = path.join(slurmRoot, 'fake.log');
      const env = { ...process.env, PATH: `${path.join(FIXTURES, 'bin')}:${process.env.PATH}`, THEMIS_FAKE_LOG: log };
      const t = Themis.open(sd);
      const jobId = await t.executeAlloc({ nodes: 2, partition: 'pdebug', bank: 'wbronze', name: 'sweep', timeout: 30, env });
      expect(jobId).toBe('4242');
      const script = setupPaths(sd).batchScript('sweep', 1);
      const text = fs.readFileSync(script, 'utf8');
      expect(text).toContain('#SBATCH');
      expect(text).toMatch(/pdebug/);
      expect(text).toMatch(/wbronze/);
      const call = JSON.parse(fs.readFileSync(log, 'utf8').trim().split('\n')[0]!);
      expect(call.argv).toEqual([script]);
      expect(readEnsemble(sd).allocation).toMatchObject({ nodes: 2, partition: 'pdebug', bank: 'wbronze', name: 'sweep', walltime: 30 });
      // Like the seed, every executeAlloc call adds an allocation, even while the last one is queued.
      expect(await t.executeAlloc({ maxConcurrency: 4, env })).toBe('4243');
      expect(fs.readFileSync(script, 'utf8')).toMatch(/ --max-concurrency 4 /);
      await expect(t.executeAlloc({ maxConcurrency: 0, env })).rejects.toThrow(/maxConcurrency: must be an integer >= 1/);
      await expect(t.executeAlloc({ nodes: 0, env })).rejects.toThrow(/nodes: must be an integer >= 1/);
    } finally {
      fs.rmSync(slurmRoot, { recursive: true, force: true });
    }
  });
});

describe('the LSF flavour through the API (against a fake bsub answering as classic LSF)', () => {
  it('Themis.create({lsfFlavor, coresPerNode}) records it; executeAlloc changes it and refuses classic without the cores per node', async () => {
    const lsfRoot = makeTempDir();
    try {
      const env = { ...process.env, PATH: `${path.join(FIXTURES, 'bin')}:${process.env.PATH}`, THEMIS_FAKE_LOG: path.join(lsfRoot, 'fake.log'), THEMIS_FAKE_LSF: 'classic' };
      const t = await Themis.create({ root: lsfRoot, setupDir: path.join(lsfRoot, '.themis_setup'), scheduler: 'lsf', lsfFlavor: 'classic', coresPerNode: 8 });
      expect(readEnsemble(t.setupDir).allocation).toMatchObject({ lsfFlavor: 'classic', coresPerNode: 8 });
      expect(await t.executeAlloc({ nodes: 2, env })).toBe('4242');
      const script = setupPaths(t.setupDir).batchScript('themis', 1);
      expect(fs.readFileSync(script, 'utf8')).toMatch(/^#BSUB -n 16\n#BSUB -R "span\[ptile=8\]"\n/m);
      // CSM's script is what classic LSF refuses.
      await expect(t.executeAlloc({ lsfFlavor: 'csm', env })).rejects.toThrow(/The number of processors must be a positive integer/);
      expect(fs.readFileSync(script, 'utf8')).toContain('#BSUB -nnodes 2\n');
      const csmRoot = makeTempDir();
      try {
        const csm = await Themis.create({ root: csmRoot, setupDir: path.join(csmRoot, '.themis_setup'), scheduler: 'lsf', lsfFlavor: 'csm' });
        await expect(csm.executeAlloc({ lsfFlavor: 'classic', env })).rejects.toThrow(/coresPerNode: classic LSF counts job slots/);
      } finally {
        fs.rmSync(csmRoot, { recursive: true, force: true });
      }
    } finally {
      fs.rmSync(lsfRoot, { recursive: true, force: true });
    }
  });
});
