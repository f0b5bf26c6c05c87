import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { drawReport } from './report-client.js';
import type { AllocationView, EnsembleReportData } from './report-model.js';

/**
 * `themis report`'s page: one HTML file that needs no network when opened (users copy it off a
 * login node). Observable Plot and d3 (its one dependency) are inlined, as are the data and the
 * page's script (`report-client.ts`); tables are written here, charts are drawn on load.
 */

/** A file inside an installed package (whose `exports` name only its entry point). */
function packageFile(name: string, rel: string): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve(name));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === name) return path.join(dir, rel);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the package ${name} (is it installed?)`);
    dir = up;
  }
}

/** JavaScript safe inside a <script> element. */
function scriptText(js: string): string {
  return js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** JSON safe inside a <script> element (no `<` at all). */
function jsonText(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function esc(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function iso(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

function dur(ms: number): string {
  const s = ms / 1000;
  if (s < 120) return `${Math.round(s * 10) / 10} s`;
  if (s < 7200) return `${Math.round(s / 6) / 10} min`;
  return `${Math.round(s / 360) / 10} h`;
}

function pct(x: number | null): string {
  return x === null ? '-' : `${Math.round(x * 1000) / 10}%`;
}

function table(head: string[], rows: string[][], cls = ''): string {
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function nodesText(a: AllocationView): string {
  const n = a.nodes;
  if (n.length === 0) return '-';
  const same = n.every((x) => x.cores === n[0]!.cores && x.gpus.length === n[0]!.gpus.length);
  const g = n[0]!.gpus.length;
  return same ? `${n.length} x ${n[0]!.cores} cores${g ? `, ${g} GPUs` : ''}` : n.map((x) => `${x.name}: ${x.cores}c${x.gpus.length ? `/${x.gpus.length}g` : ''}`).join(', ');
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}header p{margin:2px 0 0;opacity:.8}
main{padding:8px 24px 40px;max-width:1440px}section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:12px 16px;margin:14px 0}
h2{font-size:16px;margin:2px 0 10px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right}pre{margin:0;font-size:12px;white-space:pre-wrap;max-width:640px;color:#444}
.kpis{display:flex;gap:22px;flex-wrap:wrap}.kpi b{display:block;font-size:22px}.kpi span{color:#666}
.note{color:#666;font-size:12px}.scroll{max-height:520px;overflow:auto}select{margin:0 10px 0 4px}
`;

