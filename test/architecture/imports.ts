import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * The module graph of a source tree, for the layer check: every relative `import`/`export … from`
 * (type-only included), every `import('…')` with a literal or with a `const` holding one
 * (`const spec = '../api/x.js'; await import(spec)`), and `new URL('./x.js', import.meta.url)`
 * (worker entry points). Packages and `node:` modules are not edges. An edge is type-only when the
 * compiler's output for the module no longer has it.
 */
export interface ImportEdge {
  from: string;
  to: string;
  /** The specifier as written. */
  spec: string;
  /** Only types cross it: the compiler erases it, so it cannot take part in a load-order cycle. */
  typeOnly: boolean;
}

export interface ImportGraph {
  /** Every module, relative to the root with `/` separators (`pack/index.ts`). */
  modules: string[];
  edges: ImportEdge[];
  /** Relative specifiers that name no module in the tree. */
  unresolved: ImportEdge[];
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The relative specifiers a module names (in source order, duplicates dropped). */
export function moduleSpecifiers(text: string): string[] {
  const specs = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
  // A dynamic import of a const string: the compiler's pre-pass sees no literal there.
  for (const m of text.matchAll(/\bimport\(\s*([A-Za-z_$][\w$]*)\s*\)/g)) {
    const decl = new RegExp(`\\bconst\\s+${m[1]!.replace(/\$/g, '\\$')}\\s*=\\s*(['"])([^'"]+)\\1`).exec(text);
    if (decl) specs.push(decl[2]!);
  }
  for (const m of text.matchAll(/\bnew\s+URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g)) specs.push(m[2]!);
  return [...new Set(specs.filter((s) => s.startsWith('./') || s.startsWith('../')))];
}

/** How the build emits modules (tsconfig.json): imports used only as types are dropped. */
const EMIT: ts.CompilerOptions = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext };

/** Build the graph of every `.ts` module under `root`; `.js` specifiers name the `.ts` source. */
export function importGraph(root: string): ImportGraph {
  const files = walk(root).sort();
  const rel = (f: string) => path.relative(root, f).split(path.sep).join('/');
  const known = new Set(files.map(rel));
  const edges: ImportEdge[] = [];
  const unresolved: ImportEdge[] = [];
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const emitted = new Set(moduleSpecifiers(ts.transpileModule(text, { compilerOptions: EMIT, fileName: f }).outputText));
    for (const spec of moduleSpecifiers(text)) {
      const to = rel(path.resolve(path.dirname(f), spec.replace(/\.js$/, '.ts')));
      (known.has(to) ? edges : unresolved).push({ from: rel(f), to, spec, typeOnly: !emitted.has(spec) });
    }
  }
  return { modules: [...known], edges, unresolved };
}

/** A module's layer: its top folder (`pack/loop.ts` -> `pack`), or `index.ts` for the entry. */
export const layerOf = (module: string): string => (module.includes('/') ? module.slice(0, module.indexOf('/')) : module);

/** Edges that go up: from a module to one in a layer above its own (`order` is bottom first). */
export function upwardEdges(graph: ImportGraph, order: readonly string[]): ImportEdge[] {
  const rank = (m: string) => {
    const r = order.indexOf(layerOf(m));
    if (r < 0) throw new Error(`${m}: layer ${layerOf(m)} is not in the layer order; add it there`);
    return r;
  };
  return graph.edges.filter((e) => rank(e.to) > rank(e.from));
}

/**
 * Every import cycle among the modules as they load (type-only edges left out): the strongly
 * connected components with more than one module, or a module that imports itself.
 */
export function importCycles(graph: ImportGraph, skip: (e: ImportEdge) => boolean = () => false): string[][] {
  const next = new Map<string, string[]>(graph.modules.map((m) => [m, []]));
  for (const e of graph.edges) if (!e.typeOnly && !skip(e)) next.get(e.from)!.push(e.to);
  // Tarjan's algorithm, iterative so a deep graph cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let counter = 0;
  for (const start of graph.modules) {
    if (index.has(start)) continue;
    const work: { node: string; i: number }[] = [{ node: start, i: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const succ = next.get(top.node)!;
      if (top.i < succ.length) {
        const w = succ[top.i++]!;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1]!.node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) === index.get(top.node)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.node);
        if (scc.length > 1 || succ.includes(top.node)) cycles.push(scc.sort());
      }
    }
  }
  return cycles;
}
