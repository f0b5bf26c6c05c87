import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { GEN_ALLOCATION_FLAGS, LSF_FLAVORS, allocationProblems, type LsfFlavor } from '../model/allocation.js';
import { ThemisError, describeFsError, throwIfProblems } from '../model/errors.js';
import { CompositeRun, Run, Step, parseIntField, parseMinutes, type AnyRun } from '../model/run.js';
import { parseSamples, parseStepsCsv, varyAll, type VaryAllResources } from '../model/samples.js';
import { DEFAULT_ALLOCATION, addRuns, generateEnsemble, type GenerateReport, type LsfChoice } from '../render/generate.js';
import { formatCommand } from '../schedulers/commands.js';
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { readEnsemble, type AllocationSettings, type EnsembleRecord, type SchedulerName } from '../store/records.js';
import type { EstimateInput } from '../api/estimate.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import { progressLine, type Output } from './output.js';

interface RunArgs extends GlobalOptions {
  samples?: string;
  args?: string;
  ntasks?: string;
  coresPerTask?: string;
  gpusPerTask?: string;
  timeout?: string;
  varyAll: boolean;
  steps?: string;
  batchScript: boolean;
}

interface AutoArgs {
  runtime?: string;
  runtimeColumn?: string;
  coresPerNode?: string;
}

interface GenArgs extends RunArgs, AutoArgs {
  application?: string;
  scheduler?: string;
  nodes?: string;
  walltime?: string;
  partition?: string;
  bank?: string;
  name?: string;
  allocations?: string;
  repeats?: string;
  earlyStop?: string;
  template?: string;
  gpusPerNode?: string;
  lsfFlavor?: string;
  maxRestarts?: string;
  maxFailedRuns?: string;
  abortOn?: string | string[];
  interface?: string;
  overwrite: boolean;
  resume: boolean;
  parse?: string | string[];
  copy?: string | string[];
  symlink?: string | string[];
  runDirNames?: string;
  keepUnknownTokens: boolean;
}

function runOptions(y: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return y
    .option('args', { alias: 'a', type: 'string', describe: 'arguments for the application (split like a shell; values starting with - work: -a "-x 1")' })
    .option('ntasks', { alias: 'n', type: 'string', describe: 'MPI tasks per run [default: 1]' })
    .option('cores-per-task', { alias: 'c', type: 'string', describe: 'cores per task [default: 1]' })
    .option('gpus-per-task', { alias: 'g', type: 'string', describe: 'GPUs per task [default: 0]' })
    .option('timeout', { type: 'string', describe: 'minutes a run may take (0.5 = 30 s; 0 = no limit) [default: 0]' })
    .option('vary-all', { type: 'boolean', default: false, describe: 'take args, tasks, cores_per_task, gpus_per_task, timeout from same-named sample columns' })
    .option('steps', { type: 'string', describe: 'STEPS.csv: composite runs (columns args,tasks,cores_per_task,gpus_per_task,timeout,batch_script,cwd); no application then' })
    .option('batch-script', { type: 'boolean', default: true, describe: 'the program is a script to parse for %%tokens%% (--no-batch-script for a compiled program)' });
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
}

function num(raw: string | undefined, flag: string, min: number, problems: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const n = parseIntField(String(raw), flag, min);
  if (typeof n === 'string') {
    problems.push(`--${flag}: ${n.replace(/^[^:]*: /, '')}`);
    return undefined;
  }
  return n;
}

function minutes(raw: string | undefined, flag: string, problems: string[]): number | undefined {
  if (raw === undefined) return undefined;
  const n = parseMinutes(String(raw), `--${flag}`);
  if (typeof n === 'string') {
    problems.push(n);
    return undefined;
  }
  return n;
}

/** A number flag's text as a number when it reads as one, else as typed (for `allocationProblems` to name). */
function asNumber(raw: string): number | string {
  return /^\s*[+]?(\d+(\.\d*)?|\.\d+)\s*$/.test(String(raw)) ? Number(raw) : String(raw);
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ThemisError('INPUT', `${what} ${file}: cannot read: ${describeFsError(e)}`, { cause: e });
  }
}

