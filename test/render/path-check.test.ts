import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pathCheckLines } from '../../src/render/path-check.js';
import { tempDirs } from '../helpers/cli.js';

const temp = tempDirs('themis-path-check-');

/** Run the check lines in bash, as a batch script does before its `exec`. */
function check(node: string, packBin: string, dir: string) {
  const script = path.join(dir, "it's batch", 'themis-1.sh');
  const body = pathCheckLines({ node, packBin, script, setupDir: path.join(dir, "it's batch"), allocation: 3 });
  return spawnSync('bash', ['-c', `${body}\necho passed`], { encoding: 'utf8' });
}

describe('the batch script path check', () => {
  it('passes when node and themis-pack are where the script names them', () => {
    const dir = temp();
    const packBin = path.join(dir, 'themis-pack.js');
    fs.writeFileSync(packBin, '');
    const r = check(process.execPath, packBin, dir);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('passed\n');
  });

  it('stops with 127 and says what is gone and how to write the script again', () => {
    const dir = temp();
    const gone = path.join(dir, 'old $(prefix)', 'themis-pack.js');
    const r = check(process.execPath, gone, dir);
    expect(r.status).toBe(127);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `themis: this batch script runs ${gone}, which no longer exists: themis or node was moved, uninstalled or upgraded to another path after the script was written.\n` +
        `Its runs are still queued. Write the script again with the current paths and submit it: rm ${dir}/it's batch/themis-1.sh && themis --setup-dir ${dir}/it's batch submit --allocation 3\n`,
    );
    expect(check('/no/such/node', process.execPath, dir).stderr).toContain('runs /no/such/node, which no longer exists');
  });
});
