import { describe, expect, it } from 'vitest';
import { compileRunDirTemplate, planRunDirs, renderRunDir } from '../../src/render/run-dirs.js';

const root = '/ens';
const setup = '/ens/.themis_setup';

describe('run-dir templates', () => {
  it('renders {run_id}, zero padding and sample keys, nested with /', () => {
    const t = compileRunDirTemplate('out/{run_id:05}/visc={visc}');
    const problems: string[] = [];
    expect(renderRunDir(t, 42, { visc: '0.1' }, problems)).toBe('out/00042/visc=0.1');
    expect(problems).toEqual([]);
    expect(t.keys).toEqual(['visc']);
  });

  it('{{ and }} are literal braces', () => {
    expect(renderRunDir(compileRunDirTemplate('a{{b}}/{run_id}'), 1, {}, [])).toBe('a{b}/1');
  });

  it('refuses malformed templates', () => {
    expect(() => compileRunDirTemplate('runs/{run_id')).toThrow(/unclosed "\{"/);
    expect(() => compileRunDirTemplate('runs/run_id}')).toThrow(/unmatched "\}"/);
    expect(() => compileRunDirTemplate('runs/{run_id:5}')).toThrow(/only \{run_id:0N\}/);
    expect(() => compileRunDirTemplate('runs/{}')).toThrow(/bad field/);
    expect(() => compileRunDirTemplate('')).toThrow(/empty/);
  });

  it('absolute templates stay absolute', () => {
    expect(planRunDirs(compileRunDirTemplate('/scratch/r{run_id}'), root, setup, [{ id: 1, sample: {} }])).toEqual(['/scratch/r1']);
  });
});

describe('planRunDirs', () => {
  it('default names under the root', () => {
    expect(
      planRunDirs(
        compileRunDirTemplate('runs/{run_id}'),
        root,
        setup,
        [1, 2].map((id) => ({ id, sample: {} })),
      ),
    ).toEqual(['/ens/runs/1', '/ens/runs/2']);
  });

  it('sample values can never move a run directory: /, ., .., empty', () => {
    const t = compileRunDirTemplate('runs/{x}');
    const runs = ['a/b', '.', '..', '', 'ok'].map((x, i) => ({ id: i + 1, sample: { x } }));
    try {
      planRunDirs(t, root, setup, runs);
      expect.unreachable();
    } catch (e) {
      const m = (e as Error).message;
      expect(m).toMatch(/run 1: sample value x="a\/b" contains "\/"/);
      expect(m).toMatch(/run 2: sample value x="\." is "\."/);
      expect(m).toMatch(/run 3: sample value x="\.\." is "\.\."/);
      expect(m).toMatch(/run 4: sample value x="" is empty/);
      expect(m).not.toMatch(/run 5/);
    }
  });

  it('control characters and over-long names are refused', () => {
    const t = compileRunDirTemplate('runs/{x}');
    expect(() => planRunDirs(t, root, setup, [{ id: 1, sample: { x: 'a\nb' } }])).toThrow(/run 1: sample value x="a\\nb" contains a control character/);
    expect(() => planRunDirs(t, root, setup, [{ id: 2, sample: { x: 'y'.repeat(256) } }])).toThrow(/run 2: the name "y+…" in its run directory is longer than 255 bytes/);
  });

  it('a missing key names the run and the key', () => {
    expect(() => planRunDirs(compileRunDirTemplate('{nope}'), root, setup, [{ id: 3, sample: { x: 1 } }])).toThrow(/run 3: --run-dir-names uses \{nope\} but the sample has no "nope"/);
  });

  it('collisions name both ids, including runs added earlier', () => {
    const t = compileRunDirTemplate('runs/{x}');
    expect(() =>
      planRunDirs(t, root, setup, [
        { id: 1, sample: { x: 'a' } },
        { id: 2, sample: { x: 'a' } },
      ]),
    ).toThrow(/runs 1 and 2 both map to the run directory \/ens\/runs\/a/);
    expect(() => planRunDirs(t, root, setup, [{ id: 9, sample: { x: 'b' } }], new Map([['/ens/runs/b', 4]]))).toThrow(/runs 4 and 9 both map/);
  });

  it('the root itself and the setup directory are refused', () => {
    expect(() => planRunDirs(compileRunDirTemplate('{x}'), root, setup, [{ id: 1, sample: { x: '.themis_setup' } }])).toThrow(/overlaps the setup directory/);
    expect(() => planRunDirs(compileRunDirTemplate('..'), root, setup, [{ id: 1, sample: {} }])).toThrow(/would be the ensemble root or contain it/);
  });
});
