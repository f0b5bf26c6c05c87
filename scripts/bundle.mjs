// The `themis` command as one bundle (with a chunk per lazily loaded command) in dist/bin/, built
// from tsc's output after it: starting Node and resolving, reading and linking some 90 modules was
// most of a `themis status` (issue 14). The chunks sit next to dist/bin/themis.js, one directory
// below dist/ as every tsc module is, so paths found from `import.meta.url` (templates, the native
// launcher, workers, themis-pack) come out the same. dist/index.js (the API), themis-pack and the
// workers stay tsc's modules. Without esbuild (a production install of a checkout) the tsc output
// stays in place: the same CLI, slower to start.
import fs from 'node:fs';
import path from 'node:path';

/**
 * yargs finds "its" package.json from where its shim module lives, up to `node_modules`; inside the
 * bundle there is no `node_modules` in the path, so it would fall back to the working directory and
 * read every directory from there up to `/` on each command (on Lustre, a user's scratch tree).
 * Point it at the bundle's own package root instead (dist/bin/../..). Fails the build if yargs
 * changes the line, rather than bundling the slow walk silently.
 */
const yargsMainFilename = {
  name: 'yargs-main-filename',
  setup(build) {
    build.onLoad({ filter: /yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, async (args) => {
      const text = await fs.promises.readFile(args.path, 'utf8');
      const from = 'mainFilename: mainFilename || process.cwd(),';
      if (!text.includes(from)) throw new Error(`${args.path}: no \`${from}\` to replace; see scripts/bundle.mjs`);
      return { contents: text.replace(from, "mainFilename: mainFilename || fileURLToPath(new URL('../..', import.meta.url)),"), loader: 'js' };
    });
  },
};

export async function bundleCli(root) {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return { bundled: false, why: 'esbuild is not installed (a dev dependency); dist/bin/themis.js is the unbundled tsc output' };
  }
  const bin = path.join(root, 'dist', 'bin');
  // Nothing to bundle (a partial tree: postbuild's own tests).
  const entry = path.join(bin, 'themis.js');
  if (!fs.existsSync(entry)) return { bundled: false, why: null };
  // Bundled already (postbuild run again without tsc before it): its chunks are its input.
  if (fs.readFileSync(entry, 'utf8').includes('./themis-chunk-')) return { bundled: true };
  for (const f of fs.readdirSync(bin)) if (/^themis-chunk-.*\.js$/.test(f)) fs.rmSync(path.join(bin, f));
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: { themis: 'dist/bin/themis.js' },
    outdir: 'dist/bin',
    chunkNames: 'themis-chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    allowOverwrite: true,
    // yargs renders help on every command; see src/cli/text-width.ts.
    alias: { 'string-width': './dist/cli/text-width.js' },
    // CommonJS dependencies (handlebars) call require(); give every chunk one.
    banner: { js: "import { createRequire as __themisCreateRequire } from 'node:module'; const require = __themisCreateRequire(import.meta.url);" },
    plugins: [yargsMainFilename],
    legalComments: 'none',
    logLevel: 'warning',
  });
  fs.chmodSync(path.join(bin, 'themis.js'), 0o755);
  // tsc's map described the module the bundle replaced.
  fs.rmSync(path.join(bin, 'themis.js.map'), { force: true });
  return { bundled: true };
}
