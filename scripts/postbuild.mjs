// tsc does not set the execute bit on bin files; npm does on install, but `npm run build` in a
// checkout must leave runnable binaries too.
import { chmodSync, existsSync } from 'node:fs';
for (const bin of ['dist/bin/themis.js', 'dist/bin/themis-pack.js']) {
  if (existsSync(bin)) chmodSync(bin, 0o755);
}
