import { describe, expect, it } from 'vitest';
import { expandCounts, expandNodelist } from '../../src/schedulers/nodelist.js';

describe('expandNodelist (Slurm hostlists)', () => {
  it('expands ranges, lists and zero padding', () => {
    expect(expandNodelist('n[1-3,5],gpu[01-02]')).toEqual(['n1', 'n2', 'n3', 'n5', 'gpu01', 'gpu02']);
    expect(expandNodelist('pascal12')).toEqual(['pascal12']);
    expect(expandNodelist('a1,b2')).toEqual(['a1', 'b2']);
    expect(expandNodelist('node[008-011]')).toEqual(['node008', 'node009', 'node010', 'node011']);
    expect(expandNodelist('')).toEqual([]);
  });

  it('expands several bracket groups in one name as a product', () => {
    expect(expandNodelist('r[1-2]n[1-2]')).toEqual(['r1n1', 'r1n2', 'r2n1', 'r2n2']);
  });

  it('names the bad part of a malformed list', () => {
    expect(() => expandNodelist('n[1-3')).toThrow(/"n\[1-3": "\[" without "\]"/);
    expect(() => expandNodelist('n[a-b]')).toThrow(/range "a-b" is not N or N-M/);
    expect(() => expandNodelist('n[5-1]')).toThrow(/runs backwards/);
  });
});

describe('expandCounts (SLURM_JOB_CPUS_PER_NODE)', () => {
  it('expands repeat counts', () => {
    expect(expandCounts('4(x2),2')).toEqual([4, 4, 2]);
    expect(expandCounts('36')).toEqual([36]);
    expect(expandCounts('')).toEqual([]);
  });
});
