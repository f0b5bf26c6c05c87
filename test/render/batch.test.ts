import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { planAllocations, renderBatchScripts, ensureBatchScripts, gpusPerNodeNeeded, PACK_BIN } from '../../src/render/batch.js';
import { compileTemplate } from '../../src/render/handlebars.js';
import { quoteDirective, quoteShell } from '../../src/model/quote.js';
import { setupPaths } from '../../src/store/layout.js';
import type { AllocationSettings, EnsembleRecord, SchedulerName } from '../../src/store/records.js';
import { ensembleRecord, writeHandEnsemble } from '../api/helpers.js';
import { FIXTURES, makeTempDir } from '../helpers/cli.js';
import { expectGolden, normaliseVolatile } from '../helpers/golden.js';

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true });
});
function tmp(): string {
  const t = makeTempDir('themis-batch-');
  temps.push(t);
  return t;
}

const SCHEDULERS: SchedulerName[] = ['slurm', 'lsf', 'flux', 'local'];

describe('planAllocations', () => {
  it('puts the largest runs first onto the least-loaded allocation, ids sorted', () => {
    const runs = [
      { id: 1, cores: 1 },
      { id: 2, cores: 8 },
      { id: 3, cores: 4 },
      { id: 4, cores: 4 },
      { id: 5, cores: 1 },
    ];
    expect(planAllocations(runs, 2)).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    expect(planAllocations(runs, 1)).toEqual([[1, 2, 3, 4, 5]]);
    expect(planAllocations([], 3)).toEqual([[], [], []]);
  });

  it('refuses a non-positive allocation count', () => {
    expect(() => planAllocations([{ id: 1, cores: 1 }], 0)).toThrow(/--allocations must be a whole number >= 1/);
  });

  it('keeps every run exactly once and loads within one largest run of each other (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 200 }), fc.integer({ min: 1, max: 8 }), (cores, k) => {
        const runs = cores.map((c, i) => ({ id: i + 1, cores: c }));
        const plans = planAllocations(runs, k);
        expect(plans).toHaveLength(k);
        expect(plans.flat().sort((a, b) => a - b)).toEqual(runs.map((r) => r.id));
        for (const p of plans) expect([...p].sort((a, b) => a - b)).toEqual(p);
        const loads = plans.map((p) => p.reduce((s, id) => s + cores[id - 1]!, 0));
        expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(Math.max(0, ...cores));
      }),
      { numRuns: 200 },
    );
  });
});

describe('gpusPerNodeNeeded', () => {
  it('asks for enough GPUs per node for the biggest step spread over the nodes', () => {
    expect(gpusPerNodeNeeded([{ tasks: 4, gpusPerTask: 0 }], 2)).toBe(0);
    expect(gpusPerNodeNeeded([{ tasks: 1, gpusPerTask: 2 }], 4)).toBe(2);
    expect(gpusPerNodeNeeded([{ tasks: 8, gpusPerTask: 1 }], 2)).toBe(4);
    expect(
      gpusPerNodeNeeded(
        [
          { tasks: 1, gpusPerTask: 1 },
          { tasks: 3, gpusPerTask: 2 },
        ],
        1,
      ),
    ).toBe(6);
  });
});

describe('quoteShell', () => {
  it('leaves plain words bare and single-quotes the rest', () => {
    expect(quoteShell('pbatch')).toBe('pbatch');
    expect(quoteShell('/p/lustre1/a-b_c.d')).toBe('/p/lustre1/a-b_c.d');
    expect(quoteShell('')).toBe("''");
    expect(quoteShell("it's $(rm -rf ~)")).toBe(`'it'\\''s $(rm -rf ~)'`);
  });

  it('bash reads back exactly the value, whatever it holds (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: 'grapheme' }).filter((s) => !s.includes('\0')),
          { minLength: 1, maxLength: 20 },
        ),
        (values) => {
          const script = values.map((v) => `printf '%s\\0' ${quoteShell(v)}`).join('\n');
          const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
          expect(r.status).toBe(0);
          expect(r.stdout.split('\0').slice(0, -1)).toEqual(values);
        },
      ),
      { numRuns: 40 },
    );
  });
});

