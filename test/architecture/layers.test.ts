import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, tempDirs } from '../helpers/cli.js';
import { importCycles, importGraph, moduleSpecifiers, upwardEdges, type ImportEdge } from './imports.js';

/**
 * The layers of src/, bottom first (docs/ARCHITECTURE.md, "Layers"): a module may import its own
 * layer and any below it, never one above. `index.ts` is the library entry, over everything.
 */
const LAYERS = ['model', 'schedulers', 'store', 'render', 'pack', 'api', 'cli', 'bin', 'index.ts'] as const;

/** Known upward edges, each with the change that deletes it. None today: nothing may go up. */
const ALLOWED_UPWARD: readonly string[] = [];

const SRC = path.join(PROJECT_ROOT, 'src');
const show = (e: ImportEdge) => `${e.from} -> ${e.to}`;

describe('src/ layers', () => {
  const graph = importGraph(SRC);

  it('every relative import names a module in src/', () => {
    expect(graph.unresolved.map((e) => `${e.from}: ${e.spec}`)).toEqual([]);
  });

  it('no module imports a layer above its own', () => {
    expect(
      upwardEdges(graph, LAYERS)
        .map(show)
        .filter((e) => !ALLOWED_UPWARD.includes(e)),
    ).toEqual([]);
  });

  it('every allow-listed upward edge still exists (delete the line once it is gone)', () => {
    const up = new Set(upwardEdges(graph, LAYERS).map(show));
    expect(ALLOWED_UPWARD.filter((e) => !up.has(e))).toEqual([]);
  });

  it('no import cycle among modules (as they load; the allow-listed edges left out)', () => {
    expect(importCycles(graph, (e) => ALLOWED_UPWARD.includes(show(e)))).toEqual([]);
  });
});

describe('the layer check itself', () => {
  const tmp = tempDirs('themis-layers-');
  function tree(files: Record<string, string>): string {
    const root = tmp();
    for (const [f, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.writeFileSync(path.join(root, f), text);
    }
    return root;
  }

  it('sees static, type-only, re-export, literal and const-string dynamic imports, and worker URLs', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "export * from './d.js';",
      "const m = await import('./e.js');",
      "const spec = '../f.js';",
      'const n = await import(spec);',
      "new Worker(new URL('./g.js', import.meta.url));",
      "import fs from 'node:fs';",
      "import { execa } from 'execa';",
      "// import { x } from './commented.js';",
    ].join('\n');
    expect(moduleSpecifiers(text)).toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js', '../f.js', './g.js']);
  });

  it('fails on an upward import and on a cycle', () => {
    const root = tree({
      'model/a.ts': "import { b } from '../pack/b.js';\nexport const a = () => b;\n",
      'pack/b.ts': "import { a } from '../model/a.js';\nexport const b = () => a;\n",
      'pack/c.ts': "export const c = await import('./c.js');\n",
      // Only a type crosses d -> e: erased by the compiler, no cycle at load time.
      'pack/d.ts': "import type { E } from './e.js';\nexport const d: E = 1;\n",
      'pack/e.ts': "import { d } from './d.js';\nexport type E = number;\nexport const e = d;\n",
    });
    const g = importGraph(root);
    expect(upwardEdges(g, LAYERS).map(show)).toEqual(['model/a.ts -> pack/b.ts']);
    expect(importCycles(g)).toEqual([['model/a.ts', 'pack/b.ts'], ['pack/c.ts']]);
    expect(g.edges.filter((e) => e.typeOnly).map(show)).toEqual(['pack/d.ts -> pack/e.ts']);
  });

  it('a module in a folder the order does not name is an error, not a pass', () => {
    const g = importGraph(tree({ 'extra/x.ts': "import '../model/y.js';\n", 'model/y.ts': '' }));
    expect(() => upwardEdges(g, LAYERS)).toThrow(/layer extra is not in the layer order/);
  });
});
