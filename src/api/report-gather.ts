import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_LEASE_MS } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { listPackers } from '../store/ensemble-state.js';
import { listJournals, parseJournal } from '../store/journal.js';
import { RUN_LOG, setupPaths } from '../store/layout.js';
import type { PackerSummary } from '../pack/run-packer.js';
import { statusReportOf } from './report.js';
import { buildEnsembleReport, type EnsembleReportData, type ReportPacker, type ReportRun } from './report-model.js';
import { readExportsParallel, scanRunsParallel } from './scan-parallel.js';

/** Lines of a failed run's run.log shown in the report. */
const LOG_LINES = 8;
/** Journals larger than this are not read for the report (their launches are matched by time instead). */
const JOURNAL_LIMIT = 64 << 20;

/**
 * Read what `themis report` shows: the same scan as `themis status` (every status, with its
 * history), each run's record and result, the packers' summaries (`logs/packer-*.summary.json`)
 * and heartbeat files, the journals still there, and the batch plans.
 * @example const data = await gatherReport('.themis_setup');
 */
export async function gatherReport(setupDir: string, options: { now?: number; timelineLimit?: number } = {}): Promise<EnsembleReportData> {
  const now = options.now ?? Date.now();
  const { ensemble, runs: states } = await scanRunsParallel(setupDir);
  const status = await statusReportOf(setupDir, ensemble, states, { allocations: false });
  const exports = await readExportsParallel(ensemble.root, states);
  const byId = new Map(exports.map((e) => [e.id, e]));
  const runs: ReportRun[] = states.map((st) => {
    const e = byId.get(st.id);
    return { id: st.id, dir: st.dir, status: st.status, sample: e?.sample ?? {}, sampleKeys: e?.sampleKeys ?? [], steps: e?.steps ?? [], result: e?.result ?? null };
  });
  const sp = setupPaths(setupDir);
  const packers = readSummaries(sp.logsDir);
  const seen = new Set(packers.map((p) => p.packerId));
  for (const p of listPackers(setupDir, { leaseMs: DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) })) {
    if (seen.has(p.packerId)) continue;
    packers.push({
      packerId: p.packerId,
      allocation: p.allocation,
      jobId: p.jobId,
      host: p.host,
      start: Date.parse(p.startedAt),
      end: p.alive ? null : Date.parse(p.heartbeatAt),
      nodes: null,
      reason: p.alive ? null : 'stopped heartbeating',
      live: p.alive,
    });
  }
  const plans = new Map<number, number>();
  for (let k = 1; k <= ensemble.allocation.allocations; k++) {
    try {
      const rec = JSON.parse(fs.readFileSync(sp.planFile(k), 'utf8')) as { runIds?: number[] };
      if (Array.isArray(rec.runIds)) plans.set(k, rec.runIds.length);
    } catch {
      /* no plan for it */
    }
  }
  return buildEnsembleReport({
    title: path.basename(ensemble.root),
    status,
    now,
    runs,
    packers,
    plans,
    journaled: readJournals(setupDir),
    logTail: (r) => tailOfLog(r),
    ...(options.timelineLimit !== undefined && { timelineLimit: options.timelineLimit }),
  });
}

function readSummaries(dir: string): ReportPacker[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith('packer-') && n.endsWith('.summary.json'));
  } catch {
    return [];
  }
  const out: ReportPacker[] = [];
  for (const name of names.sort()) {
    try {
      const s = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as PackerSummary;
      const start = Date.parse(s.startedAt);
      if (!Number.isFinite(start)) continue;
      out.push({
        packerId: s.packerId,
        allocation: s.allocation,
        jobId: s.jobId,
        host: s.host,
        start,
        end: Date.parse(s.endedAt) || null,
        nodes: Array.isArray(s.nodes) ? s.nodes : parseResources(s.resources, s.host),
        reason: s.reason,
        live: false,
      });
    } catch {
      /* a torn or foreign file: skipped */
    }
  }
  return out;
}

/**
 * Summaries written before they carried `nodes` say them in words (`describeResources`):
 * "2 nodes (a,b) x 32 cores, 4 GPUs each"; the per-node form for mixed nodes is left to inference.
 */
export function parseResources(text: string | undefined, host: string): ReportPacker['nodes'] {
  const m = /^(\d+) nodes? \(([^)]*)\) x (\d+) cores(?:, (\d+) GPUs?)?/.exec(text ?? '');
  if (!m) return null;
  const names = m[2]!.split(',');
  const gpus = Number(m[4] ?? 0);
  return Array.from({ length: Number(m[1]) }, (_, i) => ({ name: names[i] ?? `${host}-${i}`, cores: Number(m[3]), gpus: Array.from({ length: gpus }, (_, g) => String(g)) }));
}

/** `${run}:${step}:${attempt}` -> packer id, from every journal still on disk (packers that did not end cleanly, or run now). */
function readJournals(setupDir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const id of listJournals(setupDir)) {
    const file = setupPaths(setupDir).packerJournal(id);
    try {
      if (fs.statSync(file).size > JOURNAL_LIMIT) continue;
      for (const key of parseJournal(fs.readFileSync(file, 'utf8')).keys()) {
        const [run, step, attempt] = key.split(':');
        out.set(`${run}:${step}:${attempt}`, id);
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** The last lines of the run.log of the step a run stopped at (read from its last 8 KiB). */
function tailOfLog(r: ReportRun): string[] {
  const step = r.steps[Math.min(r.status?.step ?? 0, r.steps.length - 1)];
  const file = path.join(path.resolve(r.dir, step?.cwd ?? '.'), RUN_LOG);
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 8192);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    if (size > len) lines.shift();
    while (lines.length > 0 && lines.at(-1) === '') lines.pop();
    return lines.slice(-LOG_LINES).map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
  } catch {
    return [];
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
