/** Messages between the packer and its launcher child (JSON over the IPC channel). */

export type StopReason = 'timeout' | 'dequeue' | 'interrupt' | 'lost-claim';

export interface SpawnRequest {
  /** Unique per launch: `<runId>:<step>:<attempt>`. */
  key: string;
  runId: number;
  step: number;
  attempt: number;
  argv: string[];
  cwd: string;
  /** Added to the launcher's own environment (which is the packer's). */
  env: Record<string, string>;
  logName: string;
  pidFile: string;
  exitFile: string;
  /** 0 = no limit. */
  timeoutMs: number;
}

/** `.themis/exit-<step>-<attempt>.json`: how a step ended, written by the launcher. */
export interface ExitRecord {
  format: number;
  runId: number;
  step: number;
  attempt: number;
  code: number | null;
  signal: string | null;
  stoppedBy: StopReason | null;
  startedAt: string;
  endedAt: string;
  host: string;
  pid: number;
}

export type ParentMessage =
  | { t: 'init'; graceMs: number }
  | { t: 'spawn'; req: SpawnRequest }
  | { t: 'kill'; key: string; reason: StopReason }
  | { t: 'shutdown' };

export type ChildMessage =
  | { t: 'ready'; pid: number }
  | { t: 'started'; key: string; pid: number; startedAt: string }
  | { t: 'exit'; key: string; exit: ExitRecord };
