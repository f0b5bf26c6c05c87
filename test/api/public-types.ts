/**
 * Compile-time checks of the public API (checked by types.test.ts, which runs tsc on this file).
 * Each line states a type users rely on; a change that breaks one is a breaking change.
 */
import { expectTypeOf } from 'vitest';
import {
  CompositeRun,
  Run,
  Step,
  Themis,
  type ThemisError,
  parseFile,
  resultFromFile,
  sample,
  setResult,
  type CreateOptions,
  type ExportedRun,
  type HookContext,
  type LocalExecution,
  type OpReport,
  type OpenOptions,
  type RunStatus,
  type StatusReport,
} from '../../src/index.js';

expectTypeOf(Themis.open).parameters.toEqualTypeOf<[setupDir?: string, options?: OpenOptions]>();
expectTypeOf(Themis.open).returns.toEqualTypeOf<Themis>(); // synchronous, for hooks
expectTypeOf(Themis.exists).returns.toEqualTypeOf<boolean>();
expectTypeOf(Themis.create).parameter(0).toEqualTypeOf<CreateOptions>();
expectTypeOf(Themis.create).returns.toEqualTypeOf<Promise<Themis>>();
expectTypeOf(Themis.createOverwrite).returns.toEqualTypeOf<Promise<Themis>>();
expectTypeOf(Themis.createResume).returns.toEqualTypeOf<Promise<Themis>>();

expectTypeOf(Themis.RUN_QUEUED).toEqualTypeOf<'queued'>();
expectTypeOf(Themis.RUN_SUCCESS).toEqualTypeOf<'successful'>();
expectTypeOf(Themis.RUN_FAILURE).toEqualTypeOf<'failed'>();
expectTypeOf(Themis.RUN_ABORTED).toEqualTypeOf<'aborted'>();
expectTypeOf(Themis.RUN_KILLED).toEqualTypeOf<'killed'>();
expectTypeOf(Themis.RUN_RUNNING).toEqualTypeOf<'running'>();
expectTypeOf<RunStatus>().toEqualTypeOf<'queued' | 'running' | 'successful' | 'failed' | 'killed' | 'aborted'>();

declare const t: Themis;
expectTypeOf(t.filterByStatus).parameters.toEqualTypeOf<RunStatus[]>();
expectTypeOf(t.filterByStatus).returns.toEqualTypeOf<Promise<number[]>>();
expectTypeOf(t.countByStatus).returns.toEqualTypeOf<Promise<number>>();
expectTypeOf(t.progress).returns.toEqualTypeOf<Promise<[number, number]>>();
expectTypeOf(t.requeueRuns).returns.toEqualTypeOf<Promise<OpReport>>();
expectTypeOf(t.dequeueRuns).returns.toEqualTypeOf<Promise<OpReport>>();
expectTypeOf(t.addRuns).parameter(0).toEqualTypeOf<Iterable<Run | CompositeRun>>();
expectTypeOf(t.addRuns).returns.toEqualTypeOf<Promise<number[]>>();
expectTypeOf(t.runDirs).returns.toEqualTypeOf<Promise<[number, string][]>>();
expectTypeOf(t.asRecords).returns.toEqualTypeOf<Promise<Record<string, unknown>[]>>();
expectTypeOf(t.executeLocal).returns.toEqualTypeOf<Promise<LocalExecution>>();
expectTypeOf(t.executeAlloc).returns.toEqualTypeOf<Promise<string>>();
expectTypeOf(t.callPostRun).returns.toEqualTypeOf<Promise<unknown>>();
expectTypeOf(t.interfaceHooks).returns.toEqualTypeOf<Promise<('prepEnsemble' | 'prepRun' | 'postRun' | 'postEnsemble')[]>>();
expectTypeOf(t.setResult).parameters.toEqualTypeOf<[id: number, result: unknown]>();
expectTypeOf(t.writeCsv).parameter(0).toMatchTypeOf<{ write(chunk: string): unknown }>();
// process.stdout is an acceptable sink.
void t.writeJson(process.stdout);
// @ts-expect-error status names are checked
void t.filterByStatus('done');

// Model classes keep the seed's positional order, then an options object.
expectTypeOf(new Step('/bin/app -x', { tasks: 2, coresPerTask: 4, gpusPerTask: 1, timeout: 0.5, batchScript: false, cwd: 'sub' })).toEqualTypeOf<Step>();
expectTypeOf(new Run({ x: 1 }, '-x 1', { tasks: 2 })).toEqualTypeOf<Run>();
expectTypeOf(new CompositeRun({ x: 1 }, [new Step(['/bin/app'])])).toEqualTypeOf<CompositeRun>();

expectTypeOf<ExportedRun['run_id']>().toEqualTypeOf<number>();
expectTypeOf<StatusReport['counts']>().toEqualTypeOf<Record<RunStatus, number>>();
expectTypeOf<HookContext['runId']>().toEqualTypeOf<number | null>();
expectTypeOf<HookContext['themis']>().toEqualTypeOf<Themis | null>();
expectTypeOf<HookContext['stopEnsemble']>().toEqualTypeOf<() => void>();
expectTypeOf<ThemisError['exitCode']>().toEqualTypeOf<number>();

// Runtime calls.
expectTypeOf(sample('k')).toEqualTypeOf<unknown>();
expectTypeOf(setResult).returns.toEqualTypeOf<Promise<void>>();
expectTypeOf(resultFromFile).returns.toEqualTypeOf<Promise<unknown>>();
expectTypeOf(parseFile).returns.toEqualTypeOf<Promise<void>>();
