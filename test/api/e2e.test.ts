import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CompositeRun, Run, Step, Themis } from '../../src/index.js';
import { spawnPacker } from '../../src/pack/index.js';
import { makeTempDir, runThemis, writeScript } from '../helpers/cli.js';
import { ensureBuilt } from './build.js';

/**
 * The API and commands against real ensembles: rendered by `generateEnsemble`, run by the real
 * `themis-pack` (as a child process, like `themis run`).
 */

let root: string;
let setupDir: string;
let app: string;
const ledger = () => path.join(root, 'ledger');
const ledgerIds = () => (fs.existsSync(ledger()) ? fs.readFileSync(ledger(), 'utf8').trim().split('\n').filter(Boolean).map(Number) : []);

beforeAll(() => ensureBuilt(), 120_000);
beforeEach(() => {
  root = makeTempDir('themis-e2e-');
  setupDir = path.join(root, '.themis_setup');
  // Appends its run id to a ledger; "fail" runs fail until the ok flag exists.
  app = writeScript(path.join(root, 'bin', 'app'), `#!/bin/sh\necho "$THEMIS_RUN_ID" >> '${ledger()}'\nif [ "$1" = fail ] && [ ! -f '${path.join(root, 'ok')}' ]; then exit 3; fi\nexit 0\n`);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

async function make(runs: (Run | CompositeRun)[], extra: Partial<Parameters<typeof Themis.create>[0]> = {}): Promise<Themis> {
  return Themis.create({ application: app, runs, root, setupDir, appIsBatchScript: false, scheduler: 'local', ...extra });
}

async function drain(t: Themis): Promise<void> {
  const ex = await t.executeLocal({ blocking: true, cores: 2 });
  expect(await ex.done).toBeLessThanOrEqual(4);
}

describe('Themis end to end', () => {
  it('requeue of failed runs, then they succeed; progress and filterByStatus follow', async () => {
    const t = await make([new Run({ k: 'a' }, 'ok'), new Run({ k: 'b' }, 'fail'), new Run({ k: 'c' }, 'fail')]);
    expect(await t.progress()).toEqual([0, 3]);
    await drain(t);
    expect(await t.filterByStatus(Themis.RUN_FAILURE)).toEqual([2, 3]);
    expect(await t.filterByStatus(Themis.RUN_SUCCESS)).toEqual([1]);
    expect(await t.progress()).toEqual([3, 3]);
    fs.writeFileSync(path.join(root, 'ok'), '');
    const rep = await t.requeueRuns(await t.filterByStatus('failed'));
    expect(rep.changed).toEqual([2, 3]);
    expect(await t.countByStatus('queued')).toBe(2);
    await drain(t);
    expect(await t.countByStatus(Themis.RUN_SUCCESS)).toBe(3);
    expect(ledgerIds().sort()).toEqual([1, 2, 2, 3, 3]);
  });

  it('add runs to a finished ensemble: only the new ones run', async () => {
    const t = await make([new Run({ k: 'a' }, 'ok'), new Run({ k: 'b' }, 'ok')]);
    await drain(t);
    expect(await t.addRuns([new Run({ k: 'c' }, 'ok'), new Run({ k: 'd' }, 'ok')])).toEqual([3, 4]);
    expect(await t.progress()).toEqual([2, 4]);
    await drain(t);
    expect(ledgerIds().sort()).toEqual([1, 2, 3, 4]);
    expect(await t.countByStatus('successful')).toBe(4);
    await expect(t.executeLocal({ blocking: true })).rejects.toThrow(/no runs to execute/);
  });

  it('dequeue of a queued and a running run: both end killed, the queued one never ran', async () => {
    const slow = writeScript(path.join(root, 'bin', 'slow'), `#!/bin/sh\necho "$THEMIS_RUN_ID" >> '${ledger()}'\nexec sleep 30\n`);
    const t = await make([new Run({ k: 'a' }), new Run({ k: 'b' })], { application: slow });
    const packer = spawnPacker({ setupDir, cores: 1, heartbeatSeconds: 0.5, graceSeconds: 1 }, { detach: false });
    try {
      for (let i = 0; i < 200 && (await t.countByStatus('running')) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const [running] = await t.filterByStatus('running');
      expect(running).toBeDefined();
      const other = running === 1 ? 2 : 1;
      const rep = await t.dequeueRuns([running!, other]);
      expect(rep.pending).toEqual([running]);
      expect(rep.changed).toEqual([other]);
      expect(await packer.done).toBeLessThanOrEqual(4);
      expect(await t.filterByStatus('killed')).toEqual([1, 2]);
      expect(ledgerIds()).toEqual([running]);
    } finally {
      try {
        process.kill(packer.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });

  it('hooks are called the right number of times across two packers; postRun and `themis result set` results both reach write csv', async () => {
    const hookLog = path.join(root, 'hooks.log');
    const iface = path.join(root, 'iface.mjs');
    fs.writeFileSync(
      iface,
      `import fs from 'node:fs';
const log = (s) => fs.appendFileSync(${JSON.stringify(hookLog)}, s + '\\n');
export function prepEnsemble() { log('prepEnsemble'); }
export function prepRun(ctx) { log('prepRun ' + ctx.runId); }
export function postRun(ctx) { log('postRun ' + ctx.runId); return ctx.runId % 2 === 1 ? { from: 'postRun', n: ctx.runId } : undefined; }
export function postEnsemble(ctx) { log('postEnsemble ' + (ctx.themis ? 'with handle' : 'no handle')); }
`,
    );
    // Even runs store their own result from inside the run, as an application would.
    const setter = writeScript(
      path.join(root, 'bin', 'setter'),
      `#!/bin/sh\nif [ $((THEMIS_RUN_ID % 2)) -eq 0 ]; then '${process.execPath}' '${path.resolve('dist/bin/themis.js')}' result set "{\\"from\\": \\"app\\", \\"n\\": $THEMIS_RUN_ID}"; fi\n`,
    );
    const runs = Array.from({ length: 8 }, (_, i) => new CompositeRun({ i: String(i + 1) }, [new Step([setter], { batchScript: false })]));
    const t = await Themis.create({ runs, root, setupDir, scheduler: 'local', appInterface: iface });
    const a = spawnPacker({ setupDir, cores: 1, heartbeatSeconds: 1 }, { detach: false });
    const b = spawnPacker({ setupDir, cores: 1, heartbeatSeconds: 1 }, { detach: false });
    expect(await a.done).toBe(0);
    expect(await b.done).toBe(0);
    const lines = fs.readFileSync(hookLog, 'utf8').trim().split('\n');
    const count = (p: string) => lines.filter((l) => l.startsWith(p)).length;
    expect(count('prepEnsemble')).toBe(1);
    expect(count('prepRun ')).toBe(8);
    expect(count('postRun ')).toBe(8);
    expect(lines.filter((l) => l.startsWith('postEnsemble'))).toEqual(['postEnsemble with handle']);
    let csv = '';
    await t.writeCsv({
      write: (s: string) => {
        csv += s;
      },
    });
    const rows = csv.trim().split('\n');
    expect(rows[0]).toBe('run_id,status,tasks,cores_per_task,gpus_per_task,i,from,n');
    expect(rows[1]).toBe('1,successful,1,1,0,1,postRun,1');
    expect(rows[2]).toBe('2,successful,1,1,0,2,app,2');
    const cliCsv = runThemis(['write', 'csv', '--setup-dir', setupDir], { cwd: root });
    expect(cliCsv.stdout).toBe(csv);
    // callPostRun calls the hook here and returns its value without storing it.
    expect(await t.callPostRun(3)).toEqual({ from: 'postRun', n: 3 });
    expect(await t.callPostRun(4)).toBeNull();
  });

  it("a run that can never fit is shown as blocked, with the packer's reason", async () => {
    const t = await make([new Run({ k: 'a' }, 'ok'), new Run({ k: 'big' }, 'ok', { tasks: 4, coresPerTask: 2 })]);
    const ex = await t.executeLocal({ blocking: true, cores: 2 });
    expect(await ex.done).toBe(3);
    const st = runThemis(['status', '--json', '--no-allocations', '--setup-dir', setupDir], { cwd: root });
    const rep = JSON.parse(st.stdout);
    expect(rep.counts).toMatchObject({ successful: 1, queued: 1 });
    const b = rep.blocked.find((x: { runs: number[] | null }) => x.runs !== null);
    expect(b.runs).toEqual([2]);
    expect(b.reason).toMatch(/^run 2: needs 4 tasks x 2 cores/);
  });

  it('createResume returns the existing ensemble; create refuses it; clear then exists is false', async () => {
    const t = await make([new Run({ k: 'a' }, 'ok')]);
    const again = await Themis.createResume({ application: app, runs: [new Run({ k: 'z' }), new Run({ k: 'y' })], root, setupDir, scheduler: 'local' });
    expect(again.setupDir).toBe(t.setupDir);
    expect(await again.countByStatus()).toBe(1);
    await expect(make([new Run({ k: 'b' })])).rejects.toMatchObject({ code: 'EXISTS' });
    await Themis.clear(setupDir);
    expect(Themis.exists(setupDir)).toBe(false);
    expect(fs.existsSync(path.join(root, 'runs', '1'))).toBe(true);
  });

  it('createOverwrite replaces an existing ensemble', async () => {
    await make([new Run({ k: 'a' }, 'ok')]);
    const over = await Themis.createOverwrite({ application: app, runs: [new Run({ k: 'n' }), new Run({ k: 'm' })], root, setupDir, scheduler: 'local', appIsBatchScript: false });
    expect(await over.countByStatus()).toBe(2);
    expect(await over.countByStatus('queued')).toBe(2);
  });
});
