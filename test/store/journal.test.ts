import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forgetJournal, launchEntry, listJournals, parseJournal, readJournalEntry, removeJournal, stepRecords } from '../../src/store/journal.js';
import { setupPaths } from '../../src/store/layout.js';
import { newStatus, type ExitRecord, type StatusRecord, type StepStartRecord } from '../../src/store/records.js';
import { makeTempDir } from '../helpers/cli.js';

const start = (runId: number, pid: number): StepStartRecord => ({ format: 1, runId, step: 0, attempt: 0, host: 'h', pid, pgid: pid, pidStart: '123', startedAt: 't0', launcherPid: 7 });
const exit = (runId: number, code: number | null): ExitRecord => ({ format: 1, runId, step: 0, attempt: 0, code, signal: null, stoppedBy: null, startedAt: 't0', endedAt: 't1', host: 'h', pid: 9 });
const line = (kind: 'S' | 'E', key: string, rec: object) => `${kind} ${key} ${JSON.stringify(rec)}\n`;

describe('parseJournal (pure)', () => {
  it('pairs start and exit records by key; keys are opaque (colons and all)', () => {
    const j = parseJournal(line('S', '1:0:0:1', start(1, 100)) + line('S', '2:0:0:2', start(2, 200)) + line('E', '1:0:0:1', exit(1, 0)));
    expect(j.get('1:0:0:1')).toEqual({ start: start(1, 100), exit: exit(1, 0) });
    expect(j.get('2:0:0:2')).toEqual({ start: start(2, 200), exit: null });
    expect(j.has('3:0:0:3')).toBe(false);
  });

  it('ignores a torn last line, and garbage lines, but not what follows them', () => {
    const torn = line('E', '2:0:0:2', exit(2, 1)).slice(0, 30);
    const text = line('S', '2:0:0:2', start(2, 200)) + 'X nonsense\n' + 'S nospace\n' + 'E 5:0:0:5 {not json\n' + '\n' + torn;
    expect(parseJournal(text).get('2:0:0:2')).toEqual({ start: start(2, 200), exit: null });
    expect(parseJournal(text).size).toBe(1);
    // A launcher whose write came up short starts its next line with a newline: the torn piece
    // becomes a garbage line of its own and the next record is read.
    expect(parseJournal(text + '\n' + line('E', '2:0:0:2', exit(2, 1))).get('2:0:0:2')!.exit).toEqual(exit(2, 1));
  });
});

