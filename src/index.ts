/** The themis library: re-exports the public API and its types, nothing else. */
export { ThemisError, type ThemisErrorCode } from './model/errors.js';
export { RUN_STATUSES, type RunStatus } from './model/status.js';
export type { StepSpec, Sample, SampleValue, StepOptions } from './model/step.js';
