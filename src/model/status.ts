/** Run statuses. `running` means claimed by a live packer; the rest are as in the seed. */
export const RUN_STATUSES = ['queued', 'running', 'successful', 'failed', 'killed', 'aborted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Statuses that count as completed for `progress()` (aborted included, unlike the seed). */
export const COMPLETED_STATUSES: readonly RunStatus[] = ['successful', 'failed', 'killed', 'aborted'];

export function isRunStatus(value: string): value is RunStatus {
  return (RUN_STATUSES as readonly string[]).includes(value);
}

export function isCompleted(status: RunStatus): boolean {
  return COMPLETED_STATUSES.includes(status);
}