/** Runs from a samples file and the run options; `hasApplication` says whether Runs or CompositeRuns. */
function buildRuns(argv: RunArgs, hasApplication: boolean): AnyRun[] {
  const problems: string[] = [];
  const defaults: VaryAllResources = {
    args: null,
    tasks: num(argv.ntasks, 'ntasks', 1, problems) ?? 1,
    coresPerTask: num(argv.coresPerTask, 'cores-per-task', 0, problems) ?? 1,
    gpusPerTask: num(argv.gpusPerTask, 'gpus-per-task', 0, problems) ?? 0,
    timeout: minutes(argv.timeout, 'timeout', problems) ?? 0,
  };
  throwIfProblems('USAGE', 'bad options', problems);
  const parsed = argv.samples ? parseSamples(readText(argv.samples, 'samples file'), argv.samples) : { keys: [], samples: [], lines: [] };
  if (argv.steps) {
    // --no-batch-script is the default for steps whose batch_script cell is empty.
    const specs = parseStepsCsv(readText(argv.steps, 'steps file'), argv.steps, { batchScript: argv.batchScript });
    const final = specs.map((s) => new Step(s.args, s));
    return parsed.samples.map((s) => new CompositeRun(s, final));
  }
  if (!hasApplication) throw new ThemisError('USAGE', 'no application: name one (themis gen APPLICATION SAMPLES) or give --steps STEPS.csv');
  const args = argv.args !== undefined ? splitArgsOption(argv.args) : [];
  const runs = parsed.samples.map((sample, i) => {
    const r = argv.varyAll ? varyAll(sample, { ...defaults, args }, `${argv.samples}:${parsed.lines[i]}`, problems) : { ...defaults, args };
    return new Run(sample, r.args ?? args, r);
  });
  throwIfProblems('INPUT', `${argv.samples}: bad --vary-all values`, problems);
  return runs;
}

function splitArgsOption(raw: string): string[] {
  return new Run({}, raw).args;
}

/** The options `--nodes auto` / `--allocations auto` plan with (see `themis plan`). */
function autoOptions(y: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return y
    .option('runtime', { type: 'string', describe: 'with auto: the estimate for every step (90s, 5m, 1.5h)' })
    .option('runtime-column', { type: 'string', describe: "with auto: the sample column holding each run's duration" })
    .option('cores-per-node', {
      type: 'string',
      describe: "cores of one node: classic LSF's job slots per host (-n, span[ptile]); what auto plans with [default: the last packer's nodes, else this machine]",
    });
}

function allocationOptions(y: Argv<GlobalOptions>): Argv<GlobalOptions> {
  return autoOptions(y)
    .option('scheduler', { type: 'string', choices: SCHEDULER_NAMES as string[], describe: 'batch system [default: detected from sbatch, bsub, flux on PATH, else local]' })
    .option('nodes', { alias: 'N', type: 'string', describe: 'nodes per allocation, or auto: as `themis plan` recommends for --walltime [default: 1]' })
    .option('walltime', { alias: 't', type: 'string', describe: "minutes per allocation [default: the scheduler's]" })
    .option('partition', { alias: 'p', type: 'string', describe: 'partition (queue)' })
    .option('bank', { alias: 'b', type: 'string', describe: 'bank (account)' })
    .option('name', { alias: 'm', type: 'string', describe: 'job name [default: themis]' })
    .option('allocations', { type: 'string', describe: 'how many allocations (batch scripts) to split the runs over, or auto (with --walltime) [default: 1]' })
    .option('repeats', { type: 'string', describe: 'resubmit an allocation this many times when it ends with work left [default: 0]' })
    .option('early-stop', { type: 'string', describe: 'minutes before the end of an allocation when no new run starts [default: 0]' })
    .option('template', { type: 'string', describe: 'your own Handlebars batch-script template' })
    .option('gpus-per-node', { type: 'string', describe: 'GPUs per node to ask for [default: what the runs need]' })
    .option('lsf-flavor', {
      type: 'string',
      choices: LSF_FLAVORS as string[],
      describe: 'which LSF: classic (bsub -n slots, blaunch) or csm (IBM CSM: -nnodes, jsrun) [default: csm where jsrun or lrun is on PATH, else classic]',
    });
}

