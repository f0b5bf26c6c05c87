/** The themis library: re-exports the public API and its types, nothing else. */
export { ThemisError, type ThemisErrorCode } from './model/errors.js';
export { RUN_STATUSES, type RunStatus } from './model/status.js';
export type { StepSpec, Sample, SampleValue, StepOptions } from './model/step.js';
export { Step, Run, CompositeRun, type RunOptions, type AnyRun } from './model/run.js';
export {
  Themis,
  type TextSink,
  type OnCompletionOptions,
  type OpReport,
  type ClearOptions,
  type ClearReport,
  type CreateOptions,
  type ExecuteLocalOptions,
  type ExecuteAllocOptions,
  type DryRunOptions,
  type LocalExecution,
  type HookContext,
  type OpenOptions,
} from './api/themis.js';
export type { StatusScan, SummaryUse } from './store/status-scan.js';
export type { ExportedRun, ExportedStep } from './api/export.js';
export type { StatusReport, PackerStatus } from './api/report.js';
export { gatherStatus } from './api/report.js';
export { currentRun, sample, setResult, resultFromFile, parseFile, type CurrentRun, type RuntimeOptions } from './api/runtime.js';
export type { HookName } from './pack/hooks.js';
export { runPacker, spawnPacker, type PackerOptions, type PackerSummary, type PackerProgress } from './pack/index.js';