describe('reading journals', () => {
  const fresh = () => {
    const setup = path.join(makeTempDir('themis-journal-'), '.themis_setup');
    fs.mkdirSync(setupPaths(setup).packersDir, { recursive: true });
    return { setup, file: setupPaths(setup).packerJournal('h-1-abc') };
  };

  it('finds a key, sees what is appended later, and waits for a torn last line to be completed', () => {
    const { file } = fresh();
    expect(readJournalEntry(file, '1:0:0:1')).toBeNull();
    fs.writeFileSync(file, line('S', '1:0:0:1', start(1, 100)));
    expect(readJournalEntry(file, '1:0:0:1')).toEqual({ start: start(1, 100), exit: null });
    const e = line('E', '1:0:0:1', exit(1, 0));
    fs.appendFileSync(file, e.slice(0, 20));
    expect(readJournalEntry(file, '1:0:0:1')!.exit).toBeNull();
    fs.appendFileSync(file, e.slice(20));
    expect(readJournalEntry(file, '1:0:0:1')!.exit).toEqual(exit(1, 0));
    expect(readJournalEntry(file, 'absent')).toBeNull();
  });

  it('reads past a hole of zeros (NFS writing appends back out of order), and finds the lines that fill it later', () => {
    const { file } = fresh();
    const early = line('E', '2:0:0:2', exit(2, 0)); // written first, reaches the server last
    fs.writeFileSync(file, line('S', '2:0:0:2', start(2, 200)) + '\0'.repeat(Buffer.byteLength(early)) + line('E', '3:0:0:3', exit(3, 1)));
    expect(readJournalEntry(file, '3:0:0:3')!.exit).toEqual(exit(3, 1));
    expect(readJournalEntry(file, '2:0:0:2')).toEqual({ start: start(2, 200), exit: null });
    // The hole fills in place (same size: the cache's offset cannot tell from the size alone).
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, early, Buffer.byteLength(line('S', '2:0:0:2', start(2, 200))));
    fs.closeSync(fd);
    expect(readJournalEntry(file, '2:0:0:2')!.exit).toEqual(exit(2, 0));
    expect(readJournalEntry(file, '3:0:0:3')!.exit).toEqual(exit(3, 1));
  });

  it('reads only the appended tail once a journal is cached; a replaced file is read again', () => {
    const { file } = fresh();
    const first = line('S', '1:0:0:1', start(1, 100));
    fs.writeFileSync(file, first);
    expect(readJournalEntry(file, '1:0:0:1')!.start!.pid).toBe(100);
    // Rename the key of the line already indexed, in place (same size, same inode): only a
    // re-read from the start would find the new key.
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, '9:0:0:9', 2);
    fs.closeSync(fd);
    fs.appendFileSync(file, line('E', '1:0:0:1', exit(1, 3)));
    expect(readJournalEntry(file, '1:0:0:1')).toEqual({ start: start(1, 100), exit: exit(1, 3) });
    expect(readJournalEntry(file, '9:0:0:9')).toBeNull();
    forgetJournal(file);
    expect(readJournalEntry(file, '9:0:0:9')!.start!.pid).toBe(100);
    // A new file under the same name (another inode) is read from the start. (A key whose exit
    // was seen is answered from the cache: an exit is final.)
    const tmp = `${file}.new`;
    fs.writeFileSync(tmp, line('S', '1:0:0:1', start(1, 555)) + line('S', '2:0:0:2', start(2, 556)));
    fs.renameSync(tmp, file);
    expect(readJournalEntry(file, '2:0:0:2')).toEqual({ start: start(2, 556), exit: null });
    expect(readJournalEntry(file, '1:0:0:1')).toEqual({ start: start(1, 555), exit: null });
    forgetJournal(file);
  });

  it('reads journals of many megabytes, records straddling the read chunks included', () => {
    const { file } = fresh();
    const n = 30_000; // ~ 9 MB: more than two 4 MB chunks
    const pad = 'x'.repeat(120);
    const fd = fs.openSync(file, 'w');
    for (let i = 1; i <= n; i++) fs.writeSync(fd, line('S', `${i}:0:0:${i}`, { ...start(i, i), pad }) + line('E', `${i}:0:0:${i}`, { ...exit(i, i % 256), pad }));
    fs.closeSync(fd);
    expect(fs.statSync(file).size).toBeGreaterThan(8 << 20);
    for (const i of [1, 7_000, 14_001, 14_500, 29_999, n]) {
      const e = readJournalEntry(file, `${i}:0:0:${i}`)!;
      expect(e.start!.pid).toBe(i);
      expect(e.exit!.code).toBe(i % 256);
    }
    forgetJournal(file);
  });

  it('stepRecords: a status names its launch; null means none; a status of an older themis uses its per-run files', () => {
    const { setup, file } = fresh();
    const runDir = path.join(path.dirname(setup), 'runs', '1');
    fs.mkdirSync(path.join(runDir, '.themis'), { recursive: true });
    fs.writeFileSync(file, line('S', '1:0:0:4', start(1, 100)) + line('E', '1:0:0:4', exit(1, 0)));
    const running: StatusRecord = { ...newStatus(1), status: 'running', launch: { packer: 'h-1-abc', key: '1:0:0:4' } };
    expect(stepRecords(setup, runDir, running)).toEqual({ start: start(1, 100), exit: exit(1, 0) });
    expect(launchEntry(setup, { packer: 'gone', key: '1:0:0:4' })).toEqual({ start: null, exit: null });
    expect(stepRecords(setup, runDir, { ...running, launch: null })).toEqual({ start: null, exit: null });
    const legacy: StatusRecord = { ...newStatus(1), status: 'running' };
    expect(stepRecords(setup, runDir, legacy)).toEqual({ start: null, exit: null });
    fs.writeFileSync(path.join(runDir, '.themis', 'step.pid.json'), JSON.stringify(start(1, 42)));
    fs.writeFileSync(path.join(runDir, '.themis', 'exit-0-0.json'), JSON.stringify(exit(1, 2)));
    expect(stepRecords(setup, runDir, legacy)).toEqual({ start: start(1, 42), exit: exit(1, 2) });
    // A pid file of another attempt is not this step's.
    expect(stepRecords(setup, runDir, { ...legacy, attempt: 1 }).start).toBeNull();
  });

  it('lists and removes journals', () => {
    const { setup, file } = fresh();
    fs.writeFileSync(file, line('S', '1:0:0:1', start(1, 100)));
    fs.writeFileSync(setupPaths(setup).packerFile('h-1-abc'), '{}');
    expect(listJournals(setup)).toEqual(['h-1-abc']);
    expect(readJournalEntry(file, '1:0:0:1')).not.toBeNull();
    removeJournal(setup, 'h-1-abc');
    expect(listJournals(setup)).toEqual([]);
    expect(readJournalEntry(file, '1:0:0:1')).toBeNull();
  });
});