/** `themis gen APPLICATION [SAMPLES]` (alias `create`): render every run directory and the batch scripts. */
export function genCommand(output: Output): CommandBody<GlobalOptions, GenArgs> {
  return {
    builder: (y) =>
      allocationOptions(runOptions(y))
        .option('max-restarts', { type: 'string', describe: 'restarts per failed run (-1 = unlimited) [default: 0]' })
        .option('max-failed-runs', { type: 'string', describe: 'stop starting runs after this many failed [default: unlimited]' })
        .option('abort-on', { type: 'string', describe: 'exit code that aborts a run without restarts (repeatable, or 3,4)' })
        .option('interface', { type: 'string', describe: 'application interface module (prepRun, postRun, … hooks)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'remove an existing ensemble (and its run directories) first' })
        .option('resume', { type: 'boolean', default: false, describe: 'keep an existing ensemble and render only what is missing' })
        .option('parse', { type: 'string', describe: 'file (or glob) to copy into each run directory with %%tokens%% replaced (repeatable)' })
        .option('copy', { type: 'string', describe: 'file, directory or glob to copy into each run directory (repeatable)' })
        .option('symlink', { type: 'string', describe: 'file, directory or glob to symlink into each run directory (repeatable)' })
        .option('run-dir-names', { alias: 'r', type: 'string', describe: 'run directory template: {run_id}, {run_id:05}, {sample_key} [default: runs/{run_id}]' })
        .option('keep-unknown-tokens', { type: 'boolean', default: false, describe: 'leave %%tokens%% with no sample value as they are instead of failing' })
        .example('$0 gen ./sim.sh samples.csv --parse deck.in -n 4', 'one run per row of samples.csv')
        .example('$0 gen --steps steps.csv samples.csv --scheduler slurm -N 2 -t 60', 'composite runs, a 2-node Slurm allocation') as never,
    handler: async (argv) => {
      let application = argv.application;
      let samples = argv.samples;
      if (argv.steps) {
        if (samples !== undefined) throw new ThemisError('USAGE', 'with --steps there is no application: themis gen --steps STEPS.csv SAMPLES');
        samples = application;
        application = undefined;
      } else if (application === undefined) {
        throw new ThemisError('USAGE', 'name the application: themis gen APPLICATION [SAMPLES] (or --steps STEPS.csv SAMPLES)');
      }
      const runs = buildRuns({ ...argv, samples }, application !== undefined);
      const auto = await autoAllocation(output, argv, runs, application ?? null, null);
      if (auto) {
        argv.nodes = String(auto.nodes);
        argv.allocations = String(auto.allocations);
      }
      const problems: string[] = [];
      // Numbers as numbers, anything else as typed: the model's check names the flag either way.
      const allocation = {
        ...(argv.nodes !== undefined && { nodes: asNumber(argv.nodes) }),
        ...(argv.walltime !== undefined && { walltime: asNumber(argv.walltime) }),
        ...(argv.partition !== undefined && { partition: argv.partition }),
        ...(argv.bank !== undefined && { bank: argv.bank }),
        ...(argv.name !== undefined && { name: argv.name }),
        ...(argv.allocations !== undefined && { allocations: asNumber(argv.allocations) }),
        ...(argv.repeats !== undefined && { repeats: asNumber(argv.repeats) }),
        ...(argv.earlyStop !== undefined && { earlyStop: asNumber(argv.earlyStop) }),
        ...(argv.template !== undefined && { template: argv.template }),
        ...(argv.gpusPerNode !== undefined && { gpusPerNode: asNumber(argv.gpusPerNode) }),
        ...(argv.lsfFlavor !== undefined && { lsfFlavor: argv.lsfFlavor as LsfFlavor }),
        ...(argv.coresPerNode !== undefined && { coresPerNode: asNumber(argv.coresPerNode) }),
      } as Partial<AllocationSettings>;
      // The scheduler-dependent checks (classic LSF needs --cores-per-node) come once it is known.
      problems.push(...allocationProblems({ ...DEFAULT_ALLOCATION, ...allocation }, GEN_ALLOCATION_FLAGS));
      let maxRestarts: number | undefined;
      if (argv.maxRestarts !== undefined) maxRestarts = String(argv.maxRestarts).trim() === '-1' ? -1 : num(argv.maxRestarts, 'max-restarts', 0, problems);
      const maxFailedRuns = num(argv.maxFailedRuns, 'max-failed-runs', 0, problems);
      const abortOn = list(argv.abortOn)
        .flatMap((v) => v.split(','))
        .map((v) => num(v, 'abort-on', 1, problems) ?? 0);
      throwIfProblems('USAGE', 'bad options', problems);
      const bar = progressLine(output, 'rendering runs', runs.length);
      const report = await generateEnsemble({
        setupDir: argv.setupDir,
        application: application ?? null,
        appIsBatchScript: argv.batchScript,
        runs,
        parse: list(argv.parse),
        copy: list(argv.copy),
        symlink: list(argv.symlink),
        ...(argv.runDirNames !== undefined && { runDirNames: argv.runDirNames }),
        ...(maxRestarts !== undefined && { maxRestarts }),
        maxFailedRuns: maxFailedRuns ?? null,
        abortOn,
        interface: argv.interface ?? null,
        ...(argv.scheduler !== undefined && { scheduler: argv.scheduler as SchedulerName }),
        allocation: allocation as never,
        keepUnknownTokens: argv.keepUnknownTokens,
        overwrite: argv.overwrite,
        resume: argv.resume,
        onProgress: (n) => bar.tick(n),
      });
      bar.done();
      printReport(output, report, argv.json);
    },
  };
}

/** `themis add SAMPLES`: append runs to an existing ensemble (safe while packers run). */
export function addCommand(output: Output): CommandBody<GlobalOptions, RunArgs & AutoArgs & { nodes?: string; allocations?: string; walltime?: string }> {
  return {
    builder: (y) =>
      autoOptions(runOptions(y))
        .option('nodes', { type: 'string', describe: 'auto: size the allocations again for all queued runs, as `themis plan` recommends for --walltime' })
        .option('allocations', { type: 'string', describe: 'auto (with --walltime): choose how many allocations (they only grow)' })
        .option('walltime', { type: 'string', describe: "minutes per allocation, with auto [default: the ensemble's]" })
        .example('$0 add more.csv', "one new run per row, with the ensemble's application")
        .example('$0 add more.csv --nodes auto --walltime 60', 'and size the batch scripts for what is queued now')
        .example('$0 add --steps steps.csv more.csv', 'new composite runs') as never,
    handler: async (argv) => {
      if (argv.samples === undefined) throw new ThemisError('USAGE', 'name the samples file: themis add SAMPLES');
      const ens = readEnsemble(argv.setupDir);
      if (!argv.steps && ens.application === null) {
        throw new ThemisError('USAGE', `the ensemble in ${path.resolve(argv.setupDir)} has no application (it was made with --steps); pass --steps STEPS.csv`);
      }
      const runs = buildRuns(argv, true);
      for (const [flag, v] of [
        ['nodes', argv.nodes],
        ['allocations', argv.allocations],
      ] as const) {
        if (v !== undefined && String(v).trim().toLowerCase() !== 'auto') throw new ThemisError('USAGE', `themis add --${flag} takes only auto (the ensemble's other settings are gen's)`);
      }
      const auto = await autoAllocation(output, argv, runs, ens.application, { setupDir: argv.setupDir, ens });
      const bar = progressLine(output, 'rendering runs', runs.length);
      const allocation = auto ? { nodes: auto.nodes, allocations: auto.allocations, ...(argv.walltime !== undefined && { walltime: Number(argv.walltime) }) } : undefined;
      const report = await addRuns(argv.setupDir, runs, { onProgress: (n) => bar.tick(n), ...(allocation && { allocation }) });
      bar.done();
      printReport(output, report, argv.json);
    },
  };
}

/** "classic (detected: no `jsrun` or `lrun` on PATH; --lsf-flavor csm for IBM CSM)". */
function describeLsfChoice(c: LsfChoice): string {
  const other = c.flavor === 'classic' ? 'csm for IBM CSM' : 'classic for LSF without CSM';
  if (c.source === 'detected') return `${c.flavor} (detected: ${c.why}; --lsf-flavor ${other})`;
  return `${c.flavor} (${c.source === 'option' ? '--lsf-flavor' : 'as recorded in ensemble.json'})`;
}

/** One report model, two renderers: the text below and --json. */
function printReport(output: Output, r: GenerateReport, json: boolean): void {
  const ids = r.runIds;
  const range = ids.length === 0 ? 'none' : ids.length === 1 ? `${ids[0]}` : `${ids[0]}-${ids[ids.length - 1]}`;
  if (json) {
    const scripts = r.batchScripts.map((b) => ({ allocation: b.allocation, path: b.path, runs: b.runIds.length, submit: b.submit, command: formatCommand(b.submit) }));
    output.out(JSON.stringify({ ...r, runIds: undefined, runs: { count: ids.length, first: ids[0] ?? null, last: ids[ids.length - 1] ?? null }, batchScripts: scripts }, null, 2));
    return;
  }
  const verb = { created: 'created', overwritten: 'replaced', resumed: 'resumed', added: 'added runs to' }[r.action];
  output.out(`${verb} the ensemble in ${r.setupDir} (scheduler ${r.scheduler})`);
  if (r.lsf) output.out(`  LSF flavour: ${describeLsfChoice(r.lsf)}`);
  if (r.action === 'resumed') output.out("  (--resume keeps the existing ensemble's settings; ensemble options given now are not applied)");
  output.out(`  ${ids.length} run${ids.length === 1 ? '' : 's'} rendered (ids ${range})${r.skipped ? `, ${r.skipped} already on disk` : ''}; ${r.totalRuns} in total`);
  output.out(`  batch script${r.batchScripts.length === 1 ? '' : 's'}:`);
  for (const b of r.batchScripts) output.out(`    ${b.path}  (${b.runIds.length} runs planned)`);
  output.out('submit with `themis submit`, or by hand:');
  for (const b of r.batchScripts) output.out(`  ${formatCommand(b.submit)}`);
}

/**
 * `--nodes auto` / `--allocations auto`: plan the runs about to be written (the same plan as
 * `themis plan`, with the durations it can get: `--runtime`, `--runtime-column`, or for `add`
 * what the ensemble measured) and say what was chosen and why. Null when neither is auto.
 */
async function autoAllocation(
  output: Output,
  argv: AutoArgs & { nodes?: string; allocations?: string; walltime?: string; gpusPerNode?: string; setupDir: string },
  runs: AnyRun[],
  application: string | null,
  existing: { setupDir: string; ens: EnsembleRecord } | null,
): Promise<{ nodes: number; allocations: number } | null> {
  const isAuto = (v: string | undefined) => v !== undefined && String(v).trim().toLowerCase() === 'auto';
  if (!isAuto(argv.nodes) && !isAuto(argv.allocations)) return null;
  const { chooseAllocation, nodeShape, policyOf } = await import('../api/plan.js');
  const fixed = (v: string | undefined, flag: string, dflt: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new ThemisError('USAGE', `--${flag} ${v}: give a whole number >= 1, or auto`);
    return n;
  };
  const walltime = argv.walltime === undefined ? (existing?.ens.allocation.walltime ?? 0) : Number(argv.walltime);
  const steps = (r: AnyRun) => (r instanceof Run ? r.toSteps(application ?? '/bin/true', false) : r.toSteps());
  let todo: EstimateInput[] = runs.map((r, i) => ({ id: -(i + 1), sample: r.sample, steps: steps(r), status: null }));
  let all = todo;
  if (existing) {
    // `add`: size for everything queued (what is there and what comes), measured by what finished.
    const { scanRunsParallel, readExportsParallel } = await import('../api/scan-parallel.js');
    const { runs: states } = await scanRunsParallel(existing.setupDir);
    const ex = await readExportsParallel(existing.ens.root, states);
    const byId = new Map(states.map((s) => [s.id, s.status]));
    all = ex.map((e) => ({ id: e.id, sample: e.sample, steps: e.steps, status: byId.get(e.id) ?? null }));
    todo = [...all.filter((r) => r.status?.status === 'queued'), ...todo];
  }
  const base = existing ? policyOf(existing.ens) : { maxRestarts: 0, abortOn: [], earlyStop: 0, walltime, allocations: 1 };
  const gpus = argv.gpusPerNode !== undefined ? Number(argv.gpusPerNode) : undefined;
  const coresPerNode = argv.coresPerNode !== undefined ? Number(argv.coresPerNode) : (existing?.ens.allocation.coresPerNode ?? undefined);
  if (coresPerNode !== undefined && !(Number.isInteger(coresPerNode) && coresPerNode >= 1)) {
    throw new ThemisError('USAGE', `--cores-per-node: must be an integer >= 1, got ${JSON.stringify(argv.coresPerNode)}; give the cores of one node of the cluster`);
  }
  const choice = chooseAllocation(
    {
      setupDir: existing?.setupDir ?? null,
      all,
      todo,
      policy: { ...base, walltime },
      node: nodeShape(existing?.setupDir ?? null, { ...(coresPerNode !== undefined && { coresPerNode }), ...(gpus !== undefined && { gpusPerNode: gpus }) }),
    },
    {
      nodes: isAuto(argv.nodes) ? 'auto' : fixed(argv.nodes, 'nodes', existing?.ens.allocation.nodes ?? 1),
      allocations: isAuto(argv.allocations) ? 'auto' : fixed(argv.allocations, 'allocations', existing?.ens.allocation.allocations ?? 1),
      walltime,
      ...(argv.runtime !== undefined && { runtime: argv.runtime }),
      ...(argv.runtimeColumn !== undefined && { runtimeColumn: argv.runtimeColumn }),
    },
  );
  output.out(`${isAuto(argv.nodes) ? '--nodes auto' : ''}${isAuto(argv.nodes) && isAuto(argv.allocations) ? ' / ' : ''}${isAuto(argv.allocations) ? '--allocations auto' : ''}: ${choice.said}`);
  return { nodes: choice.nodes, allocations: choice.allocations };
}