/** The whole page. */
export function renderReportHtml(data: EnsembleReportData): string {
  const d3 = fs.readFileSync(packageFile('d3', 'dist/d3.min.js'), 'utf8');
  const plot = fs.readFileSync(packageFile('@observablehq/plot', 'dist/plot.umd.min.js'), 'utf8');
  const p = data.progress;
  const body: string[] = [];
  body.push(`<header><h1>themis report: ${esc(data.title)}</h1><p>${esc(data.setupDir)} · ${esc(data.scheduler)} · written ${esc(iso(Date.parse(data.generatedAt)))}</p></header><main>`);

  const kpi = (v: unknown, label: string) => `<div class="kpi"><b>${esc(v)}</b><span>${esc(label)}</span></div>`;
  const kpis = [
    kpi(`${p.percent}%`, `complete (${p.completed} of ${p.total})`),
    kpi(p.counts.successful, 'successful'),
    kpi(p.counts.failed + p.counts.aborted + p.counts.killed, 'failed, aborted or killed'),
    kpi(p.running, 'running'),
    kpi(p.queued, 'queued'),
  ];
  if (p.unreadableCount) kpis.push(kpi(p.unreadableCount, 'unreadable'));
  body.push(`<section id="progress"><h2>Progress</h2><div class="kpis">${kpis.join('')}</div><div id="progress-chart"></div></section>`);

  const allocRows = data.allocations.map((a) => [
    esc(a.label),
    esc(nodesText(a)),
    esc(iso(a.start)),
    esc(dur(a.end - a.start)),
    `<span class="num">${a.launches}</span>`,
    a.plannedRuns === null ? '-' : String(a.plannedRuns),
    `${a.stepCoreHours} of ${a.coreHours} (${pct(a.coreFraction)})`,
    a.gpus > 0 ? `${a.stepGpuHours} of ${a.gpuHours} (${pct(a.gpuFraction)})` : '-',
    esc(a.reason ?? (a.live ? 'running' : '-')),
  ]);
  body.push(
    `<section id="allocations"><h2>Allocations</h2>${
      data.allocations.length === 0
        ? '<p>No step has started yet.</p>'
        : table(['allocation', 'nodes', 'started', 'lasted', 'step attempts', 'planned runs', 'core-hours in steps', 'GPU-hours in steps', 'ended because'], allocRows)
    }</section>`,
  );

  const tl = data.timeline;
  const tlNote =
    tl.mode === 'steps'
      ? `One mark per step attempt, on the lanes of the cores it held (GPU lanes for steps holding GPUs), coloured by how it ended. Which core a step held is not recorded: lanes are replayed with the packer's placement rule.${tl.extraMarks ? ` ${tl.extraMarks} extra marks: steps spread over nodes or on non-contiguous cores.` : ''}`
      : `${tl.launches} step attempts: each cell is how busy a group of lanes was in a time bin; red dots mark attempts that ended badly.`;
  body.push(
    `<section id="timeline"><h2>Timeline</h2><p class="note">${esc(tlNote)}</p>${data.allocations.map((a) => `<h3>${esc(a.label)}</h3><div class="timeline" id="timeline-${a.index}"></div>`).join('')}</section>`,
  );
  body.push(
    `<section id="utilisation"><h2>Utilisation</h2>${data.allocations
      .map(
        (a) =>
          `<h3>${esc(a.label)}: ${pct(a.coreFraction)} of ${a.coreHours} core-hours in steps${a.gpus ? `, ${pct(a.gpuFraction)} of ${a.gpuHours} GPU-hours` : ''}</h3><div id="util-${a.index}"></div>`,
      )
      .join('')}</section>`,
  );

  body.push(
    `<section id="runtimes"><h2>Runtime per step</h2>${
      data.runtimes.length === 0
        ? '<p>No step has ended yet.</p>'
        : data.runtimes
            .map(
              (r) =>
                `<h3>step ${r.step}: ${r.count} attempts, median ${esc(dur(r.median * 1000))}, 90th percentile ${esc(dur(r.p90 * 1000))}, longest ${esc(dur(r.max * 1000))}</h3><div id="runtime-${r.step}"></div>` +
                table(
                  ['slowest runs', 'seconds', 'ended', 'directory'],
                  r.slowest.map((x) => [`run ${x.run}`, `<span class="num">${x.seconds}</span>`, esc(x.outcome), esc(x.dir)]),
                ),
            )
            .join('')
    }</section>`,
  );

  const f = data.failures;
  body.push(
    `<section id="failures"><h2>Failures: ${f.count}</h2>${
      f.count === 0
        ? '<p>No run failed, aborted or was killed.</p>'
        : `${f.rows.length < f.count ? `<p class="note">the first ${f.rows.length}; <code>themis status failed aborted killed</code> lists them all</p>` : ''}<div class="scroll">${table(
            ['run', 'status', 'step', 'exit', 'restarts', 'reason', 'last lines of run.log'],
            f.rows.map((r) => [
              `${r.run}<br><span class="note">${esc(r.dir)}</span>`,
              esc(r.status),
              String(r.step),
              esc(r.signal ?? (r.exitCode === null ? '-' : r.exitCode)),
              String(r.restarts),
              esc(r.reason ?? ''),
              `<pre>${esc(r.log.join('\n'))}</pre>`,
            ]),
          )}</div>`
    }</section>`,
  );

  const res = data.results;
  if (res) {
    const scatter =
      res.numericSample.length > 0 && res.numericResult.length > 0
        ? `<p>x <select id="scatter-x"></select> y <select id="scatter-y"></select><span class="note">${res.points.length < res.count ? `${res.points.length} of ${res.count} runs, evenly picked` : ''}</span></p><div id="scatter"></div>`
        : '<p class="note">No numeric result against a numeric sample value to plot.</p>';
    body.push(
      `<section id="results"><h2>Results: ${res.count} runs</h2>${scatter}<div class="scroll">${table(
        ['run', 'status', ...res.sampleKeys, ...res.resultKeys],
        res.rows.map((r) => [String(r.run), esc(r.status ?? '-'), ...r.s.map(esc), ...r.r.map((v) => `<b>${esc(v)}</b>`)]),
      )}</div>${res.rows.length < res.count ? `<p class="note">the first ${res.rows.length}; <code>themis write csv</code> has them all</p>` : ''}</section>`,
    );
  }
  if (data.notes.length > 0) body.push(`<section id="notes"><h2>Notes</h2><ul>${data.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`);
  body.push('</main>');

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>themis report: ${esc(data.title)}</title><style>${STYLE}</style></head>
<body>
${body.join('\n')}
<script id="themis-data" type="application/json">${jsonText(data)}</script>
<script>${scriptText(d3)}</script>
<script>${scriptText(plot)}</script>
<script>${scriptText(`(${drawReport.toString()})(JSON.parse(document.getElementById('themis-data').textContent), Plot, d3, document);`)}</script>
</body></html>
`;
}
