// tsc does not set the execute bit on bin files; npm does on install, but `npm run build` in a
// checkout must leave runnable binaries too.
import { chmodSync, existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { buildNativeLauncher } from './build-native.mjs';
import { bundleCli } from './bundle.mjs';

for (const bin of ['dist/bin/themis.js', 'dist/bin/themis-pack.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}

// tsc never deletes: output of a source that was removed or renamed would linger in dist/ (and in
// a packed tarball). Remove what no src/**/*.ts makes any more.
function pruneDist(dir) {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (p !== path.join('dist', 'native')) pruneDist(p);
      continue;
    }
    // The bundle's chunks have no source of their own; scripts/bundle.mjs replaces them.
    if (/^themis-chunk-.*\.js$/.test(e.name)) continue;
    const m = /^(.*)\.(js|d\.ts|js\.map|d\.ts\.map)$/.exec(p);
    if (m && !existsSync(path.join('src', path.relative('dist', m[1]) + '.ts'))) rmSync(p);
  }
}
if (existsSync('src')) pruneDist('dist');

// The native launcher (src/native/spawner.c) where a C compiler exists; without one, or when the
// compile fails, the packer uses the Node launcher (dist/pack/launcher-child.js) instead.
{
  const { record, line } = buildNativeLauncher(process.cwd(), { how: 'build' });
  if (record.launcher !== 'native') console.error(`themis build: ${line}`);
}

// The CLI as one bundle (scripts/bundle.mjs): a third of `themis status` was loading modules.
{
  const r = await bundleCli(process.cwd());
  if (!r.bundled && r.why) console.error(`themis build: ${r.why}`);
}
