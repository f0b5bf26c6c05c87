import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeLauncher, elfMismatch, nativeBinaryProblem } from '../../src/pack/native-binary.js';
import { PROJECT_ROOT as ROOT, tempDirs } from '../helpers/cli.js';

const temp = tempDirs('themis-native-');

/** The first 20 bytes of an ELF header: 64-bit, `little` or big endian, e_machine `machine`. */
function elfHeader(machine: number, little = true): Uint8Array {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, 2, little ? 1 : 2, 1]);
  if (little) h.set([machine & 0xff, machine >> 8], 18);
  else h.set([machine >> 8, machine & 0xff], 18);
  return h;
}

/** A file that looks like an ELF executable for `machine` (the header is all that is read before a start). */
function fakeElf(dir: string, machine: number): string {
  const file = path.join(dir, 'themis-spawner');
  fs.writeFileSync(file, elfHeader(machine), { mode: 0o755 });
  return file;
}

const OTHER_MACHINE = process.arch === 'x64' ? 21 : 62;

describe('elfMismatch', () => {
  it('accepts a binary for this architecture and byte order', () => {
    expect(elfMismatch(elfHeader(62), 'x64', 'LE')).toBeNull();
    expect(elfMismatch(elfHeader(183), 'arm64', 'LE')).toBeNull();
    expect(elfMismatch(elfHeader(21), 'ppc64', 'LE')).toBeNull();
    expect(elfMismatch(elfHeader(21, false), 'ppc64', 'BE')).toBeNull();
  });

  it('names what a binary was built for and what this machine is', () => {
    expect(elfMismatch(elfHeader(62), 'ppc64', 'LE')).toBe('built for x86-64, this machine is ppc64le');
    expect(elfMismatch(elfHeader(21), 'x64', 'LE')).toBe('built for ppc64le, this machine is x86-64');
    expect(elfMismatch(elfHeader(183), 'x64', 'LE')).toBe('built for aarch64, this machine is x86-64');
    expect(elfMismatch(elfHeader(21, false), 'ppc64', 'LE')).toBe('built for ppc64, this machine is ppc64le');
  });

  it('leaves what is not ELF (a wrapper script) to the kernel', () => {
    expect(elfMismatch(new TextEncoder().encode('#!/bin/sh\nexec real-spawner\n'), 'x64', 'LE')).toBeNull();
    expect(elfMismatch(new Uint8Array(3), 'x64', 'LE')).toBeNull();
  });
});

describe('describeLauncher', () => {
  const base = { forced: undefined, named: undefined, rebuild: 'node /pkg/scripts/build-native.mjs' };

  it('says the native launcher is used, and how it was built', () => {
    const dir = temp();
    fs.writeFileSync(path.join(dir, 'build.json'), JSON.stringify({ format: 1, launcher: 'native', compiler: 'gcc', why: null, how: 'install' }));
    const d = describeLauncher({ ...base, found: fs.realpathSync(process.execPath), nativeDir: dir });
    expect(d).toEqual({ kind: 'native', path: fs.realpathSync(process.execPath), why: 'built with gcc at install' });
  });

  it('says why the Node launcher is used: no compiler at install, no install script, forced, another architecture', () => {
    const dir = temp();
    expect(describeLauncher({ ...base, found: null, nativeDir: dir }).why).toBe(
      'the native launcher was not built: npm ran no install script (--ignore-scripts?); with a C compiler, build it: node /pkg/scripts/build-native.mjs',
    );
    fs.writeFileSync(path.join(dir, 'build.json'), JSON.stringify({ format: 1, launcher: 'node', compiler: null, why: 'no C compiler found: none of cc, gcc, clang on PATH', how: 'install' }));
    expect(describeLauncher({ ...base, found: null, nativeDir: dir })).toEqual({
      kind: 'node',
      path: null,
      why: 'the native launcher was not built at install: no C compiler found: none of cc, gcc, clang on PATH; with a C compiler, build it: node /pkg/scripts/build-native.mjs',
    });
    expect(describeLauncher({ ...base, forced: 'node', found: '/x', nativeDir: dir }).why).toBe('THEMIS_LAUNCHER=node asks for it');
    expect(describeLauncher({ ...base, named: '/no/such', found: null, nativeDir: dir }).why).toBe('THEMIS_NATIVE_SPAWNER=/no/such is not an executable file');
    const other = fakeElf(dir, OTHER_MACHINE);
    const d = describeLauncher({ ...base, found: other, nativeDir: dir });
    expect(d.kind).toBe('node');
    expect(d.why).toMatch(new RegExp(`^${other} was built for \\S+, this machine is \\S+ .*; build it for this machine: node /pkg/scripts/build-native.mjs$`));
    expect(nativeBinaryProblem(other)).toContain('was built for');
  });
});