/**
 * How sbatch reads one argument of an `#SBATCH` line (the rules of src/sbatch/opt.c): single or
 * double quotes group, a backslash escapes the next character anywhere, an unquoted # ends the line.
 */
function sbatchArgument(text: string): string {
  let out = '';
  let q = '';
  let escaped = false;
  for (const ch of text) {
    if (escaped) {
      out += ch;
      escaped = false;
    } else if (ch === '\\') escaped = true;
    else if (q !== '') {
      if (ch === q) q = '';
      else out += ch;
    } else if (ch === '"' || ch === "'") q = ch;
    else if (ch === '#' || /\s/.test(ch)) break;
    else out += ch;
  }
  return out;
}

describe('quoteDirective', () => {
  it('sbatch/bsub read back the value; newlines cannot escape the comment line (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (v) => {
        const quoted = quoteDirective(v);
        expect(quoted).not.toMatch(/[\r\n]/);
        expect(sbatchArgument(quoted)).toBe(v.replace(/[\r\n\0]+/g, ' '));
      }),
    );
    expect(quoteDirective('pbatch')).toBe('pbatch');
    expect(quoteDirective(`o'brien "x" \\`)).toBe(`"o'brien \\"x\\" \\\\"`);
  });
});

function settings(extra: Partial<AllocationSettings>): AllocationSettings {
  return { ...ensembleRecord('/x', '/x/.themis_setup').allocation, ...extra };
}

/** An ensemble record under a root whose name needs quoting (space and quote). */
function ensembleIn(scheduler: SchedulerName, alloc: Partial<AllocationSettings>): { ens: EnsembleRecord; setupDir: string; base: string } {
  const base = tmp();
  const root = path.join(base, "my study's");
  const setupDir = path.join(root, '.themis_setup');
  fs.mkdirSync(setupDir, { recursive: true });
  return { ens: ensembleRecord(root, setupDir, { scheduler, allocation: settings(alloc) }), setupDir, base };
}

const CASES: { name: string; alloc: Partial<AllocationSettings>; gpus: number; plans: number[][] }[] = [
  { name: 'one-node', alloc: {}, gpus: 0, plans: [[1, 2, 3]] },
  {
    name: 'four-nodes-gpus',
    alloc: { nodes: 4, walltime: 90, partition: 'pbatch', bank: 'physics', name: 'sweep', allocations: 2, repeats: 2, earlyStop: 5 },
    gpus: 4,
    plans: [
      [1, 3],
      [2, 4],
    ],
  },
  {
    name: 'hostile-name',
    alloc: { name: `it's "$(touch /tmp/pwned)" \`id\`\nrm -rf ~ # \\x`, partition: 'p b', bank: "o'brien", walltime: 0.5 },
    gpus: 0,
    plans: [[1]],
  },
];

