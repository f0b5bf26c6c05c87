import { describe, expect, it } from 'vitest';
import { parseSamples, parseStepsCsv, sampleFormatOf, varyAll } from '../../src/model/samples.js';

const defaults = { args: null, tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0 };

describe('CSV samples', () => {
  it('keeps values as strings, whitespace included, with BOM and CRLF handled', () => {
    const r = parseSamples('\uFEFFx,name\r\n1, french \r\n"2,5","a ""b"""\r\n', 's.csv');
    expect(r.keys).toEqual(['x', 'name']);
    expect(r.samples).toEqual([
      { x: '1', name: ' french ' },
      { x: '2,5', name: 'a "b"' },
    ]);
    expect(r.lines).toEqual([2, 3]);
  });

  it('skips blank lines and keeps multi-line quoted values', () => {
    const r = parseSamples('a\n\n"x\ny"\n\nz\n', 's.csv');
    expect(r.samples).toEqual([{ a: 'x\ny' }, { a: 'z' }]);
  });

  it('a header-only file is an empty ensemble; an empty file is an error', () => {
    expect(parseSamples('a,b\n', 's.csv').samples).toEqual([]);
    expect(() => parseSamples('', 'e.csv')).toThrow(/e\.csv: empty samples file/);
  });

  it('ragged rows name file and line', () => {
    expect(() => parseSamples('a,b\n1,2\n3\n', 'r.csv')).toThrow(/r\.csv:3: this row has 1 field\(s\)/);
  });

  it('unterminated quotes name file and line', () => {
    expect(() => parseSamples('a,b\n1,2\n3,"4\n5,6\n', 'q.csv')).toThrow(/q\.csv:3: unterminated quote/);
  });

  it('empty and duplicate header names name the columns', () => {
    expect(() => parseSamples('a,b,\n1,2,3\n', 'h.csv')).toThrow(/h\.csv:1: column 3 of the header has no name \(a trailing comma\?\)/);
    expect(() => parseSamples('a,b,a\n1,2,3\n', 'd.csv')).toThrow(/d\.csv:1: columns 1 and 3 are both named "a"/);
  });
});

describe('JSON samples', () => {
  it('accepts an array of objects with any values', () => {
    const r = parseSamples('[{"x": 1, "y": true}, {"x": 2, "z": {"k": 1}}]', 's.json');
    expect(r.keys).toEqual(['x', 'y', 'z']);
    expect(r.samples[1]).toEqual({ x: 2, z: { k: 1 } });
  });
  it('refuses non-arrays and non-object elements', () => {
    expect(() => parseSamples('{"x": 1}', 's.json')).toThrow(/must be an array of objects/);
    expect(() => parseSamples('[1]', 's.json')).toThrow(/element 0 of the array/);
    expect(() => parseSamples('[{"x": 1},\n{"x": }]', 'b.json')).toThrow(/b\.json(:2)?: invalid JSON/);
  });
  it('JSONL: one object per line, errors by line', () => {
    const r = parseSamples('{"a":1}\n\n{"a":2}\n', 's.jsonl');
    expect(r.samples).toEqual([{ a: 1 }, { a: 2 }]);
    expect(r.lines).toEqual([1, 3]);
    expect(() => parseSamples('{"a":1}\n[2]\n', 'x.jsonl')).toThrow(/x\.jsonl:2: a sample must be a JSON object/);
  });
  it('picks the format from the extension', () => {
    expect(sampleFormatOf('a.JSON')).toBe('json');
    expect(sampleFormatOf('a.ndjson')).toBe('jsonl');
    expect(sampleFormatOf('a.txt')).toBe('csv');
  });
});

describe('steps CSV', () => {
  it('any subset of columns, defaults for the rest, strict booleans', () => {
    const steps = parseStepsCsv('args,tasks,batch_script,cwd\nprep.sh,,false,\n"sim -x ""a b""",4,true,work\n', 'steps.csv');
    expect(steps).toEqual([
      { args: ['prep.sh'], tasks: 1, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: false, cwd: '.' },
      { args: ['sim', '-x', 'a b'], tasks: 4, coresPerTask: 1, gpusPerTask: 0, timeout: 0, batchScript: true, cwd: 'work' },
    ]);
  });
  it('uses the given defaults for empty cells', () => {
    expect(parseStepsCsv('args\nsim\n', 's.csv', { batchScript: false })[0]!.batchScript).toBe(false);
  });
  it('reports every bad cell with line, column and field', () => {
    expect(() => parseStepsCsv('args,tasks,batch_script\nsim,0,False\nsim,x,maybe\n', 'st.csv')).toThrow(
      /st\.csv:2: column 2 \(tasks\): tasks: must be an integer >= 1[\s\S]*st\.csv:3: column 2 \(tasks\)[\s\S]*st\.csv:3: column 3 \(batch_script\): batch_script: must be true or false, got "maybe"/,
    );
  });
  it('unknown columns and a missing args column are errors', () => {
    expect(() => parseStepsCsv('args,nodes\nsim,2\n', 's.csv')).toThrow(/column 2 "nodes" is not a step field/);
    expect(() => parseStepsCsv('tasks\n2\n', 's.csv')).toThrow(/no "args" column/);
    expect(() => parseStepsCsv('args\n', 's.csv')).toThrow(/no steps/);
  });
});

describe('--vary-all', () => {
  it('takes resources from same-named columns and falls back to the defaults', () => {
    const problems: string[] = [];
    expect(varyAll({ args: '-x 1', tasks: '4', cores_per_task: '', timeout: '0.5' }, defaults, 's.csv:2', problems)).toEqual({
      args: ['-x', '1'],
      tasks: 4,
      coresPerTask: 1,
      gpusPerTask: 0,
      timeout: 0.5,
    });
    expect(problems).toEqual([]);
  });
  it('collects problems per row', () => {
    const problems: string[] = [];
    varyAll({ tasks: 'four', gpus_per_task: '-1' }, defaults, 's.csv:3', problems);
    expect(problems).toEqual([expect.stringMatching(/^s\.csv:3: tasks: must be an integer >= 1, got "four"/), expect.stringMatching(/^s\.csv:3: gpus_per_task/)]);
  });
});
