import { COMPLETED_STATUSES, RUN_STATUSES, type RunStatus } from '../model/status.js';
import { DEFAULT_LEASE_MS } from '../store/claim.js';
import { fileServerNow } from '../store/clock.js';
import { failedCount, listPackers, readStop, type PackerInfo, type StopRecord } from '../store/ensemble-state.js';
import { allocationStates, type AllocationState } from '../store/jobs.js';
import type { EnsembleRecord } from '../store/records.js';
import type { RunState } from '../store/scan.js';
import { scanStatusesCompact, type CompactStatusScan, type SummaryUse } from '../store/status-scan.js';

/**
 * One value for `themis status`: the table and `--json` both render it, so they cannot drift.
 * Everything in it is plain data (JSON-safe).
 */
export interface StatusReport {
  setupDir: string;
  scheduler: string;
  total: number;
  counts: Record<RunStatus, number>;
  /** successful + failed + killed + aborted. */
  completed: number;
  /** 0..100, one decimal. */
  percent: number;
  /** Runs whose status file cannot be read, and why (first 20; `unreadableCount` has them all). */
  unreadable: { id: number; problem: string }[];
  unreadableCount: number;
  /** Runs that ended badly, with the reason their packer recorded (first 20 of each). */
  ended: { id: number; status: RunStatus; step: number; reason: string | null }[];
  endedCount: number;
  /** Runs running now (first 20), where and since when. */
  running: { id: number; step: number; host: string | null; jobId: string | null; startedAt: string | null }[];
  /** Why queued runs are not starting: the ensemble's stop, no packer, or what packers say. */
  blocked: { reason: string; runs: number[] | null; packerId: string | null }[];
  stop: StopRecord | null;
  failedRuns: number;
  maxFailedRuns: number | null;
  packers: PackerStatus[];
  allocations: AllocationState[];
  /** How the statuses were read: how many runs the summary of finished runs answered for, and why not when it could not. */
  summary: SummaryUse | null;
}

export interface PackerStatus {
  packerId: string;
  host: string;
  pid: number;
  jobId: string | null;
  allocation: number | null;
  startedAt: string;
  heartbeatAt: string;
  /** Seconds since the last heartbeat, by the file server's clock. */
  heartbeatAgeSeconds: number;
  alive: boolean;
  running: number[];
  /** Nodes it places no more steps on (their launcher died twice or could not start). */
  nodesDown: string[];
  note: string | null;
}

const LIST_LIMIT = 20;
/** Final statuses listed under `ended`. */
const ENDED_BADLY: ReadonlySet<string> = new Set(['failed', 'killed', 'aborted']);

export interface ReportInputs {
  setupDir: string;
  ensemble: EnsembleRecord;
  runs: RunState[];
  packers: (PackerInfo & { ageMs: number; alive: boolean })[];
  stop: StopRecord | null;
  failedRuns: number;
  allocations: AllocationState[];
  summary?: SummaryUse | null;
  /** Runs answered from the summary of finished runs (not in `runs`), with their final statuses. */
  covered?: CompactStatusScan['covered'];
}

