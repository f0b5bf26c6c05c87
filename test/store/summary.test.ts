import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostName } from '../../src/store/proc.js';
import type { RunState } from '../../src/store/scan.js';
import { compactLines, DONE_LINE, finalLine, headerLine, obsoleteLine, readSummary, SummaryLog, summaryDir } from '../../src/store/summary.js';
import { planRebuild, rebuildSummary } from '../../src/store/summary-rebuild.js';
import { makeTempDir } from '../helpers/cli.js';

const temps: string[] = [];
afterAll(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

const CREATED = '2026-12-02T00:00:00.000Z';
const known = (id: number) => id >= 1 && id <= 10;

function setup(): string {
  const d = makeTempDir('themis-summary-');
  temps.push(d);
  fs.mkdirSync(summaryDir(d), { recursive: true });
  return d;
}

function put(setupDir: string, name: string, ...lines: string[]): void {
  fs.writeFileSync(path.join(summaryDir(setupDir), name), lines.join(''));
}

function coveredOf(setupDir: string) {
  const r = readSummary(setupDir, CREATED, known);
  if (!r.ok) throw new Error(r.problem);
  return Object.fromEntries([...r.covered].map(([id, f]) => [id, f.status]));
}

describe('readSummary: the newest entry of a run decides', () => {
  it('a final entry covers its run; a newer X uncovers it; a newer final covers it again; X wins a tie', () => {
    const d = setup();
    put(d, 'p1.log', headerLine(CREATED), finalLine(1, 3, 'successful', 0, null), finalLine(2, 3, 'failed', 1, 'exit 1'), finalLine(3, 4, 'killed', 0, 'dequeued'));
    put(d, 'r.once.log', headerLine(CREATED), obsoleteLine(1, 4), obsoleteLine(2, 4), obsoleteLine(3, 4), DONE_LINE);
    put(d, 'p2.log', headerLine(CREATED), finalLine(2, 6, 'successful', 0, null));
    expect(coveredOf(d)).toEqual({ 2: 'successful' });
    const r = readSummary(d, CREATED, known);
    expect(r.ok && r.covered.get(2)).toEqual({ status: 'successful', step: 0, reason: null });
    expect(r.ok && r.complete).toEqual(['r.once.log']);
  });

  it('keeps the reason of a final entry (tabs and quotes included)', () => {
    const d = setup();
    put(d, 'p.log', headerLine(CREATED), finalLine(4, 1, 'failed', 2, 'exit 3:\t"bad" input'));
    const r = readSummary(d, CREATED, known);
    expect(r.ok && r.covered.get(4)).toEqual({ status: 'failed', step: 2, reason: 'exit 3:\t"bad" input' });
  });

  it('a torn last line (its writer killed mid-append) covers nothing and is not damage', () => {
    const d = setup();
    const whole = finalLine(5, 2, 'successful', 0, null);
    put(d, 'p.log', headerLine(CREATED), finalLine(1, 2, 'successful', 0, null), whole.slice(0, 9));
    expect(coveredOf(d)).toEqual({ 1: 'successful' });
  });

  it('an empty file, or one with only its header, covers nothing', () => {
    const d = setup();
    put(d, 'a.log');
    put(d, 'b.log', headerLine(CREATED));
    expect(coveredOf(d)).toEqual({});
  });

  it.each([
    ['a damaged line in the middle', [headerLine(CREATED), finalLine(1, 2, 'successful', 0, null).replace('successful', 'successfux'), finalLine(2, 2, 'failed', 0, null)], /damaged/],
    ['a line cut short in the middle', [headerLine(CREATED), finalLine(1, 2, 'successful', 0, null).slice(0, 12) + '\n', finalLine(2, 2, 'failed', 0, null)], /damaged/],
    ['an older format', [`themis-summary\t0\t${CREATED}\tbadc0ffe\n`], /damaged|format/],
    ['a file of another ensemble', [headerLine('2020-01-01T00:00:00.000Z'), finalLine(1, 2, 'successful', 0, null)], /another ensemble/],
    ['an entry for a run the index does not know', [headerLine(CREATED), finalLine(11, 2, 'successful', 0, null)], /not in the ensemble's index/],
    ['a final entry with a status that is not final', [headerLine(CREATED), finalLine(1, 2, 'running' as never, 0, null)], /not a final status/],
    ['garbage', ['\u0000\u0000\u0000\n'], /damaged/],
  ])('%s makes the whole summary unusable, saying where', (_what, lines, why) => {
    const d = setup();
    put(d, 'good.log', headerLine(CREATED), finalLine(3, 1, 'successful', 0, null));
    put(d, 'bad.log', ...lines);
    const r = readSummary(d, CREATED, known);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problem).toMatch(why);
    expect(!r.ok && r.problem).toContain('bad.log');
  });

  it('a header with a wrong check but the right words is damage too', () => {
    const d = setup();
    put(d, 'p.log', `themis-summary\t1\t${CREATED}\t00000000\n`);
    expect(readSummary(d, CREATED, known).ok).toBe(false);
  });

  it('no summary directory: nothing covered, and usable', () => {
    const d = makeTempDir('themis-summary-none-');
    temps.push(d);
    const r = readSummary(d, CREATED, known);
    expect(r.ok && r.covered.size).toBe(0);
  });
});

describe('range lines (a compacted summary)', () => {
  it('runs alike become one line; what a reader makes of it is what it makes of one line per run', () => {
    const d = setup();
    const records = [
      ...Array.from({ length: 5 }, (_, i) => ({ id: i + 1, rev: 2, final: { status: 'successful' as const, step: 0, reason: null } })),
      { id: 6, rev: 2, final: { status: 'failed' as const, step: 1, reason: 'exit 1' } },
      { id: 7, rev: 3, final: null },
      { id: 8, rev: 3, final: null },
      { id: 9, rev: 2, final: { status: 'successful' as const, step: 0, reason: null } },
    ];
    const lines = compactLines(records);
    expect(lines.map((l) => l.split('\t')[0])).toEqual(['R', 'F', 'Y', 'F']);
    put(d, 'c.log', headerLine(CREATED), ...lines);
    expect(coveredOf(d)).toEqual({ 1: 'successful', 2: 'successful', 3: 'successful', 4: 'successful', 5: 'successful', 6: 'failed', 9: 'successful' });
    const r = readSummary(d, CREATED, known);
    expect(r.ok && r.covered.get(6)).toEqual({ status: 'failed', step: 1, reason: 'exit 1' });
  });

  it('a range reaching a run the index does not know makes the summary unusable', () => {
    const d = setup();
    put(d, 'c.log', headerLine(CREATED), ...compactLines(Array.from({ length: 12 }, (_, i) => ({ id: i + 1, rev: 1, final: null }))));
    const r = readSummary(d, CREATED, known);
    expect(!r.ok && r.problem).toMatch(/run 11 is not in the ensemble's index/);
  });

  it("a packer's file is compacted at its end: far fewer lines, the same answer", () => {
    const d = setup();
    const log = new SummaryLog(d, 'p', CREATED);
    for (const id of [3, 1, 2, 5, 4, 6, 7, 8]) log.final(id, 2, id === 6 ? 'failed' : 'successful', 0, id === 6 ? 'exit 2' : null);
    log.final(9, 2, 'successful', 0, null);
    const before = coveredOf(d);
    log.compact(known);
    const text = fs.readFileSync(log.file, 'utf8');
    expect(text.split('\n').filter(Boolean)).toHaveLength(4); // header, R 1-5, F 6, R 7-9
    expect(coveredOf(d)).toEqual(before);
  });
});

describe('CoveredRuns: what readers ask of the covered runs at once', () => {
  const rng = (seed: number) => () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const STATUSES = ['successful', 'failed', 'killed', 'aborted'] as const;

  it('counts, ids by status and the runs it leaves out agree with a look at every run, over ranges and single lines in any order', () => {
    for (const seed of [3, 17, 41]) {
      const rand = rng(seed);
      const d = setup();
      const knownFlags = new Uint8Array(61).fill(1);
      knownFlags[0] = 0;
      // Two writers' files: ranges and single F/X lines over runs 1..60, overlapping, revisions mixed.
      for (const name of ['a.log', 'b.log']) {
        const lines = [headerLine(CREATED)];
        for (let k = 0; k < 25; k++) {
          const first = 1 + Math.floor(rand() * 55);
          const count = 1 + Math.floor(rand() * Math.min(6, 61 - first));
          const rev = Math.floor(rand() * 4);
          const status = STATUSES[Math.floor(rand() * 4)]!;
          const x = rand() < 0.3;
          if (count === 1) lines.push(x ? obsoleteLine(first, rev) : finalLine(first, rev, status, 0, rand() < 0.3 ? 'exit 1' : null));
          else lines.push(...compactLines(Array.from({ length: count }, (_, i) => ({ id: first + i, rev, final: x ? null : { status, step: 0, reason: null } }))));
        }
        put(d, name, ...lines);
      }
      const byFlags = readSummary(d, CREATED, knownFlags);
      const byCall = readSummary(d, CREATED, (id) => id >= 1 && id <= 60);
      if (!byFlags.ok || !byCall.ok) throw new Error('unusable');
      const each = [...byCall.covered];
      expect([...byFlags.covered]).toEqual(each);
      const c = byFlags.covered;
      expect(c.size).toBe(each.length);
      const naive = { successful: 0, failed: 0, killed: 0, aborted: 0 };
      for (const [, f] of each) naive[f.status]++;
      expect(c.countsByStatus()).toEqual(naive);
      const bad = new Set(['failed', 'aborted']);
      expect(c.idsWith(bad)).toEqual(each.filter(([, f]) => bad.has(f.status)).map(([id]) => id));
      expect(c.idsWith(null, 3)).toEqual(each.slice(0, 3).map(([id]) => id));
      const ids = Int32Array.from({ length: 70 }, (_, i) => 70 - i);
      expect(c.uncoveredIn(ids).map((i) => ids[i])).toEqual([...ids].filter((id) => !c.has(id)));
    }
  });
});

describe('SummaryLog: one file per writer', () => {
  it('writes its header once, then one line per entry; a reader sees them at once', () => {
    const d = setup();
    const log = new SummaryLog(d, 'packer-1', CREATED);
    log.final(1, 2, 'successful', 0, null);
    log.final(2, 2, 'aborted', 0, 'abort code 3');
    expect(coveredOf(d)).toEqual({ 1: 'successful', 2: 'aborted' });
    log.close(false);
    const again = new SummaryLog(d, 'packer-1', CREATED);
    again.final(3, 5, 'failed', 0, null);
    again.close(false);
    const text = fs.readFileSync(path.join(summaryDir(d), 'packer-1.log'), 'utf8');
    expect(text.match(/^themis-summary/gm)).toHaveLength(1);
    expect(coveredOf(d)).toEqual({ 1: 'successful', 2: 'aborted', 3: 'failed' });
  });

  it('a one-off writer names its command, host and pid, and ends with its done line only when asked', () => {
    const d = setup();
    const a = SummaryLog.oneOff(d, 'requeue', CREATED);
    a.obsolete([{ id: 1, rev: 3 }]);
    a.close(true);
    const b = SummaryLog.oneOff(d, 'requeue', CREATED);
    b.obsolete([{ id: 2, rev: 3 }]);
    b.close(false);
    expect(path.basename(a.file)).toMatch(new RegExp(`^requeue-.+-${process.pid}-[0-9a-f]{6}\\.once\\.log$`));
    const r = readSummary(d, CREATED, known);
    expect(r.ok && r.complete).toEqual([path.basename(a.file)]);
  });

  it('obsolete entries that cannot be written throw before anything changes', () => {
    const d = setup();
    fs.rmSync(summaryDir(d), { recursive: true });
    fs.writeFileSync(summaryDir(d), 'a file where the directory should be');
    const log = new SummaryLog(d, 'x', CREATED);
    expect(() => log.obsolete([{ id: 1, rev: 1 }])).toThrow(/nothing was changed/);
    // A final entry that cannot be written is only a lost shortcut: no throw.
    expect(() => log.final(1, 1, 'successful', 0, null)).not.toThrow();
  });
});

describe('doctor rebuild: base from a full scan, then tidy up', () => {
  const run = (id: number, status: string, rev: number): RunState => ({ id, dir: `/r/${id}`, status: { id, status, rev, step: 0, reason: null }, problem: null }) as unknown as RunState;

  it('folds finished one-off files and files of gone packers into the base; keeps live packers and unfinished one-off files', () => {
    const d = setup();
    put(d, 'live.log', headerLine(CREATED), finalLine(1, 2, 'successful', 0, null));
    put(d, 'gone.log', headerLine(CREATED), finalLine(2, 2, 'successful', 0, null));
    put(d, 'requeue-elsewhere-1-abcdef.once.log', headerLine(CREATED), obsoleteLine(2, 3), DONE_LINE);
    put(d, 'requeue-elsewhere-2-abcdef.once.log', headerLine(CREATED), obsoleteLine(3, 9));
    const plan = planRebuild(d, CREATED, new Set([1, 2, 3, 4]), new Set(['live']));
    const out = rebuildSummary(plan, [run(1, 'successful', 2), run(2, 'queued', 3), run(3, 'successful', 8), run(4, 'failed', 1)]);
    expect(out.removed).toBe(2);
    expect(fs.readdirSync(summaryDir(d)).sort()).toEqual(['base.log', 'live.log', 'requeue-elsewhere-2-abcdef.once.log']);
    // Run 3's announced change (rev 9) is still newer than the scan: not covered until it is made.
    expect(coveredOf(d)).toEqual({ 1: 'successful', 4: 'failed' });
  });

  it('a damaged one-off file of a writer that is gone is moved aside, and the summary is usable again', () => {
    const d = setup();
    const name = `requeue-${hostName()}-999999-abcdef.once.log`;
    put(d, name, headerLine(CREATED), obsoleteLine(2, 3).replace('X', 'Y'));
    expect(readSummary(d, CREATED, known).ok).toBe(false);
    const plan = planRebuild(d, CREATED, new Set([1, 2]), new Set());
    const out = rebuildSummary(plan, [run(1, 'successful', 1), run(2, 'queued', 3)]);
    expect(out.quarantined).toEqual([name]);
    expect(fs.existsSync(path.join(summaryDir(d), `.damaged-${name}`))).toBe(true);
    expect(coveredOf(d)).toEqual({ 1: 'successful' });
  });
});
