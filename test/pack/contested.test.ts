import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeEnsemble, startPack, statuses } from './helpers.js';

describe('a queued run whose claimer died mid-claim', () => {
  it('is waited for until its claim goes stale, then run: the packer does not exit with it still queued', async () => {
    const e = makeEnsemble([{ steps: [{ args: ['/bin/true'] }] }, { steps: [{ args: ['/bin/true'] }] }]);
    // A claimer killed between `mkdir claim` and writing owner.json leaves this behind.
    fs.mkdirSync(path.join(e.runDir(1), '.themis', 'claim'));
    const r = await startPack(['--setup-dir', e.setupDir, '--lease', '1', '--heartbeat', '0.2']).done;
    expect(r.code, r.stderr).toBe(0);
    const [one, two] = statuses(e.root, 2);
    expect(two!.status).toBe('successful');
    expect(one!.status).toBe('successful');
    expect(JSON.stringify(one!.history)).toMatch(/claim/);
    expect(fs.existsSync(path.join(e.runDir(1), '.themis', 'claim'))).toBe(false);
  }, 30_000);
});