/** Pure: turn what was read from disk into the report. */
export function buildStatusReport(inp: ReportInputs): StatusReport {
  const counts = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
  const unreadable: StatusReport['unreadable'] = [];
  let unreadableCount = 0;
  const ended: StatusReport['ended'] = [];
  let endedCount = 0;
  const running: StatusReport['running'] = [];
  const queued: number[] = [];
  const blockedRuns = new Map<string, number[]>();
  for (const r of inp.runs) {
    if (r.status === null) {
      unreadableCount++;
      if (unreadable.length < LIST_LIMIT) unreadable.push({ id: r.id, problem: r.problem ?? 'unreadable' });
      continue;
    }
    const s = r.status.status;
    counts[s]++;
    if (s === 'queued') {
      queued.push(r.id);
      // A packer that cannot fit a run says why in its status (`blocked: needs 64 cores …`).
      const why = r.status.reason;
      if (why?.startsWith('blocked:')) {
        const key = why.slice('blocked:'.length).trim();
        const ids = blockedRuns.get(key) ?? [];
        ids.push(r.id);
        blockedRuns.set(key, ids);
      }
    }
    if (s === 'running' && running.length < LIST_LIMIT) {
      running.push({ id: r.id, step: r.status.step, host: r.status.host, jobId: r.status.jobId, startedAt: r.status.startedAt });
    }
    if (s === 'failed' || s === 'aborted' || s === 'killed') {
      endedCount++;
      if (ended.length < LIST_LIMIT) ended.push({ id: r.id, status: s, step: r.status.step, reason: r.status.reason });
    }
  }
  let total = inp.runs.length;
  if (inp.covered && inp.covered.size > 0) {
    // Finished runs from the summary: counted by status at once, and the ones that did not
    // succeed merged into `ended` in id order.
    total += inp.covered.size;
    const by = inp.covered.countsByStatus();
    for (const s of ['successful', 'failed', 'killed', 'aborted'] as const) counts[s] += by[s];
    endedCount += by.failed + by.killed + by.aborted;
    const endedCovered: StatusReport['ended'] = inp.covered.idsWith(ENDED_BADLY, LIST_LIMIT).map((id) => {
      const f = inp.covered!.get(id)!;
      return { id, status: f.status, step: f.step, reason: f.reason };
    });
    const merged = ended.concat(endedCovered).sort((a, b) => a.id - b.id);
    ended.length = 0;
    ended.push(...merged.slice(0, LIST_LIMIT));
  }
  const completed = COMPLETED_STATUSES.reduce((n, s) => n + counts[s], 0);
  const live = inp.packers.filter((p) => p.alive);
  const blocked: StatusReport['blocked'] = [];
  if (queued.length > 0) {
    if (inp.stop) {
      blocked.push({ reason: `the ensemble is stopped: ${inp.stop.reason}${inp.stop.kind === 'max-failed-runs' ? ' (`themis requeue` of failed runs clears it)' : ''}`, runs: null, packerId: null });
    }
    if (live.length === 0) {
      blocked.push({
        reason: `${queued.length} queued run${queued.length === 1 ? '' : 's'} and no live packer: start one with \`themis run\`, or submit the batch scripts`,
        runs: null,
        packerId: null,
      });
    }
  }
  for (const [reason, ids] of blockedRuns) {
    const shown = ids.slice(0, LIST_LIMIT);
    const more = ids.length > shown.length ? ` and ${ids.length - shown.length} more` : '';
    blocked.push({ reason: `run${ids.length === 1 ? '' : 's'} ${shown.join(' ')}${more}: ${reason}`, runs: ids, packerId: null });
  }
  for (const p of live) {
    if (p.note) blocked.push({ reason: p.note, runs: null, packerId: p.packerId });
  }
  return {
    setupDir: inp.setupDir,
    scheduler: inp.ensemble.scheduler,
    total,
    counts,
    completed,
    percent: total === 0 ? 100 : Math.round((completed / total) * 1000) / 10,
    unreadable,
    unreadableCount,
    ended,
    endedCount,
    running,
    blocked,
    stop: inp.stop,
    failedRuns: inp.failedRuns,
    maxFailedRuns: inp.ensemble.maxFailedRuns,
    packers: inp.packers.map((p) => ({
      packerId: p.packerId,
      host: p.host,
      pid: p.pid,
      jobId: p.jobId,
      allocation: p.allocation,
      startedAt: p.startedAt,
      heartbeatAt: p.heartbeatAt,
      heartbeatAgeSeconds: Math.max(0, Math.round(p.ageMs / 100) / 10),
      alive: p.alive,
      running: p.running,
      nodesDown: p.nodesDown ?? [],
      note: p.note ?? null,
    })),
    allocations: inp.allocations,
    summary: inp.summary ?? null,
  };
}

/**
 * Read everything `themis status` shows. `allocations: false` skips asking the scheduler (the
 * only slow part, a subprocess).
 * @example const report = await gatherStatus('.themis_setup');
 */
export async function gatherStatus(setupDir: string, options: { allocations?: boolean; leaseMs?: number; full?: boolean } = {}): Promise<StatusReport> {
  const { ensemble, read, covered, summary } = await scanStatusesCompact(setupDir, { full: options.full ?? false });
  return statusReportOf(setupDir, ensemble, read, { ...options, summary, covered });
}

/** The status report of runs already scanned (`themis report` scans once for both). */
export async function statusReportOf(
  setupDir: string,
  ensemble: EnsembleRecord,
  runs: RunState[],
  options: { allocations?: boolean; leaseMs?: number; summary?: SummaryUse; covered?: CompactStatusScan['covered'] } = {},
): Promise<StatusReport> {
  const packers = listPackers(setupDir, { leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS, now: () => fileServerNow(setupDir) });
  const allocations = options.allocations === false ? [] : await allocationStates(setupDir);
  return buildStatusReport({
    setupDir: ensemble.setupDir,
    ensemble,
    runs,
    packers,
    stop: readStop(setupDir),
    failedRuns: failedCount(setupDir),
    allocations,
    summary: options.summary ?? null,
    covered: options.covered,
  });
}

