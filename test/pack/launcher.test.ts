import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LAUNCHER_ENV, Launcher, NATIVE_ENV, nativeSpawnerPath, type ExitRecord } from '../../src/pack/launcher.js';
import { ParentDecoder, decodeChild, encodeChild, encodeParent, type SpawnRequest } from '../../src/pack/launcher-protocol.js';
import { parseJournal, readJournalEntry } from '../../src/store/journal.js';
import { PROJECT_ROOT as ROOT, makeTempDir } from '../helpers/cli.js';
import { mountTmpfs, tmpfsUnavailable, umountAll } from '../helpers/tmpfs.js';

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The native launcher to test: the one `npm run build` made, or else one compiled here when a C
 * compiler works (so both launchers are covered wherever they can exist); null without one.
 */
function nativeForTests(): string | null {
  const built = nativeSpawnerPath();
  if (built) return built;
  const out = path.join(makeTempDir('themis-cc-'), 'themis-spawner');
  const r = spawnSync(process.env.CC || 'cc', ['-O2', '-o', out, path.join(ROOT, 'src/native/spawner.c')], { encoding: 'utf8' });
  return r.status === 0 ? out : null;
}
const NATIVE = nativeForTests();

/** A launcher of the given kind with its events collected, journaling to a fresh journal. */
async function open(kind: 'native' | 'node', graceMs = 500, journal: string | null = path.join(makeTempDir('themis-journal-'), 'packers', 'p.journal')) {
  const before = process.env[LAUNCHER_ENV];
  const beforeNative = process.env[NATIVE_ENV];
  process.env[LAUNCHER_ENV] = kind;
  if (kind === 'native') process.env[NATIVE_ENV] = NATIVE!;
  const exits = new Map<string, ExitRecord>();
  const started = new Map<string, number>();
  const lost: string[] = [];
  // What the journal held when each event arrived: the launcher journals before it tells the packer.
  const journaledFirst: string[] = [];
  const check = (key: string, what: 'start' | 'exit') => {
    if (journal === null) return;
    const e = readJournalEntry(journal, key);
    if (!e?.[what]) journaledFirst.push(`${what} of ${key} not journaled before the event`);
  };
  try {
    const l = await Launcher.start(
      graceMs,
      {
        started: (key, pid) => {
          check(key, 'start');
          started.set(key, pid);
        },
        exit: (key, exit) => {
          check(key, 'exit');
          exits.set(key, exit);
        },
        lost: (why) => lost.push(why),
      },
      journal,
    );
    return { l, exits, started, lost, journal: journal!, journaledFirst };
  } finally {
    if (before === undefined) delete process.env[LAUNCHER_ENV];
    else process.env[LAUNCHER_ENV] = before;
    if (beforeNative === undefined) delete process.env[NATIVE_ENV];
    else process.env[NATIVE_ENV] = beforeNative;
  }
}

function request(dir: string, key: string, argv: string[], extra: Partial<SpawnRequest> = {}): SpawnRequest {
  const meta = path.join(dir, '.themis');
  fs.mkdirSync(meta, { recursive: true });
  const [runId, step, attempt] = key.split(':').map(Number) as [number, number, number];
  return {
    key,
    runId,
    step,
    attempt,
    argv,
    cwd: dir,
    env: { THEMIS_TEST_VALUE: 'a b\tc', PATH: process.env.PATH ?? '/usr/bin:/bin' },
    logName: 'run.log',
    logSpare: '',
    timeoutMs: 0,
    ...extra,
  };
}

