// `npm run demo`: generate the example ensemble in fixtures/demo into ./demo-ensemble (git-ignored),
// pack it on this machine, and print its status. Each command is printed before it runs, so the
// demo doubles as a walkthrough of the CLI.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demo = path.join(root, 'fixtures', 'demo');
const work = path.join(root, 'demo-ensemble');
const themis = path.join(root, 'dist', 'bin', 'themis.js');

function step(title, args, { mayFail = false } = {}) {
  const shown = ['themis', ...args.map((a) => (/[\s'"$]/.test(a) ? JSON.stringify(a) : a))].join(' ');
  process.stdout.write(`\n== ${title}\n$ ${shown}\n`);
  const r = spawnSync(process.execPath, [themis, ...args], { cwd: work, stdio: 'inherit' });
  if (r.status !== 0 && !mayFail) {
    process.stderr.write(`demo: \`${shown}\` exited ${r.status ?? r.signal}\n`);
    process.exit(r.status ?? 1);
  }
}

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
process.stdout.write(`demo ensemble in ${work}\n`);

step('render one run directory per sample, and a batch script', [
  'gen',
  path.join(demo, 'app.sh'),
  path.join(demo, 'samples.csv'),
  '--parse',
  path.join(demo, 'deck.in'),
  '--scheduler',
  'local',
  '--run-dir-names',
  'runs/{run_id:03}-{label}',
  '--name',
  'demo',
  '--interface',
  path.join(demo, 'interface.mjs'),
  '--max-restarts',
  '1',
]);
step('pack the runs onto this machine (one of them fails, is restarted once, and fails again)', ['run', '--max-concurrency', '4'], { mayFail: true });
step('status', ['status']);
step('results', ['write', 'csv']);

const first = fs.readdirSync(path.join(work, 'runs')).sort()[0];
const output = path.join(work, 'runs', first, 'output.txt');
process.stdout.write(`\n== one run's output (${path.relative(root, output)})\n${fs.readFileSync(output, 'utf8')}`);
step('the picture of the ensemble, in one HTML file', ['report', '--out', 'report.html']);
process.stdout.write(`\nThe report is ${path.join(work, 'report.html')}: open it in a browser (it needs no network).\n`);
process.stdout.write(`Try: cd demo-ensemble && node ../dist/bin/themis.js display\n`);