describe('renderBatchScripts golden files', () => {
  for (const c of CASES) {
    for (const scheduler of SCHEDULERS) {
      it(`${c.name}: ${scheduler}${scheduler === 'lsf' || scheduler === 'flux' ? ' (script only; no real LSF/Flux here)' : ''}`, () => {
        const { ens, setupDir, base } = ensembleIn(scheduler, c.alloc);
        const infos = renderBatchScripts(setupDir, ens, c.plans, { gpusPerNode: c.gpus });
        expect(infos.map((i) => i.allocation)).toEqual(c.plans.map((_, i) => i + 1));
        for (const info of infos) {
          const text = fs.readFileSync(info.path, 'utf8');
          expect(fs.statSync(info.path).mode & 0o777).toBe(0o755);
          expect(spawnSync('bash', ['-n', info.path]).status, `bash -n ${info.path}`).toBe(0);
          expect(text).toContain(quoteShell(PACK_BIN));
          expect(text).not.toContain('--mpibind');
          const plan = JSON.parse(fs.readFileSync(setupPaths(setupDir).planFile(info.allocation), 'utf8'));
          expect(plan).toEqual({ format: 1, allocation: info.allocation, runIds: c.plans[info.allocation - 1] });
          const suffix = info.allocation === 1 ? '' : `-${info.allocation}`;
          expectGolden(path.join(FIXTURES, 'golden', c.name, `${scheduler}${suffix}.sh`), normaliseVolatile(text, { [base]: '<TMP>' }));
        }
      });
    }
  }

  // Classic LSF beside CSM's lsf.sh: slots from -N x --cores-per-node, spread by ptile, -P for the bank.
  for (const c of CASES) {
    it(`${c.name}: lsf, classic flavour (script only; no real LSF here)`, () => {
      const { ens, setupDir, base } = ensembleIn('lsf', { ...c.alloc, lsfFlavor: 'classic', coresPerNode: 36 });
      const infos = renderBatchScripts(setupDir, ens, c.plans, { gpusPerNode: c.gpus });
      for (const info of infos) {
        const text = fs.readFileSync(info.path, 'utf8');
        expect(spawnSync('bash', ['-n', info.path]).status, `bash -n ${info.path}`).toBe(0);
        expect(text).not.toMatch(/^#BSUB -nnodes/m);
        expect(text).toMatch(/^export THEMIS_LSF_FLAVOR=classic$/m);
        expect(info.submit).toEqual({ argv: ['bsub'], stdinFile: info.path });
        const suffix = info.allocation === 1 ? '' : `-${info.allocation}`;
        expectGolden(path.join(FIXTURES, 'golden', c.name, `lsf-classic${suffix}.sh`), normaliseVolatile(text, { [base]: '<TMP>' }));
      }
    });
  }

  it('Slurm: a literal % in the setup path is written %% (sbatch reads %j, %u… as patterns)', () => {
    const base = tmp();
    const root = path.join(base, '100%done');
    const setupDir = path.join(root, '.themis_setup');
    fs.mkdirSync(setupDir, { recursive: true });
    const [info] = renderBatchScripts(setupDir, ensembleRecord(root, setupDir, { scheduler: 'slurm' }), [[1]], { gpusPerNode: 0 });
    expect(fs.readFileSync(info!.path, 'utf8')).toContain(`#SBATCH --output=${base}/100%%done/.themis_setup/logs/themis-1.%j.out\n`);
  });

  it('returns the submit command of each scheduler', () => {
    const got = SCHEDULERS.map((s) => {
      const { ens, setupDir } = ensembleIn(s, {});
      const [info] = renderBatchScripts(setupDir, ens, [[1]], { gpusPerNode: 0 });
      return { s, submit: info!.submit, path: info!.path };
    });
    expect(got[0]!.submit).toEqual({ argv: ['sbatch', got[0]!.path] });
    expect(got[1]!.submit).toEqual({ argv: ['bsub'], stdinFile: got[1]!.path });
    expect(got[2]!.submit).toEqual({ argv: ['flux', 'batch', got[2]!.path] });
    expect(got[3]!.submit).toEqual({ argv: [got[3]!.path] });
  });
});

describe('GPUs and user templates', () => {
  it('asks Slurm for the GPUs the runs need, read from the runs themselves', () => {
    const root = tmp();
    const setupDir = writeHandEnsemble(root, [{ steps: [{ tasks: 2, gpusPerTask: 1 }] }, { steps: [{ tasks: 1, gpusPerTask: 0 }] }], {
      scheduler: 'slurm',
    });
    const ens = JSON.parse(fs.readFileSync(setupPaths(setupDir).ensemble, 'utf8')) as EnsembleRecord;
    const [info] = renderBatchScripts(setupDir, ens, [[1, 2]]);
    expect(fs.readFileSync(info!.path, 'utf8')).toContain('#SBATCH --gpus-per-node=2\n');
    const noGpu = renderBatchScripts(setupDir, { ...ens, allocation: { ...ens.allocation, gpusPerNode: 0 } }, [[1, 2]]);
    expect(fs.readFileSync(noGpu[0]!.path, 'utf8')).not.toContain('gpus-per-node');
  });

  it('renders a user template with the same variables; quoted values survive bash', () => {
    const { ens, setupDir, base } = ensembleIn('local', { name: `a'b $(echo no) "c"` });
    const tpl = path.join(base, 'mine.sh.hbs');
    fs.writeFileSync(tpl, `#!/bin/bash\nprintf '%s|' {{quote name}} {{quote setupDir}} {{allocation}} {{runCount}}\n`);
    const [info] = renderBatchScripts(setupDir, { ...ens, allocation: { ...ens.allocation, template: tpl } }, [[4, 5]], { gpusPerNode: 0 });
    const r = spawnSync('bash', [info!.path], { encoding: 'utf8' });
    expect(r.stdout).toBe(`a'b $(echo no) "c"|${setupDir}|1|2|`);
  });

  it('a user template naming an unknown variable is an input error naming the file and the variable', () => {
    const { ens, setupDir, base } = ensembleIn('slurm', {});
    const tpl = path.join(base, 'bad.sh.hbs');
    fs.writeFileSync(tpl, '#!/bin/bash\necho {{quote nodez}}\n');
    const err = (() => {
      try {
        renderBatchScripts(setupDir, { ...ens, allocation: { ...ens.allocation, template: tpl } }, [[1]], { gpusPerNode: 0 });
      } catch (e) {
        return e as { code: string; message: string; exitCode: number };
      }
      throw new Error('expected an error');
    })();
    expect(err.code).toBe('INPUT');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain(tpl);
    expect(err.message).toContain('nodez');
    expect(fs.existsSync(setupPaths(setupDir).batchScript('themis', 1))).toBe(false);
  });

  it('a plain unknown variable (not a helper argument) is named with its line, not "[object Object]"', () => {
    const render = compileTemplate('#!/bin/bash\n#SBATCH -N {{nodez}}\n', 'mine.sh.hbs');
    expect(() => render({ nodes: 1 })).toThrow(/^template mine\.sh\.hbs:2: variable "nodez" is not defined/);
    expect(() => render({ nodes: 1 })).not.toThrow(/object Object/);
  });

  it('a template with a syntax error is an input error', () => {
    expect(() => compileTemplate('{{#if x}}', 'broken.hbs')({ x: 1 })).toThrow(/broken\.hbs/);
  });

  it('ensureBatchScripts renders only the missing scripts and keeps the plans', () => {
    const root = tmp();
    const setupDir = writeHandEnsemble(root, [{}, { steps: [{ coresPerTask: 4 }] }, {}], {
      allocation: { ...settings({ allocations: 2 }) },
    });
    const ens = JSON.parse(fs.readFileSync(setupPaths(setupDir).ensemble, 'utf8')) as EnsembleRecord;
    const first = ensureBatchScripts(setupDir, ens);
    expect(first.map((i) => i.runIds)).toEqual([[2], [1, 3]]);
    fs.writeFileSync(first[0]!.path, '#!/bin/sh\n# edited by hand\n');
    fs.rmSync(first[1]!.path);
    const again = ensureBatchScripts(setupDir, ens);
    expect(fs.readFileSync(again[0]!.path, 'utf8')).toContain('edited by hand');
    expect(fs.readFileSync(again[1]!.path, 'utf8')).toContain('--allocation 2');
    expect(again.map((i) => i.runIds)).toEqual([[2], [1, 3]]);
  });
});
