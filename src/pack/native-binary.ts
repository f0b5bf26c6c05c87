import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Whether the native launcher binary can run on this machine, and which launcher steps start
 * through and why (for `themis --version` and the packer's fallback line). The binary is built
 * where themis is installed (scripts/build-native.mjs, npm's `install` script, and `npm run build`),
 * never shipped; that script records what happened in dist/native/build.json.
 */

/** dist/native/build.json, written by scripts/build-native.mjs. */
export interface NativeBuildRecord {
  format: number;
  launcher: 'native' | 'node';
  compiler: string | null;
  /** Why it was not built (null when it was). */
  why: string | null;
  /** Who built it: npm's install script, or `npm run build` in a checkout. */
  how: 'install' | 'build';
  platform: string;
  arch: string;
  at: string;
}

/** ELF e_machine numbers of the architectures Node runs on, with the name people know them by. */
const MACHINES: Record<number, string> = {
  3: 'x86 (32-bit)',
  8: 'mips',
  20: 'ppc (32-bit)',
  21: 'ppc64',
  22: 's390x',
  40: 'arm (32-bit)',
  62: 'x86-64',
  183: 'aarch64',
  243: 'riscv',
  258: 'loongarch64',
};

/** process.arch -> the ELF e_machine of binaries that run here. */
const ARCH_MACHINE: Record<string, number> = { ia32: 3, mips: 8, mipsel: 8, ppc: 20, ppc64: 21, s390x: 22, arm: 40, x64: 62, arm64: 183, riscv64: 243, loong64: 258 };

function machineName(machine: number, littleEndian: boolean): string {
  const name = MACHINES[machine] ?? `ELF machine ${machine}`;
  return machine === 21 && littleEndian ? 'ppc64le' : name;
}

/**
 * Why an ELF file's header says it cannot run on `arch` (`process.arch`) with `endian`
 * (`os.endianness()`), or null when it can (or when `header` is not ELF: a script is left to the
 * kernel). Example: elfMismatch(<x86-64 header>, 'ppc64', 'LE') -> 'built for x86-64, this machine is ppc64le'.
 */
export function elfMismatch(header: Uint8Array, arch: string, endian: 'LE' | 'BE'): string | null {
  if (header.length < 20 || header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c || header[3] !== 0x46) return null;
  const little = header[5] === 1;
  const machine = little ? header[18]! | (header[19]! << 8) : (header[18]! << 8) | header[19]!;
  const wanted = ARCH_MACHINE[arch];
  if (wanted === undefined) return null;
  const here = machineName(wanted, endian === 'LE');
  if (machine !== wanted || little !== (endian === 'LE')) return `built for ${machineName(machine, little)}, this machine is ${here}`;
  return null;
}

/** Why the binary at `file` cannot start here, read from its header; null when nothing says so. */
export function nativeBinaryProblem(file: string): string | null {
  let header: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      header = Buffer.alloc(64);
      fs.readSync(fd, header, 0, 64, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    return `cannot read ${file}: ${(e as Error).message}`;
  }
  const mismatch = elfMismatch(header, process.arch, os.endianness());
  return mismatch === null ? null : `${file} was ${mismatch} (a file system shared between machines?)`;
}

/** What a failed start of the binary means, in words a user can act on (ENOENT for a file that exists: its loader is missing). */
export function explainStartFailure(file: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const cause = (err.cause as NodeJS.ErrnoException | undefined) ?? err;
  if (cause.code === 'ENOENT' && fs.existsSync(file)) return `${file} exists, but its interpreter or dynamic loader is missing here (built for another system?)`;
  if (cause.code === 'EACCES') return `${file} may not be executed here (${cause.message}; a noexec mount?)`;
  return err.message;
}

/** dist/native/build.json next to the binary, or null when there is none (npm ran no install script) or it is unreadable. */
export function readNativeBuildRecord(nativeDir: string): NativeBuildRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(nativeDir, 'build.json'), 'utf8')) as NativeBuildRecord;
    return typeof r === 'object' && r !== null && typeof r.format === 'number' ? r : null;
  } catch {
    return null;
  }
}

/** Which launcher steps start through, and why, in one line; for `themis --version`. */
export interface LauncherDescription {
  kind: 'native' | 'node';
  /** The native binary, when it is the one. */
  path: string | null;
  why: string;
}

/**
 * Describe the launcher a packer would start here. `found`: the binary the packer would try (null
 * when none is built or it is not executable); `nativeDir`: where the build record lives; `forced`:
 * THEMIS_LAUNCHER's value; `named`: THEMIS_NATIVE_SPAWNER's value; `rebuild`: the command that builds it.
 */
export function describeLauncher(o: { found: string | null; nativeDir: string; forced: string | undefined; named: string | undefined; rebuild: string }): LauncherDescription {
  if (o.forced === 'node') return { kind: 'node', path: null, why: 'THEMIS_LAUNCHER=node asks for it' };
  if (o.named && o.found === null) return { kind: 'node', path: null, why: `THEMIS_NATIVE_SPAWNER=${o.named} is not an executable file` };
  const record = readNativeBuildRecord(o.nativeDir);
  if (o.found === null) {
    const why =
      record === null
        ? 'the native launcher was not built: npm ran no install script (--ignore-scripts?)'
        : record.launcher === 'node'
          ? `the native launcher was not built at ${record.how === 'install' ? 'install' : '`npm run build`'}: ${record.why}`
          : 'the native launcher was built but is gone';
    return { kind: 'node', path: null, why: `${why}; with a C compiler, build it: ${o.rebuild}` };
  }
  const problem = nativeBinaryProblem(o.found);
  if (problem !== null) return { kind: 'node', path: null, why: `${problem}; build it for this machine: ${o.rebuild}` };
  const how = o.named
    ? 'named by THEMIS_NATIVE_SPAWNER'
    : record?.launcher === 'native'
      ? `built with ${record.compiler} at ${record.how === 'install' ? 'install' : '`npm run build`'}`
      : 'built here';
  return { kind: 'native', path: o.found, why: how };
}
