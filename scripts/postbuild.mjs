// tsc does not set the execute bit on bin files; npm does on install, but `npm run build` in a
// checkout must leave runnable binaries too.
import { chmodSync, existsSync } from 'node:fs';
for (const bin of ['dist/bin/themis.js', 'dist/bin/themis-pack.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}

// The native launcher (src/native/spawner.c) where a C compiler exists; without one, or when the
// compile fails, the packer uses the Node launcher (dist/pack/launcher-child.js) instead.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
{
  const out = 'dist/native/themis-spawner';
  mkdirSync('dist/native', { recursive: true });
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-o', `${out}.tmp`, 'src/native/spawner.c'], { encoding: 'utf8' });
  if (r.status === 0) {
    renameSync(`${out}.tmp`, out);
  } else {
    rmSync(`${out}.tmp`, { force: true });
    rmSync(out, { force: true });
    const why = r.error ? `${cc} not found` : (r.stderr || '').trim().split('\n').slice(-3).join(' ');
    console.error(`themis build: native launcher not built (${why}); the Node launcher will be used`);
  }
}