/** `[##########----------] 50.0% (3/6)` */
export function progressBar(completed: number, total: number, width = 30): string {
  const frac = total === 0 ? 1 : completed / total;
  const filled = Math.round(frac * width);
  const pct = total === 0 ? '100.0' : ((completed / total) * 100).toFixed(1);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}% (${completed}/${total})`;
}

/** The report as a terminal table. */
export function renderStatusReport(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`ensemble ${r.setupDir} (${r.scheduler}): ${r.total} run${r.total === 1 ? '' : 's'}`);
  lines.push(progressBar(r.completed, r.total));
  lines.push('');
  const width = Math.max(...RUN_STATUSES.map((s) => s.length), 'unreadable'.length);
  for (const s of RUN_STATUSES) lines.push(`  ${s.padEnd(width)}  ${String(r.counts[s]).padStart(7)}`);
  if (r.unreadableCount > 0) lines.push(`  ${'unreadable'.padEnd(width)}  ${String(r.unreadableCount).padStart(7)}`);
  if (r.maxFailedRuns !== null) lines.push(`  max_failed_runs: ${r.failedRuns} of ${r.maxFailedRuns} failed so far`);
  if (r.blocked.length > 0) {
    lines.push('', 'blocked:');
    for (const b of r.blocked) lines.push(`  ${b.packerId ? `[${b.packerId}] ` : ''}${b.reason}`);
  }
  if (r.running.length > 0) {
    const more = r.counts.running > r.running.length ? ` (first ${r.running.length} of ${r.counts.running})` : '';
    lines.push('', `running${more}:`);
    for (const x of r.running) {
      lines.push(`  run ${x.id}: step ${x.step}${x.host ? ` on ${x.host}` : ''}${x.jobId ? ` (job ${x.jobId})` : ''}${x.startedAt ? ` since ${x.startedAt}` : ''}`);
    }
  }
  if (r.ended.length > 0) {
    const more = r.endedCount > r.ended.length ? ` (first ${r.ended.length}; \`themis status failed killed aborted\` lists them all)` : '';
    lines.push('', `ended badly: ${r.endedCount}${more}`);
    for (const e of r.ended) lines.push(`  run ${e.id}: ${e.status} at step ${e.step}${e.reason ? `: ${e.reason}` : ''}`);
  }
  if (r.summary?.problem) lines.push('', `every status file was read: the summary of finished runs cannot be trusted (${r.summary.problem}); \`themis doctor\` rebuilds it`);
  if (r.unreadable.length > 0) {
    lines.push('', `unreadable (${r.unreadableCount}):`);
    for (const u of r.unreadable) lines.push(`  run ${u.id}: ${u.problem}`);
  }
  lines.push('');
  const live = r.packers.filter((p) => p.alive);
  if (live.length === 0) lines.push('packers: none live');
  else {
    lines.push('packers:');
    lines.push(
      ...table(
        ['packer', 'host', 'pid', 'job', 'alloc', 'heartbeat', 'running'],
        live.map((p) => [p.packerId, p.host, String(p.pid), p.jobId ?? '-', p.allocation === null ? '-' : String(p.allocation), `${p.heartbeatAgeSeconds} s ago`, String(p.running.length)]),
      ).map((l) => `  ${l}`),
    );
  }
  for (const p of live) if (p.nodesDown.length > 0) lines.push(`  ${p.packerId} places no more steps on ${p.nodesDown.join(', ')} (their launcher died or could not start; see its log)`);
  const stale = r.packers.length - live.length;
  if (stale > 0) lines.push(`  (${stale} stale heartbeat file${stale === 1 ? '' : 's'} of packers that are gone)`);
  if (r.allocations.length > 0) {
    lines.push('allocations:');
    lines.push(
      ...table(
        ['alloc', 'job', 'scheduler', 'state', 'submitted'],
        r.allocations.map((a) => [String(a.allocation), a.jobId, a.scheduler, a.state, a.submittedAt]),
      ).map((l) => `  ${l}`),
    );
  }
  return lines.join('\n') + '\n';
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}
