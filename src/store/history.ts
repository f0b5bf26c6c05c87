import type { StatusRecord } from './records.js';

/**
 * A run's step attempts as its status history tells them: each `started` entry (written just
 * before the spawn, detail `step N attempt M`) up to the entry that settled it. The report and
 * `themis plan`'s estimates read durations from here; nothing else is written per launch.
 * The history keeps its last HISTORY_LIMIT entries, so a run with many steps or restarts may have
 * lost its first attempts (`trimmed`).
 */
export interface Attempt {
  step: number;
  attempt: number;
  /** Epoch ms. */
  start: number;
  /** Epoch ms; null while the step runs (or when its end was not recorded). */
  end: number | null;
  /** How it ended: `ok` (exit 0), `restart`, `failed`, `aborted`, `killed`, `requeued` (interrupted, back to the queue), `running`, `lost` (no end recorded). */
  outcome: AttemptOutcome;
  /** The reason the settling entry gave (an exit in words, a timeout, an interrupt). */
  detail: string | null;
  /** The run's last attempt (the status' host and job id are this one's). */
  last: boolean;
}

export type AttemptOutcome = 'ok' | 'restart' | 'failed' | 'aborted' | 'killed' | 'requeued' | 'running' | 'lost';

const ENDS: Record<string, AttemptOutcome> = {
  'step done': 'ok',
  successful: 'ok',
  restart: 'restart',
  failed: 'failed',
  aborted: 'aborted',
  killed: 'killed',
  requeued: 'requeued',
};

const STARTED_RE = /^step (\d+) attempt (\d+)$/;

/** Pure: the attempts in a status' history, oldest first. */
export function attemptsOf(status: StatusRecord): { attempts: Attempt[]; trimmed: boolean } {
  const h = status.history;
  const out: Attempt[] = [];
  let open: Attempt | null = null;
  for (const e of h) {
    if (e.event === 'started') {
      if (open) open.outcome = 'lost';
      const m = STARTED_RE.exec(e.detail ?? '');
      const t = Date.parse(e.at);
      if (!Number.isFinite(t)) {
        open = null;
        continue;
      }
      open = { step: m ? Number(m[1]) : status.step, attempt: m ? Number(m[2]) : 0, start: t, end: null, outcome: 'running', detail: null, last: false };
      out.push(open);
      continue;
    }
    const outcome = ENDS[e.event];
    if (!open || outcome === undefined) continue;
    const t = Date.parse(e.at);
    open.end = Number.isFinite(t) ? Math.max(t, open.start) : null;
    open.outcome = outcome;
    open.detail = e.detail ?? null;
    open = null;
  }
  const lastOne = out.at(-1);
  if (lastOne) {
    lastOne.last = true;
    if (lastOne.outcome === 'running' && status.status !== 'running') lastOne.outcome = 'lost';
    // The launcher's own end time (the status' endedAt) is the exact one for the last attempt.
    const ended = status.endedAt ? Date.parse(status.endedAt) : Number.NaN;
    if (lastOne.end !== null && Number.isFinite(ended) && ended >= lastOne.start && ended <= lastOne.end) lastOne.end = ended;
  }
  const trimmed = h.length > 0 && h[0]!.event !== 'created';
  return { attempts: out, trimmed };
}
