import { MinHeap } from '../model/heap.js';
import { coresPerTask, type StepResources } from '../model/resources.js';
import type { NodeInfo } from '../schedulers/adapter.js';
import type { AttemptOutcome } from '../store/history.js';

/**
 * The report's timeline and utilisation, pure. Which cores and GPUs a step held is not written
 * anywhere (only when and on which packer it ran), so each allocation's placement is replayed:
 * steps in start order, each on the first node with enough free cores and GPUs (the packer's own
 * rule), on a contiguous block of them when there is one (else the lowest free, as the pool takes).
 */

/** One step attempt to draw: where (allocation), when, what it held and how it ended. */
export interface Launch {
  alloc: number;
  run: number;
  step: number;
  attempt: number;
  start: number;
  end: number;
  need: StepResources;
  outcome: AttemptOutcome;
}

/** One mark: a step on its lanes (GPU lanes for a step that holds GPUs, else core lanes). */
export interface TimelineMark {
  a: number;
  /** First lane and number of lanes. */
  y: number;
  h: number;
  t0: number;
  t1: number;
  o: AttemptOutcome;
  run: number;
  step: number;
  attempt: number;
  /** Node and cores/GPUs, for the tooltip: "n0 cores 0-3". */
  where: string;
}

/** Past the mark limit: lanes grouped (a node or several), time binned, the busy fraction per cell. */
export interface TimelineCell {
  a: number;
  y0: number;
  y1: number;
  t0: number;
  t1: number;
  busy: number;
  /** Attempts that ended badly (failed, aborted, killed, restarted) in the cell. */
  bad: number;
}

export interface LaneAxis {
  a: number;
  lanes: number;
  /** Where each node's lanes start (its GPU lanes first, then its cores), for the axis ticks. */
  ticks: { y: number; label: string }[];
  /** A lane past the nodes for steps the replay could not place (the records disagree with the nodes). */
  unplacedLane: number | null;
}

export interface Timeline {
  mode: 'steps' | 'binned';
  launches: number;
  marks: TimelineMark[];
  cells: TimelineCell[];
  axes: LaneAxis[];
  unplaced: number;
  /** Marks beyond one per launch: steps spread over nodes, or on cores that were not contiguous. */
  extraMarks: number;
}

export interface UtilisationSeries {
  a: number;
  t: number[];
  cores: number[];
  gpus: number[];
  /** Core-ms (and GPU-ms) held by steps. */
  coreMs: number;
  gpuMs: number;
}

interface NodeLanes {
  base: number;
  gpuBase: number;
  coreBase: number;
  freeCores: Uint8Array;
  freeGpus: Uint8Array;
  nfc: number;
  nfg: number;
}

/** A run of `n` free indices, contiguous if possible, else the lowest free ones; null if fewer than n are free. */
function pick(free: Uint8Array, n: number): number[] | null {
  if (n === 0) return [];
  let runStart = -1;
  for (let i = 0; i < free.length; i++) {
    if (free[i]) {
      if (runStart < 0) runStart = i;
      if (i - runStart + 1 === n) return Array.from({ length: n }, (_, k) => runStart + k);
    } else runStart = -1;
  }
  const out: number[] = [];
  for (let i = 0; i < free.length && out.length < n; i++) if (free[i]) out.push(i);
  return out.length === n ? out : null;
}

/** Contiguous stretches of sorted indices: [0,1,2,5] -> [[0,3],[5,1]] (start, length). */
function stretches(xs: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const x of xs) {
    const last = out.at(-1);
    if (last && last[0] + last[1] === x) last[1]++;
    else out.push([x, 1]);
  }
  return out;
}

function rangeText(xs: readonly number[]): string {
  return stretches(xs)
    .map(([s, n]) => (n === 1 ? `${s}` : `${s}-${s + n - 1}`))
    .join(',');
}

/** Lanes of an allocation: per node its GPUs, then its cores. */
function laneLayout(nodes: readonly NodeInfo[]): { lanes: NodeLanes[]; total: number; ticks: LaneAxis['ticks'] } {
  let y = 0;
  const ticks: LaneAxis['ticks'] = [];
  const lanes = nodes.map((n) => {
    const base = y;
    ticks.push({ y: base, label: n.gpus.length > 0 ? `${n.name} GPUs` : `${n.name}` });
    if (n.gpus.length > 0) ticks.push({ y: base + n.gpus.length, label: `${n.name} cores` });
    y += n.gpus.length + n.cores;
    return { base, gpuBase: base, coreBase: base + n.gpus.length, freeCores: new Uint8Array(n.cores).fill(1), freeGpus: new Uint8Array(n.gpus.length).fill(1), nfc: n.cores, nfg: n.gpus.length };
  });
  return { lanes, total: y, ticks };
}