/** Start a Launcher (the built one) in a child process with `env`; it prints the launcher's kind, or the error that stopped it. */
async function startLauncher(env: NodeJS.ProcessEnv): Promise<{ code: unknown; out: string; err: string }> {
  const script = `
      const { Launcher } = await import(${JSON.stringify(path.join(ROOT, 'dist/pack/launcher.js'))});
      try {
        const l = await Launcher.start(100, { started() {}, exit() {}, lost() {} });
        console.log(l.kind);
        await l.close();
      } catch (e) { console.log(e.message); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((r) => child.on('exit', r));
  return { code, out: out.trim(), err: err.trim() };
}

describe('a native launcher built for another machine', () => {
  it('is never started: the packer says why in one line and uses the Node launcher (no `ELF…: not found` from sh)', async () => {
    const fake = fakeElf(temp(), OTHER_MACHINE);
    const { code, out, err } = await startLauncher({ THEMIS_NATIVE_SPAWNER: fake, THEMIS_LAUNCHER: '' });
    expect(code, err).toBe(0);
    expect(out).toBe('node');
    const lines = err.split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^themis-pack: the native launcher cannot start here \\(${fake} was built for \\S+, this machine is \\S+ .*\\); steps start through the Node launcher instead`),
    );
    expect(err).not.toMatch(/not found|ELF/);
  });

  it('with THEMIS_LAUNCHER=native is an error that says why', async () => {
    const fake = fakeElf(temp(), OTHER_MACHINE);
    const { out } = await startLauncher({ THEMIS_NATIVE_SPAWNER: fake, THEMIS_LAUNCHER: 'native' });
    expect(out).toMatch(/^themis launcher \(native\) cannot start: .* was built for /);
  });
});

describe('scripts/build-native.mjs', () => {
  it('with no C compiler: one line that says the Node launcher will be used and why, a record, exit 0', () => {
    const dir = temp();
    fs.mkdirSync(path.join(dir, 'scripts'));
    fs.mkdirSync(path.join(dir, 'src/native'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'scripts/build-native.mjs'), path.join(dir, 'scripts/build-native.mjs'));
    fs.copyFileSync(path.join(ROOT, 'src/native/spawner.c'), path.join(dir, 'src/native/spawner.c'));
    const r = spawnSync(process.execPath, [path.join(dir, 'scripts/build-native.mjs')], { cwd: dir, env: { ...process.env, PATH: path.join(dir, 'empty'), CC: '' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `themis-hpc: native launcher not built (no C compiler found: none of cc, gcc, clang on PATH); the Node launcher will be used (it works the same, it forks slower; with a C compiler: node ${path.join(dir, 'scripts/build-native.mjs')})\n`,
    );
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'dist/native/build.json'), 'utf8'));
    expect(record).toMatchObject({ format: 1, launcher: 'node', how: 'install', why: 'no C compiler found: none of cc, gcc, clang on PATH' });
    expect(fs.existsSync(path.join(dir, 'dist/native/themis-spawner'))).toBe(false);
  });
});
