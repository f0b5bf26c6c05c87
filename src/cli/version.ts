import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launcherInUse } from '../pack/launcher.js';

/** The package directory, from this module's location (src/cli or dist/cli). */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `name version` from package.json (`themis-hpc 0.1.0`). */
function packageLine(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name?: string; version?: string };
    return `${pkg.name ?? 'themis'} ${pkg.version ?? '(unknown version)'}`;
  } catch (e) {
    return `themis (unknown version: ${(e as Error).message})`;
  }
}

/**
 * What `themis --version` and `themis-pack --version` print: the package and its version, where it
 * and node are (the paths batch scripts name), and which launcher starts steps here, and why.
 */
export function versionText(): string {
  const l = launcherInUse();
  return [
    packageLine(),
    `node ${process.version} (${process.execPath}, ${process.platform} ${process.arch}), installed at ${PACKAGE_ROOT}`,
    l.kind === 'native' ? `launcher: native, ${l.path} (${l.why})` : `launcher: Node (${l.why})`,
  ].join('\n');
}
