import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Themis } from '../../src/api/themis.js';
import { writePackerHeartbeat } from '../../src/store/ensemble-state.js';
import { hostName } from '../../src/store/proc.js';
import { listTree, makeTempDir } from '../helpers/cli.js';
import { cli, writeHandEnsemble } from './helpers.js';

let root: string;
let setupDir: string;
beforeEach(() => {
  root = makeTempDir();
  setupDir = writeHandEnsemble(root, [{ sample: { a: '1' }, status: 'successful', result: 5 }, { sample: { a: '2' } }]);
  // What gen and packers leave in the setup directory, plus user files beside them.
  const sp = path.join(setupDir);
  fs.mkdirSync(path.join(sp, 'batch'), { recursive: true });
  fs.writeFileSync(path.join(sp, 'batch', 'themis-1.sh'), '#!/bin/sh\n');
  fs.mkdirSync(path.join(sp, 'logs'), { recursive: true });
  fs.writeFileSync(path.join(sp, 'logs', 'packer-x.log'), 'log\n');
  fs.writeFileSync(path.join(sp, 'jobs.json'), '{"format":1,"jobs":[]}\n');
  fs.writeFileSync(path.join(sp, '.ensemble.json.tmp-123-abcd1234'), 'torn');
  fs.writeFileSync(path.join(root, 'runs', '1', 'output.dat'), 'user data\n');
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('clear', () => {
  it('removes what themis made, keeps run directories and user files; then exists is false', async () => {
    fs.writeFileSync(path.join(setupDir, 'my-notes.txt'), 'mine\n');
    expect(Themis.exists(setupDir)).toBe(true);
    const report = await Themis.clear(setupDir);
    expect(Themis.exists(setupDir)).toBe(false);
    expect(report.runsCleared).toBe(2);
    expect(report.setupDirRemoved).toBe(false);
    expect(listTree(setupDir)).toEqual(['my-notes.txt']);
    expect(listTree(path.join(root, 'runs'))).toEqual(['1/', '1/output.dat', '2/']);
    expect(() => Themis.open(setupDir)).toThrow(/themis gen/);
  });

  it('removes the setup directory when nothing else is in it; a second clear does nothing', async () => {
    const r = await cli(['clear', '--setup-dir', setupDir]);
    expect(r.code).toBe(0);
    expect(fs.existsSync(setupDir)).toBe(false);
    const again = await cli(['clear', '--setup-dir', setupDir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to clear');
  });

  it('refuses while a packer is alive (exit 1, names it), unless --force', async () => {
    writePackerHeartbeat(setupDir, {
      packerId: 'pk',
      host: hostName(),
      pid: process.pid,
      pidStart: null,
      jobId: null,
      allocation: 1,
      startedAt: new Date().toISOString(),
      heartbeatAt: new Date().toISOString(),
      running: [],
    });
    const r = await cli(['clear', '--setup-dir', setupDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pk (host');
    expect(Themis.exists(setupDir)).toBe(true);
    expect((await cli(['clear', '--force', '--setup-dir', setupDir])).code).toBe(0);
    expect(Themis.exists(setupDir)).toBe(false);
  });

  it('a corrupt ensemble.json can still be cleared', async () => {
    fs.writeFileSync(path.join(setupDir, 'ensemble.json'), '{"format": 1, "roo');
    expect((await cli(['status', '--setup-dir', setupDir])).code).toBe(2);
    const r = await Themis.clear(setupDir);
    expect(r.runsCleared).toBe(2);
    expect(fs.existsSync(setupDir)).toBe(false);
  });

  it('refuses while gen/add holds the write lock', async () => {
    fs.mkdirSync(path.join(setupDir, 'write.lock'));
    fs.writeFileSync(path.join(setupDir, 'write.lock', 'owner.json'), JSON.stringify({ host: 'elsewhere', pid: 1, pidStart: null, at: 'now', command: 'add' }));
    const r = await cli(['clear', '--setup-dir', setupDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('`themis add`');
    expect(Themis.exists(setupDir)).toBe(true);
  });
});
