import { inspectClaim, type ClaimOptions } from '../store/claim.js';
import { ENV } from '../store/layout.js';
import { loadCandidate, scanQueue, type Candidate, type LoadedCandidate } from './queue.js';
import type { PackerConfig } from './types.js';

/**
 * How many queued runs one packing decision looks at: enough for backfill to find a run that fits
 * behind ones that do not (4 per core), never fewer than 32 nor more than 256 (each decision walks
 * the window, and each run in it has its run.json loaded).
 */
export function windowFor(totalCores: number): number {
  return Math.min(256, Math.max(32, 4 * totalCores));
}

/**
 * The packer's view of the queue: the candidates of its last scan of every run's status, in the
 * order they should start, and what that scan saw of the rest of the ensemble. Rescans are spaced
 * out (see `due`) so that scanning a huge ensemble costs little CPU.
 */
export class RunQueue {
  private queue: Candidate[] = [];
  private head = 0;
  scanning = false;
  private lastScanAt = 0;
  /** How long the last scan took: scans of a huge ensemble are spaced out to keep the CPU low. */
  private lastScanMs = 0;
  private readonly problemsLogged = new Set<number>();
  /** The thread count last said in the log. */
  private workersSaid = 1;
  private summaryProblemSaid: string | null = null;
  /** Runs queued or running anywhere at the last scan (-1 before the first). */
  pending = -1;
  /** Runs held by a packer that has missed heartbeats at the last scan: they may become stale soon. */
  suspects = 0;

  constructor(
    private readonly cfg: PackerConfig,
    private readonly claimOpts: ClaimOptions,
    readonly windowSize: number,
  ) {}

  /**
   * Read every run's status again. `skip`: runs in hand or found blocked; `held`: is a run ours
   * now (claimed while the scan was reading)? What we knew of runs still waiting (how long they
   * waited, how often passed over) is kept.
   */
  async scan(skip: ReadonlySet<number>, held: (id: number) => boolean): Promise<void> {
    this.scanning = true;
    const t0 = Date.now();
    try {
      const scan = await scanQueue(this.cfg.setupDir, {
        plan: this.cfg.plan,
        steal: this.cfg.steal,
        skip,
        now: this.cfg.now(),
        claimState: (dir) => {
          const c = inspectClaim(dir, this.claimOpts);
          if (c === null || c.stale) return 'stale';
          // A healthy owner refreshes every heartbeat; one silent for half a lease may be dead.
          return c.ageMs > this.cfg.leaseMs / 2 ? 'suspect' : 'live';
        },
      });
      const old = new Map(
        this.queue
          .slice(this.head)
          .filter((c) => !c.gone)
          .map((c) => [c.id, c]),
      );
      this.queue = scan.candidates
        .filter((c) => !held(c.id))
        .map((c) => {
          const o = old.get(c.id);
          return o && o.step === c.step ? o : c;
        });
      this.head = 0;
      this.pending = scan.pending;
      this.suspects = scan.suspects;
      if (scan.workers > 1 && this.workersSaid !== scan.workers) {
        this.workersSaid = scan.workers;
        this.cfg.log(`scans read the status files with ${scan.workers} threads (a network file system, or ${ENV.scanWorkers})`);
      }
      if (scan.summaryProblem !== this.summaryProblemSaid) {
        this.summaryProblemSaid = scan.summaryProblem;
        if (scan.summaryProblem) this.cfg.log(`scans read every status file: the summary of finished runs cannot be trusted (${scan.summaryProblem}); \`themis doctor\` rebuilds it`);
      }
      this.lastScanAt = Date.now();
      this.lastScanMs = this.lastScanAt - t0;
      for (const p of scan.problems) {
        if (this.problemsLogged.has(p.id)) continue;
        this.problemsLogged.add(p.id);
        this.cfg.log(`run ${p.id} skipped: ${p.problem}`);
      }
    } finally {
      this.scanning = false;
    }
  }

  /** At least `ms` since the last scan, and at least 60 times as long as that scan took (< 2% CPU). */
  due(ms: number): boolean {
    return Date.now() - this.lastScanAt >= Math.max(ms - 5, this.lastScanMs * 60);
  }

  /** The first `windowSize` candidates not yet taken, their records loaded (unreadable ones dropped). */
  window(): LoadedCandidate[] {
    const out: LoadedCandidate[] = [];
    while (this.head < this.queue.length && this.queue[this.head]!.gone) this.head++;
    for (let i = this.head; i < this.queue.length && out.length < this.windowSize; i++) {
      const c = this.queue[i]!;
      if (c.gone) continue;
      if (!loadCandidate(c)) {
        c.gone = true;
        continue;
      }
      out.push(c);
    }
    return out;
  }
}