describe('launcher protocol', () => {
  it('round-trips spawn requests split at any byte, and exit lines', () => {
    const req = request(makeTempDir('themis-proto-'), '7:1:2', ['/bin/echo', '', 'with space', 'new\nline', 'ünï'], { timeoutMs: 1500 });
    const bytes =
      encodeParent({ t: 'init', graceMs: 250, journal: '/setup/packers/h-1-abc.journal' }) +
      encodeParent({ t: 'spawn', req }) +
      encodeParent({ t: 'kill', key: '7:1:2', reason: 'dequeue' }) +
      encodeParent({ t: 'shutdown' });
    for (const cut of [1, 5, 17, bytes.length - 1]) {
      const d = new ParentDecoder();
      const msgs = [...d.push(bytes.slice(0, cut)), ...d.push(bytes.slice(cut))];
      expect(msgs).toEqual([{ t: 'init', graceMs: 250, journal: '/setup/packers/h-1-abc.journal' }, { t: 'spawn', req }, { t: 'kill', key: '7:1:2', reason: 'dequeue' }, { t: 'shutdown' }]);
    }
    const exit: ExitRecord = { format: 1, runId: 7, step: 1, attempt: 2, code: null, signal: 'SIGTERM', stoppedBy: 'timeout', startedAt: 'a', endedAt: 'b', host: 'h', pid: 9 };
    expect(decodeChild(encodeChild({ t: 'exit', key: '7:1:2', exit }).trimEnd())).toEqual({ t: 'exit', key: '7:1:2', exit });
    expect(decodeChild(encodeChild({ t: 'started', key: '7:1:2', pid: 9 }).trimEnd())).toEqual({ t: 'started', key: '7:1:2', pid: 9 });
    expect(() => encodeParent({ t: 'spawn', req: { ...req, argv: ['a\0b'] } })).toThrow(/NUL/);
  });
});

const kinds: ('native' | 'node')[] = NATIVE ? ['native', 'node'] : ['node'];
if (NATIVE === null) console.warn('*** launcher tests: the native launcher is NOT tested here (no C compiler could build it); only the Node launcher is ***');

