import type { PlanOptions } from './plan.js';

/** What the loop needs, resolved from the command line and the allocation (see runPacker). */
export interface PackerConfig {
  setupDir: string;
  /** This allocation's planned run ids, started first. */
  plan: number[];
  /** Also take runs planned for other allocations (off: `--no-steal`). */
  steal: boolean;
  jobId: string | null;
  leaseMs: number;
  heartbeatMs: number;
  rescanMs: number;
  /** Between SIGTERM and SIGKILL when a step is stopped. */
  graceMs: number;
  planOptions: PlanOptions;
  /** The packer's clock in epoch ms (shifted by THEMIS_CLOCK_OFFSET_MS in tests). */
  now(): number;
  log(line: string): void;
  onHeartbeat(): void;
  /** Called when a step starts or a run settles (for live progress lines; keep it cheap). */
  onChange?(): void;
}

export interface PackerCounts {
  started: number;
  successful: number;
  failed: number;
  aborted: number;
  killed: number;
  requeued: number;
}
