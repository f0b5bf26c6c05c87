/**
 * The report page's own script: draws the charts with Observable Plot from the embedded data.
 * It runs in the browser, not here: `report-html.ts` inlines `drawReport.toString()`, so this
 * function must stand alone (no imports, nothing from outside its body). The types of the DOM and
 * of Plot are not part of this build (no DOM lib), hence the loose `Js`.
 */
// biome-ignore lint/suspicious/noExplicitAny: browser globals (document, Plot, d3) have no types in this Node build
type Js = any;

export function drawReport(data: Js, Plot: Js, d3: Js, doc: Js): void {
  const COLORS: Record<string, string> = {
    ok: '#2e9d5b',
    successful: '#2e9d5b',
    restart: '#f0a030',
    failed: '#d62f2f',
    aborted: '#8e44ad',
    killed: '#7f7f7f',
    requeued: '#4a90d9',
    running: '#9ecae1',
    queued: '#d9d9d9',
    lost: '#bdbdbd',
  };
  const outcomes = Object.keys(COLORS).filter((k) => k !== 'successful' && k !== 'queued');
  const el = (id: string): Js => doc.getElementById(id);
  const width = (node: Js): number => Math.max(320, Math.min(1400, (node?.clientWidth || 900) - 4));
  const secs = (s: number): string => (s < 120 ? `${Math.round(s * 10) / 10} s` : s < 7200 ? `${Math.round(s / 6) / 10} min` : `${Math.round(s / 360) / 10} h`);
  const put = (id: string, chart: Js): void => {
    const host = el(id);
    if (host) host.append(chart);
  };

  // Progress: one bar split by status.
  const order = ['successful', 'failed', 'aborted', 'killed', 'running', 'queued'];
  const counts = order.map((s) => ({ status: s, n: data.progress.counts[s] ?? 0 })).filter((x) => x.n > 0);
  put(
    'progress-chart',
    Plot.plot({
      width: width(el('progress-chart')),
      height: 70,
      x: { label: 'runs', domain: [0, Math.max(1, data.progress.total)], ticks: Math.min(10, Math.max(1, data.progress.total)), tickFormat: 'd' },
      color: { domain: order, range: order.map((s) => COLORS[s]), legend: true },
      marks: [Plot.barX(counts, Plot.stackX({ x: 'n', fill: 'status', title: (d: Js) => `${d.status}: ${d.n}` }))],
    }),
  );

  // Timeline: per allocation, one lane per node core (GPU lanes first on GPU nodes).
  for (const ax of data.timeline.axes) {
    const id = `timeline-${ax.a}`;
    const host = el(id);
    if (!host) continue;
    const alloc = data.allocations[ax.a];
    const height = Math.max(120, Math.min(640, 40 + ax.lanes * (data.timeline.mode === 'steps' ? 8 : 4)));
    const ticks = ax.ticks.map((t: Js) => t.y);
    const labels = new Map(ax.ticks.map((t: Js) => [t.y, t.label]));
    if (ax.unplacedLane !== null) {
      ticks.push(ax.unplacedLane);
      labels.set(ax.unplacedLane, 'not placed');
    }
    const y = { label: null, domain: [ax.lanes, 0], ticks, tickFormat: (v: number) => labels.get(v) ?? '' };
    const x = { type: 'utc', label: null, domain: [new Date(alloc.start), new Date(alloc.end)] };
    let marks: Js[];
    if (data.timeline.mode === 'steps') {
      const mine = data.timeline.marks.filter((m: Js) => m.a === ax.a);
      host.dataset.marks = String(mine.length);
      marks = [
        Plot.rect(mine, {
          x1: (m: Js) => new Date(m.t0),
          x2: (m: Js) => new Date(Math.max(m.t1, m.t0 + 1)),
          y1: (m: Js) => m.y,
          y2: (m: Js) => m.y + m.h,
          inset: 0.5,
          fill: (m: Js) => m.o,
          title: (m: Js) => `run ${m.run} step ${m.step} attempt ${m.attempt}: ${m.o}\n${secs((m.t1 - m.t0) / 1000)} on ${m.where}`,
        }),
      ];
    } else {
      const mine = data.timeline.cells.filter((c: Js) => c.a === ax.a);
      host.dataset.cells = String(mine.length);
      marks = [
        Plot.rect(mine, {
          x1: (c: Js) => new Date(c.t0),
          x2: (c: Js) => new Date(c.t1),
          y1: 'y0',
          y2: 'y1',
          fill: 'busy',
          title: (c: Js) => `${Math.round(c.busy * 100)}% busy${c.bad ? `, ${c.bad} ended badly` : ''}`,
        }),
        Plot.dot(
          mine.filter((c: Js) => c.bad > 0),
          { x: (c: Js) => new Date(c.t1), y: (c: Js) => (c.y0 + c.y1) / 2, r: 2.5, fill: COLORS.failed, stroke: 'white', strokeWidth: 0.5 },
        ),
      ];
    }
    host.append(
      Plot.plot({
        width: width(host),
        height,
        marginLeft: 90,
        x,
        y,
        color:
          data.timeline.mode === 'steps' ? { domain: outcomes, range: outcomes.map((o) => COLORS[o]), legend: true } : { type: 'linear', scheme: 'blues', domain: [0, 1], legend: true, label: 'busy' },
        marks,
      }),
    );
  }

  // Utilisation: cores (and GPUs) busy over time, per allocation.
  for (const u of data.utilisation) {
    const alloc = data.allocations[u.a];
    const rows = u.t.map((t: number, i: number) => ({ t: new Date(t), cores: u.cores[i], gpus: u.gpus[i] }));
    const x = { type: 'utc', label: null, domain: [new Date(alloc.start), new Date(alloc.end)] };
    const marks: Js[] = [Plot.areaY(rows, { x: 't', y: 'cores', fill: '#6baed6', fillOpacity: 0.6, curve: 'step' }), Plot.ruleY([alloc.cores], { stroke: '#555', strokeDasharray: '4,3' })];
    if (alloc.gpus > 0) {
      marks.push(Plot.lineY(rows, { x: 't', y: 'gpus', stroke: '#e6550d', curve: 'step' }));
      marks.push(Plot.ruleY([alloc.gpus], { stroke: '#e6550d', strokeDasharray: '2,3' }));
    }
    put(
      `util-${u.a}`,
      Plot.plot({
        width: width(el(`util-${u.a}`)),
        height: 170,
        marginLeft: 90,
        x,
        y: { label: alloc.gpus > 0 ? 'cores (blue), GPUs (orange) busy' : 'cores busy', grid: true, domain: [0, Math.max(1, alloc.cores, alloc.gpus)] },
        marks,
      }),
    );
  }

  // Runtime distribution per step.
  for (const r of data.runtimes) {
    const rows = r.bins.flatMap((b: Js) => [
      { x0: b.x0, x1: b.x1, n: b.ok, kind: 'ok' },
      { x0: b.x0, x1: b.x1, n: b.bad, kind: 'failed' },
    ]);
    put(
      `runtime-${r.step}`,
      Plot.plot({
        width: Math.min(700, width(el(`runtime-${r.step}`))),
        height: 180,
        x: { label: 'seconds' },
        y: { label: 'attempts', grid: true },
        color: { domain: ['ok', 'failed'], range: [COLORS.ok, COLORS.failed], legend: true },
        marks: [
          Plot.rectY(rows, Plot.stackY({ x1: 'x0', x2: 'x1', y: 'n', fill: 'kind', inset: 0.5, title: (d: Js) => `${d.n} ${d.kind} in ${d.x0}-${d.x1} s` })),
          Plot.ruleX([r.median], { stroke: '#333', strokeDasharray: '3,3' }),
        ],
      }),
    );
  }

  // Results: a numeric result against a numeric sample value.
  const res = data.results;
  const xs = el('scatter-x');
  const ys = el('scatter-y');
  if (res && xs && ys && res.numericSample.length > 0 && res.numericResult.length > 0) {
    const fill = (select: Js, keys: string[]) => {
      for (const k of keys) {
        const o = doc.createElement('option');
        o.value = k;
        o.textContent = k;
        select.append(o);
      }
    };
    fill(xs, res.numericSample);
    fill(ys, res.numericResult);
    const draw = () => {
      const xi = res.numericSample.indexOf(xs.value);
      const yi = res.numericResult.indexOf(ys.value);
      const pts = res.points.filter((p: Js) => p.s[xi] !== null && p.r[yi] !== null);
      const host = el('scatter');
      host.replaceChildren(
        Plot.plot({
          width: Math.min(800, width(host)),
          height: 360,
          grid: true,
          x: { label: xs.value },
          y: { label: ys.value },
          marks: [
            Plot.dot(pts, { x: (p: Js) => p.s[xi], y: (p: Js) => p.r[yi], fill: '#3182bd', fillOpacity: 0.7, r: 3, title: (p: Js) => `run ${p.run}: ${xs.value} ${p.s[xi]}, ${ys.value} ${p.r[yi]}` }),
          ],
        }),
      );
    };
    xs.addEventListener('change', draw);
    ys.addEventListener('change', draw);
    draw();
  }
  doc.body.dataset.drawn = d3 ? 'yes' : 'no-d3';
}