export const TIMELINE_MARK_LIMIT = 3000;
const TIME_BINS = 160;
const MAX_LANE_GROUPS = 96;

/**
 * Place every launch of every allocation and build the timeline: one mark per step attempt (per
 * node part, or per contiguous stretch when its cores were not contiguous) up to
 * TIMELINE_MARK_LIMIT launches, else binned cells.
 */
export function buildTimeline(allocs: readonly { nodes: readonly NodeInfo[]; start: number; end: number }[], launches: readonly Launch[], limit = TIMELINE_MARK_LIMIT): Timeline {
  const binned = launches.length > limit;
  const marks: TimelineMark[] = [];
  const cells = new Map<string, TimelineCell>();
  const axes: LaneAxis[] = [];
  let unplaced = 0;
  let extraMarks = 0;
  const byAlloc = new Map<number, Launch[]>();
  for (const l of launches) {
    const list = byAlloc.get(l.alloc) ?? [];
    if (list.length === 0) byAlloc.set(l.alloc, list);
    list.push(l);
  }
  allocs.forEach((alloc, a) => {
    const { lanes, total, ticks } = laneLayout(alloc.nodes);
    const list = (byAlloc.get(a) ?? []).slice().sort((x, y) => x.start - y.start || x.run - y.run);
    let hasUnplaced = false;
    // Lane groups and bins for the binned view.
    const perGroup = Math.max(1, Math.ceil(alloc.nodes.length / MAX_LANE_GROUPS));
    const span = Math.max(1, alloc.end - alloc.start);
    const binMs = span / TIME_BINS;
    const groups = Array.from({ length: Math.ceil(alloc.nodes.length / perGroup) }, (_, g) => {
      const lastNode = Math.min(alloc.nodes.length, (g + 1) * perGroup) - 1;
      const cores = alloc.nodes.slice(g * perGroup, lastNode + 1).reduce((n, x) => n + x.cores, 0);
      return { y0: lanes[g * perGroup]!.base, y1: lanes[lastNode]!.coreBase + alloc.nodes[lastNode]!.cores, cores: Math.max(1, cores) };
    });
    const addBusy = (node: number, cores: number, t0: number, t1: number, bad: boolean) => {
      const g = Math.floor(node / perGroup);
      const { y0, y1, cores: groupCores } = groups[g]!;
      const b0 = Math.max(0, Math.floor((t0 - alloc.start) / binMs));
      const b1 = Math.min(TIME_BINS - 1, Math.floor((Math.max(t0, t1 - 1) - alloc.start) / binMs));
      for (let b = b0; b <= b1; b++) {
        const c0 = alloc.start + b * binMs;
        const overlap = Math.max(0, Math.min(t1, c0 + binMs) - Math.max(t0, c0));
        const key = `${g}/${b}`;
        const cell = cells.get(`${a}/${key}`) ?? { a, y0, y1, t0: c0, t1: c0 + binMs, busy: 0, bad: 0 };
        cells.set(`${a}/${key}`, cell);
        cell.busy += (overlap * cores) / (groupCores * binMs);
        if (bad && b === b1) cell.bad++;
      }
    };
    // Ends before starts at the same moment: a freed core can take the next step.
    const running = new MinHeap<{ end: number; free: () => void }>((x, y) => x.end < y.end);
    for (const l of list) {
      while (running.size > 0 && running.peek()!.end <= l.start) running.pop()!.free();
      const cpt = coresPerTask(l.need);
      const gpt = l.need.gpusPerTask;
      const parts = place(lanes, l.need.tasks, cpt, gpt);
      const bad = l.outcome === 'failed' || l.outcome === 'aborted' || l.outcome === 'killed' || l.outcome === 'restart';
      if (!parts) {
        unplaced++;
        hasUnplaced = true;
        if (!binned) marks.push({ a, y: total, h: 1, t0: l.start, t1: l.end, o: l.outcome, run: l.run, step: l.step, attempt: l.attempt, where: 'not placed (more than the nodes hold)' });
        continue;
      }
      running.push({
        end: l.end,
        free: () => {
          for (const p of parts) {
            const nl = lanes[p.node]!;
            for (const c of p.cores) nl.freeCores[c] = 1;
            for (const g of p.gpus) nl.freeGpus[g] = 1;
            nl.nfc += p.cores.length;
            nl.nfg += p.gpus.length;
          }
        },
      });
      let first = true;
      for (const p of parts) {
        const nl = lanes[p.node]!;
        if (binned) {
          addBusy(p.node, p.cores.length, l.start, l.end, bad && first);
          first = false;
          continue;
        }
        const useGpus = p.gpus.length > 0;
        const idx = useGpus ? p.gpus : p.cores;
        const base = useGpus ? nl.gpuBase : nl.coreBase;
        const where = `${alloc.nodes[p.node]!.name} cores ${rangeText(p.cores)}${p.gpus.length ? `, GPUs ${p.gpus.map((g) => alloc.nodes[p.node]!.gpus[g]).join(',')}` : ''}`;
        for (const [s, n] of stretches(idx)) {
          if (!first) extraMarks++;
          first = false;
          marks.push({ a, y: base + s, h: n, t0: l.start, t1: l.end, o: l.outcome, run: l.run, step: l.step, attempt: l.attempt, where });
        }
      }
    }
    axes.push({ a, lanes: total + (hasUnplaced ? 1 : 0), ticks, unplacedLane: hasUnplaced ? total : null });
  });
  const cellList = [...cells.values()].map((c) => ({ ...c, busy: Math.round(Math.min(1, c.busy) * 1000) / 1000 }));
  return { mode: binned ? 'binned' : 'steps', launches: launches.length, marks, cells: cellList, axes, unplaced, extraMarks };
}

