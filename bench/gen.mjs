#!/usr/bin/env node
// The gen case alone (kept for its author's habit): `themis gen` of N runs against `tar -x` of the
// identical tree, peak RSS. Same as `node bench/run.mjs --case gen --runs N`; see bench/cases/gen.mjs.
// Usage: node bench/gen.mjs [--runs N] [--quick] [--keep]   (writes bench/results/gen.json)
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const r = spawnSync(process.execPath, [path.join(here, 'run.mjs'), '--case', 'gen', '--out', path.join(here, 'results/gen.json'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