describe.each(kinds)('the %s launcher', (kind) => {
  let launcher: Launcher | null = null;
  afterEach(async () => {
    await launcher?.close();
    launcher = null;
  });

  it('is the kind asked for', async () => {
    const o = await open(kind);
    launcher = o.l;
    expect(o.l.kind).toBe(kind);
  });

  it('runs a step in its own process group with its environment and log, and journals its start and exit (no file per step)', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind);
    launcher = o.l;
    const req = request(dir, '1:0:0', ['sh', '-c', 'echo "out $THEMIS_TEST_VALUE"; echo err >&2; ps -o pgid= -p $$ > pgid; read x || echo "stdin empty"; exit 3']);
    o.l.spawn(req);
    await waitFor(() => o.exits.has('1:0:0'), 10_000, 'the exit');
    const exit = o.exits.get('1:0:0')!;
    expect(exit).toMatchObject({ format: 1, runId: 1, step: 0, attempt: 0, code: 3, signal: null, stoppedBy: null, pid: o.started.get('1:0:0') });
    const j = parseJournal(fs.readFileSync(o.journal, 'utf8'));
    expect(j.get('1:0:0')!.exit).toEqual(exit);
    expect(j.get('1:0:0')!.start).toMatchObject({
      format: 1,
      runId: 1,
      step: 0,
      attempt: 0,
      pid: exit.pid,
      pgid: exit.pid,
      launcherPid: o.l.pid,
      startedAt: exit.startedAt,
      pidNs: fs.readlinkSync('/proc/self/ns/pid'),
    });
    // Nothing created in the run's .themis/: the journal holds it all.
    expect(fs.readdirSync(path.join(dir, '.themis'))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'run.log'), 'utf8')).toBe('out a b\tc\nerr\nstdin empty\n');
    expect(Number(fs.readFileSync(path.join(dir, 'pgid'), 'utf8'))).toBe(exit.pid);
    expect(new Date(exit.endedAt).getTime()).toBeGreaterThanOrEqual(new Date(exit.startedAt).getTime());
    // A second attempt rotates the log.
    o.l.spawn(request(dir, '1:0:1', ['sh', '-c', 'echo second']));
    await waitFor(() => o.exits.has('1:0:1'), 10_000, 'the second exit');
    expect(o.exits.get('1:0:1')!.code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'run_0001.log'), 'utf8')).toContain('out a b');
    expect(fs.readFileSync(path.join(dir, 'run.log'), 'utf8')).toBe('second\n');
    // One line per start and per exit, each event journaled before the packer heard of it.
    expect(
      fs
        .readFileSync(o.journal, 'utf8')
        .split('\n')
        .map((l) => l.slice(0, 8)),
    ).toEqual(['S 1:0:0 ', 'E 1:0:0 ', 'S 1:0:1 ', 'E 1:0:1 ', '']);
    expect(o.journaledFirst).toEqual([]);
  });

  it('links the spare log gen made into place (no file created), and rotates as usual at the next attempt', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind);
    launcher = o.l;
    const spare = path.join(dir, '.themis', 'log.spare');
    fs.mkdirSync(path.dirname(spare), { recursive: true });
    fs.writeFileSync(spare, '');
    const ino = fs.statSync(spare).ino;
    o.l.spawn(request(dir, '5:0:0', ['sh', '-c', 'echo first'], { logSpare: spare }));
    await waitFor(() => o.exits.has('5:0:0'), 10_000, 'the exit');
    expect(fs.statSync(path.join(dir, 'run.log')).ino).toBe(ino);
    expect(fs.readFileSync(path.join(dir, 'run.log'), 'utf8')).toBe('first\n');
    expect(fs.existsSync(spare)).toBe(false);
    // No spare left: the next attempt rotates and creates a log, as without one.
    o.l.spawn(request(dir, '5:0:1', ['sh', '-c', 'echo second'], { logSpare: spare }));
    await waitFor(() => o.exits.has('5:0:1'), 10_000, 'the second exit');
    expect(fs.readFileSync(path.join(dir, 'run_0001.log'), 'utf8')).toBe('first\n');
    expect(fs.readFileSync(path.join(dir, 'run.log'), 'utf8')).toBe('second\n');
    // A spare while a log exists (a requeued run with a new spare): the old log is kept, rotated.
    fs.writeFileSync(spare, '');
    o.l.spawn(request(dir, '5:0:2', ['sh', '-c', 'echo third'], { logSpare: spare }));
    await waitFor(() => o.exits.has('5:0:2'), 10_000, 'the third exit');
    expect(fs.readFileSync(path.join(dir, 'run_0002.log'), 'utf8')).toBe('second\n');
    expect(fs.readFileSync(path.join(dir, 'run.log'), 'utf8')).toBe('third\n');
    expect(fs.existsSync(spare)).toBe(false);
  });

  it('journals the start while the step runs; kill stops the whole group with the reason; a missing program exits 127', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind);
    launcher = o.l;
    const req = request(dir, '2:0:0', ['sh', '-c', 'sleep 30 & sleep 30; wait']);
    o.l.spawn(req);
    await waitFor(() => o.started.has('2:0:0'), 10_000, 'the start');
    const rec = readJournalEntry(o.journal, '2:0:0')!.start!;
    expect(rec).toMatchObject({ format: 1, runId: 2, step: 0, attempt: 0, pid: o.started.get('2:0:0'), pgid: o.started.get('2:0:0'), launcherPid: o.l.pid });
    expect(rec.pidStart).toMatch(/^\d+$/);
    expect(readJournalEntry(o.journal, '2:0:0')!.exit).toBeNull();
    o.l.kill('2:0:0', 'dequeue');
    await waitFor(() => o.exits.has('2:0:0'), 10_000, 'the stopped exit');
    expect(o.exits.get('2:0:0')).toMatchObject({ code: null, signal: 'SIGTERM', stoppedBy: 'dequeue' });
    const missing = request(makeTempDir('themis-launcher-'), '3:0:0', ['/nonexistent/app', '-x']);
    o.l.spawn(missing);
    await waitFor(() => o.exits.has('3:0:0'), 10_000, 'the failed start');
    expect(o.exits.get('3:0:0')!.code).toBe(127);
    expect(fs.readFileSync(path.join(missing.cwd, 'run.log'), 'utf8')).toContain('cannot start /nonexistent/app');
    expect(readJournalEntry(o.journal, '3:0:0')!.exit).toMatchObject({ code: 127 });
    expect(o.journaledFirst).toEqual([]);
  });

  it('starts steps with no signal blocked or ignored, whether exec runs them or /bin/sh does (a script without #!)', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind);
    launcher = o.l;
    // The step's process reports its own mask: grep replaces the shell the launcher started (a
    // shell waiting for a child blocks signals for a moment: reading its mask then would be a race).
    const report = `exec grep -E '^Sig(Blk|Ign):' /proc/self/status > "$1"`;
    o.l.spawn(request(dir, '6:0:0', ['sh', '-c', report, 'sh', path.join(dir, 'exec.sigs')]));
    const script = path.join(dir, 'no-shebang');
    fs.writeFileSync(script, `${report}\n`, { mode: 0o755 });
    o.l.spawn(request(dir, '6:0:1', [script, path.join(dir, 'sh.sigs')]));
    await waitFor(() => o.exits.has('6:0:0') && o.exits.has('6:0:1'), 10_000, 'both exits');
    expect(o.exits.get('6:0:0')!.code).toBe(0);
    expect(o.exits.get('6:0:1')!.code).toBe(0);
    // glibc's posix_spawn leaves its two internal signals (32 and 33, below SIGRTMIN) ignored in
    // the child, and its sigaddset refuses them; the step's own C library takes them back. Every
    // other signal is neither blocked nor ignored.
    const GLIBC_INTERNAL = (1n << 31n) | (1n << 32n);
    for (const f of ['exec.sigs', 'sh.sigs']) {
      const m = /^SigBlk:\t([0-9a-f]{16})\nSigIgn:\t([0-9a-f]{16})\n$/.exec(fs.readFileSync(path.join(dir, f), 'utf8'));
      expect(m, f).not.toBeNull();
      expect(BigInt(`0x${m![1]}`), `${f}: blocked`).toBe(0n);
      expect(BigInt(`0x${m![2]}`) & ~GLIBC_INTERNAL, `${f}: ignored`).toBe(0n);
    }
  });

  it('enforces the timeout, TERM then KILL after the grace period', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind, 300);
    launcher = o.l;
    o.l.spawn(request(dir, '4:0:0', ['sh', '-c', 'trap "" TERM; sleep 30'], { timeoutMs: 200 }));
    await waitFor(() => o.exits.has('4:0:0'), 10_000, 'the timed-out exit');
    expect(o.exits.get('4:0:0')).toMatchObject({ code: null, signal: 'SIGKILL', stoppedBy: 'timeout' });
  });

  it('when the packer goes away (stdin closed), stops every step, records it as interrupted and exits', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind);
    const req = request(dir, '5:0:0', ['sleep', '30']);
    o.l.spawn(req);
    await waitFor(() => o.started.has('5:0:0'), 10_000, 'the start');
    const pid = o.started.get('5:0:0')!;
    await o.l.close();
    expect(alive(pid)).toBe(false);
    expect(alive(o.l.pid)).toBe(false);
    expect(readJournalEntry(o.journal, '5:0:0')!.exit).toMatchObject({ signal: 'SIGTERM', stoppedBy: 'interrupt' });
    expect(o.lost).toEqual([]);
  });

  it('journals the exits of the steps it stops even when nobody reads its output any more (the packer died)', async () => {
    const dir = makeTempDir('themis-launcher-');
    const journal = path.join(makeTempDir('themis-journal-'), 'p.journal');
    // A packer of our own making, so that it can die with kill -9 while its step runs.
    const packer = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      const { Launcher } = await import(${JSON.stringify(path.join(ROOT, 'dist/pack/launcher.js'))});
      const l = await Launcher.start(300, { started(key, pid) { console.log('started', pid); }, exit() {}, lost() {} }, ${JSON.stringify(journal)});
      l.spawn(${JSON.stringify(request(dir, '6:0:0', ['sleep', '30']))});
      setInterval(() => {}, 1000);`,
      ],
      { env: { ...process.env, [LAUNCHER_ENV]: kind, ...(kind === 'native' ? { [NATIVE_ENV]: NATIVE! } : {}) }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    packer.stdout!.on('data', (d) => (out += d));
    await waitFor(() => /started \d+/.test(out), 10_000, 'the start');
    const pid = Number(/started (\d+)/.exec(out)![1]);
    expect(readJournalEntry(journal, '6:0:0')!.start!.pid).toBe(pid);
    packer.kill('SIGKILL');
    await waitFor(() => readJournalEntry(journal, '6:0:0')?.exit != null, 10_000, 'the journaled exit');
    expect(readJournalEntry(journal, '6:0:0')!.exit).toMatchObject({ runId: 6, signal: 'SIGTERM', stoppedBy: 'interrupt', pid });
    await waitFor(() => !alive(pid), 5000, 'the step gone');
  });

  it('runs steps all the same when its journal cannot be opened', async () => {
    const dir = makeTempDir('themis-launcher-');
    const o = await open(kind, 500, '/dev/null/themis.journal');
    launcher = o.l;
    o.l.spawn(request(dir, '7:0:0', ['sh', '-c', 'exit 0']));
    await waitFor(() => o.exits.has('7:0:0'), 10_000, 'the exit');
    expect(o.exits.get('7:0:0')!.code).toBe(0);
  });
});

const NO_TMPFS = NATIVE ? tmpfsUnavailable() : 'no native launcher';

describe.runIf(NO_TMPFS === null)('the native launcher on a disk that fills up (a tmpfs this test mounts; root only)', () => {
  let launcher: Launcher | null = null;
  afterEach(async () => {
    if (launcher) await launcher.close();
    launcher = null;
    umountAll();
  });

  it('still journals the start and exit of a step when the disk filled up after it opened the journal', async () => {
    const disk = mountTmpfs('512k', 'themis-full-journal-');
    // A journal that already ends on a block boundary: its next line needs a new block.
    const journal = path.join(disk, 'packers', 'p.journal');
    fs.mkdirSync(path.dirname(journal), { recursive: true });
    const head = 'S 900:0:0 {"format":1,"runId":900,"step":0,"attempt":0,"pad":"';
    fs.writeFileSync(journal, head + 'x'.repeat(4096 - head.length - 3) + '"}\n');
    expect(fs.statSync(journal).size).toBe(4096);
    const o = await open('native', 500, journal);
    launcher = o.l;
    // The launcher opens its journal once it has read its init message: wait until it holds the
    // space ahead (allocated blocks beyond the 4 KiB of content), then fill the disk to the last byte.
    await waitFor(() => fs.statSync(journal).blocks * 512 >= 4096 + 32 * 1024, 10_000, 'the journal space reserved ahead');
    expect(fs.statSync(journal).size).toBe(4096);
    const fd = fs.openSync(path.join(disk, 'filler'), 'w');
    const chunk = Buffer.alloc(4096, 1);
    expect(() => {
      for (;;) fs.writeSync(fd, chunk);
    }).toThrow(/ENOSPC/);
    fs.closeSync(fd);
    const dir = makeTempDir('themis-launcher-');
    o.l.spawn(request(dir, '8:0:0', ['sh', '-c', 'exit 3']));
    await waitFor(() => o.exits.has('8:0:0'), 10_000, 'the exit');
    const e = readJournalEntry(journal, '8:0:0');
    expect(e?.start?.runId).toBe(8);
    expect(e?.exit).toMatchObject({ runId: 8, code: 3 });
    expect(o.journaledFirst).toEqual([]);
  });
});

describe('the build', () => {
  it('without a working C compiler leaves no native launcher and says so (the Node launcher is used)', () => {
    const dir = makeTempDir('themis-build-');
    fs.mkdirSync(path.join(dir, 'src/native'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'src/native/spawner.c'), path.join(dir, 'src/native/spawner.c'));
    fs.mkdirSync(path.join(dir, 'dist/native'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'dist/native/themis-spawner'), 'stale');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/postbuild.mjs')], { cwd: dir, env: { ...process.env, CC: '/nonexistent/cc' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('the Node launcher will be used');
    expect(fs.existsSync(path.join(dir, 'dist/native/themis-spawner'))).toBe(false);
  });

  it('a native launcher that cannot run makes the packer fall back to the Node one', async () => {
    // As if dist/ came from another machine: the packer must still work.
    const dir = makeTempDir('themis-build-');
    const fake = path.join(dir, 'themis-spawner');
    fs.writeFileSync(fake, '#!/nonexistent/interpreter\n', { mode: 0o755 });
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      const { Launcher } = await import(${JSON.stringify(path.join(ROOT, 'dist/pack/launcher.js'))});
      const l = await Launcher.start(100, { started() {}, exit() {}, lost() {} });
      console.log(l.kind);
      await l.close();`,
      ],
      { env: { ...process.env, THEMIS_NATIVE_SPAWNER: fake, [LAUNCHER_ENV]: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.on('exit', r));
    expect(code).toBe(0);
    expect(out.trim()).toBe('node');
  });
});