/** Cores and GPUs for a step: one node when it fits there, else its tasks spread (a task never spans nodes). */
function place(lanes: NodeLanes[], tasks: number, cpt: number, gpt: number): { node: number; cores: number[]; gpus: number[] }[] | null {
  const take = (i: number, t: number) => {
    const nl = lanes[i]!;
    const cores = pick(nl.freeCores, t * cpt)!;
    const gpus = pick(nl.freeGpus, t * gpt)!;
    for (const c of cores) nl.freeCores[c] = 0;
    for (const g of gpus) nl.freeGpus[g] = 0;
    nl.nfc -= cores.length;
    nl.nfg -= gpus.length;
    return { node: i, cores, gpus };
  };
  const fits = (i: number) => Math.min(Math.floor(lanes[i]!.nfc / cpt), gpt > 0 ? Math.floor(lanes[i]!.nfg / gpt) : Infinity);
  for (let i = 0; i < lanes.length; i++) if (fits(i) >= tasks) return [take(i, tasks)];
  if (tasks <= 1) return null;
  let total = 0;
  for (let i = 0; i < lanes.length; i++) total += fits(i);
  if (total < tasks) return null;
  const out: { node: number; cores: number[]; gpus: number[] }[] = [];
  let left = tasks;
  for (let i = 0; i < lanes.length && left > 0; i++) {
    const n = Math.min(left, fits(i));
    if (n > 0) {
      out.push(take(i, n));
      left -= n;
    }
  }
  return out;
}

const UTIL_BINS = 200;

/** Cores and GPUs busy over each allocation's time, as averages over up to UTIL_BINS bins. */
export function buildUtilisation(allocs: readonly { start: number; end: number }[], launches: readonly Launch[]): UtilisationSeries[] {
  const out = allocs.map((al, a) => {
    const span = Math.max(1, al.end - al.start);
    const bins = UTIL_BINS;
    return { a, al, binMs: span / bins, cores: new Float64Array(bins), gpus: new Float64Array(bins), coreMs: 0, gpuMs: 0 };
  });
  for (const l of launches) {
    const u = out[l.alloc];
    if (!u) continue;
    const cores = l.need.tasks * coresPerTask(l.need);
    const gpus = l.need.tasks * l.need.gpusPerTask;
    const t0 = Math.max(l.start, u.al.start);
    const t1 = Math.min(l.end, u.al.end);
    if (t1 <= t0) continue;
    u.coreMs += cores * (t1 - t0);
    u.gpuMs += gpus * (t1 - t0);
    const n = u.cores.length;
    const b0 = Math.min(n - 1, Math.floor((t0 - u.al.start) / u.binMs));
    const b1 = Math.min(n - 1, Math.floor((t1 - 1 - u.al.start) / u.binMs));
    for (let b = b0; b <= b1; b++) {
      const c0 = u.al.start + b * u.binMs;
      const f = Math.max(0, Math.min(t1, c0 + u.binMs) - Math.max(t0, c0)) / u.binMs;
      u.cores[b]! += cores * f;
      u.gpus[b]! += gpus * f;
    }
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return out.map((u) => ({
    a: u.a,
    t: Array.from(u.cores, (_, b) => Math.round(u.al.start + (b + 0.5) * u.binMs)),
    cores: Array.from(u.cores, r2),
    gpus: Array.from(u.gpus, r2),
    coreMs: u.coreMs,
    gpuMs: u.gpuMs,
  }));
}
