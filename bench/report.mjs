#!/usr/bin/env node
// Print a bench result JSON (default bench/results/full.json) as the Markdown table the README quotes.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.join(here, 'results/full.json');
const r = JSON.parse(fs.readFileSync(file, 'utf8'));
const v = (x) => (x === null || x === undefined ? '-' : String(x));
const load = (m) => m.loadavg.join(' ');
console.log(
  `Run of ${r.machine.at.slice(0, 16).replace('T', ' ')} UTC (${r.mode}, commit ${String(r.commit).slice(0, 7)}), ${r.machine.cores} cores, ${r.machine.memMB} MB, Node ${r.machine.node}; load average (1, 5, 15 min) ${load(r.machine)} at start, ${load(r.machineAfter)} at end; ${Math.round(r.seconds / 60)} minutes.\n`,
);
console.log('| case | what | themis | baseline | ratio | target | met? | load before case |');
console.log('|---|---|---|---|---|---|---|---|');
for (const row of r.table) {
  const c = r.cases[row.case];
  const met = row.skipped ? 'skipped' : row.met === null || row.met === undefined ? '-' : row.met ? 'yes' : '**no**';
  console.log(
    `| ${row.case} | ${row.metric.replace(/\|/g, '\\|')} | ${v(row.themis)} | ${v(row.baseline)} | ${v(row.ratio)} | ${v(row.target).replace(/</g, '&lt;')} | ${met} | ${c?.machineBefore ? c.machineBefore.loadavg[0] : '-'} |`,
  );
}
