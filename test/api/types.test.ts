import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, makeTempDir } from '../helpers/cli.js';

describe('public API types', () => {
  it('test/api/public-types.ts type-checks under strict settings', () => {
    const dir = makeTempDir('themis-types-');
    try {
      const config = path.join(dir, 'tsconfig.json');
      fs.writeFileSync(
        config,
        JSON.stringify({
          extends: path.join(PROJECT_ROOT, 'tsconfig.json'),
          compilerOptions: { noEmit: true, rootDir: PROJECT_ROOT, types: ['node'], typeRoots: [path.join(PROJECT_ROOT, 'node_modules/@types')] },
          files: [path.join(PROJECT_ROOT, 'test/api/public-types.ts')],
        }),
      );
      const r = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', config], { encoding: 'utf8', cwd: PROJECT_ROOT });
      // Only errors in the API's own files or the check file count; others' work in progress does not.
      const ours = (r.stdout + r.stderr).split('\n').filter((l) => /(test\/api\/public-types|src\/api\/|src\/index)/.test(l));
      expect(ours).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
