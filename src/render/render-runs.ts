import fs from 'node:fs';
import path from 'node:path';
import { ThemisError, describeFsError, throwIfProblems } from '../model/errors.js';
import { CompositeRun, Run, runProblems, type AnyRun } from '../model/run.js';
import type { Sample, StepSpec } from '../model/step.js';
import type { LsfFlavor } from '../model/allocation.js';
import { getAdapter } from '../schedulers/index.js';
import { FORMAT_VERSION, RUN_LOG, RUN_META_DIR, STATUS_SPARE } from '../store/layout.js';
import { newStatus, type RunRecord, type SchedulerName } from '../store/records.js';
import { quoteShell } from '../model/quote.js';
import { renderLaunchToken } from './launch-token.js';
import { resolveProgram } from './program.js';
import { compileRunDirTemplate, isInside, planRunDirs } from './run-dirs.js';
import { loadRunFiles, loadScriptTemplate, type RunFiles } from './sources.js';
import type { Stage } from './stage.js';
import { BUILTIN_TOKENS, LAUNCH_TOKEN, renderTemplate, unknownHeading, valueText, type TokenTemplate } from './tokens.js';

/** What rendering runs needs from the ensemble. */
export interface RenderContext {
  root: string;
  setupDir: string;
  application: string | null;
  appIsBatchScript: boolean;
  scheduler: SchedulerName;
  /** LSF only: the flavour whose launcher `%%themis_launch%%` names (null: csm). */
  lsfFlavor?: LsfFlavor | null;
  runDirNames: string;
  parse: readonly string[];
  copy: readonly string[];
  symlink: readonly string[];
  keepUnknownTokens: boolean;
  env: NodeJS.ProcessEnv;
}

/** A batch-script step's rendered copy: one per (script, launcher prefix) pair. */
interface ScriptUse {
  src: string;
  name: string;
  template: TokenTemplate;
  mode: number;
  launch: string;
}

export interface PreparedRun {
  id: number;
  sample: Sample;
  steps: StepSpec[];
  dir: string;
  scripts: ScriptUse[];
}

export interface PreparedBatch {
  runs: PreparedRun[];
  files: RunFiles;
}

const BUILTINS = new Set<string>(BUILTIN_TOKENS);
/** Shared by every run without batch-script steps (100,000 empty arrays add up). */
const NO_SCRIPTS: ScriptUse[] = [];

/**
 * Check everything about a batch of new runs before anything is written: fields, programs,
 * directory names and collisions (with `existing` too), files in the way, run files, and every
 * unknown token. Throws one error listing all problems of the first kind found.
 */
export function prepareRuns(ctx: RenderContext, runs: readonly AnyRun[], ids: readonly number[], existing: ReadonlyMap<string, number>, replaceable: ReadonlySet<string>): PreparedBatch {
  const problems: string[] = [];
  const programs = new Map<string, string | Error>();
  const programProblems = new Map<string, number[]>();
  const resolve = (name: string, id: number, where: string): string => {
    let r = programs.get(name);
    if (r === undefined) {
      try {
        r = resolveProgram(name, where, { cwd: ctx.root, env: ctx.env });
      } catch (e) {
        r = e as Error;
      }
      programs.set(name, r);
    }
    if (typeof r === 'string') return r;
    const ids = programProblems.get(r.message) ?? [];
    if (ids.length < 5) ids.push(id);
    programProblems.set(r.message, ids);
    return name;
  };
  const stepsOf: StepSpec[][] = new Array(runs.length);
  for (let i = 0; i < runs.length; i++) {
    const run = runs[i]!;
    const id = ids[i]!;
    let steps: StepSpec[];
    if (run instanceof Run) {
      if (ctx.application === null) {
        problems.push(`run ${id}: a Run uses the ensemble's application, but none was given; pass one, or use CompositeRun with Steps`);
        steps = [];
      } else {
        steps = run.toSteps(ctx.application, ctx.appIsBatchScript);
      }
    } else if (run instanceof CompositeRun) {
      steps = run.toSteps();
      steps.forEach((s, k) => {
        if (s.args.length > 0 && s.args[0] !== '') s.args[0] = resolve(s.args[0]!, id, `step ${k + 1} program`);
      });
    } else {
      problems.push(`run ${id}: not a Run or CompositeRun (got ${typeof run}); build runs with new Run(...) or new CompositeRun(...)`);
      steps = [];
    }
    problems.push(...runProblems(id, run?.sample, steps));
    stepsOf[i] = steps;
  }
  for (const [msg, ids] of programProblems) problems.push(`run${ids.length > 1 ? 's' : ''} ${ids.join(', ')}${ids.length >= 5 ? ', …' : ''}: ${msg}`);
  throwIfProblems('VALIDATION', `${problems.length} problem${problems.length === 1 ? '' : 's'} in the runs`, problems);

  const template = compileRunDirTemplate(ctx.runDirNames);
  const inputs = runs.map((r, i) => ({ id: ids[i]!, sample: r.sample }));
  const dirs = planRunDirs(template, ctx.root, ctx.setupDir, inputs, existing);
  for (let i = 0; i < dirs.length; i++) {
    const d = dirs[i]!;
    if (!replaceable.has(d) && fs.existsSync(d)) {
      problems.push(`run ${ids[i]}: run directory ${d} exists already and is not part of this ensemble; move it away or change --run-dir-names`);
    }
  }
  throwIfProblems('EXISTS', 'run directories in the way', problems);

  // Batch-script steps: each script is read once and copied into the run directory under its own
  // name; a second, different copy in the same run (same name, other script or launcher) gets `2-name`.
  const loaded = new Map<string, { template: TokenTemplate; mode: number }>();
  const uses = new Map<string, ScriptUse>();
  const lists = new Map<string, ScriptUse[]>();
  const reserved = new Map<string, string>();
  const prepared: PreparedRun[] = new Array(runs.length);
  for (let i = 0; i < runs.length; i++) {
    const steps = stepsOf[i]!;
    let scripts = NO_SCRIPTS;
    let signature = '';
    const mine: ScriptUse[] = [];
    for (const step of steps) {
      if (!step.batchScript) continue;
      const src = step.args[0]!;
      let tpl = loaded.get(src);
      if (!tpl) {
        tpl = loadScriptTemplate(src);
        loaded.set(src, tpl);
      }
      const launch = tpl.template.names.includes(LAUNCH_TOKEN) ? renderLaunchToken(getAdapter(ctx.scheduler, { lsfFlavor: ctx.lsfFlavor }).launchPrefix(step), tpl.template.parts[0]!) : '';
      const base = path.basename(src);
      let name = base;
      let use: ScriptUse | undefined;
      for (let n = 2; ; n++) {
        const same = mine.find((u) => u.name === name);
        if (same === undefined || (same.src === src && same.launch === launch)) break;
        name = `${n}-${base}`;
      }
      const key = `${src}\0${launch}\0${name}`;
      use = uses.get(key);
      if (!use) {
        use = { src, name, template: tpl.template, mode: tpl.mode, launch };
        uses.set(key, use);
        reserved.set(name, `batch script ${src}`);
      }
      if (!mine.includes(use)) mine.push(use);
      signature += key + '\n';
      step.args[0] = path.join(dirs[i]!, use.name);
    }
    if (mine.length > 0) {
      // Runs with the same scripts share one list (100,000 runs of one application).
      scripts = lists.get(signature) ?? mine;
      lists.set(signature, scripts);
    }
    prepared[i] = { id: ids[i]!, sample: runs[i]!.sample, steps, dir: dirs[i]!, scripts };
  }
  const files = loadRunFiles(ctx, reserved);
  if (!ctx.keepUnknownTokens) checkTokens(prepared, files);
  return { runs: prepared, files };
}

/** Every `file:line: %%name%%` some run has no value for, with the first runs affected. */
function checkTokens(runs: readonly PreparedRun[], files: RunFiles): void {
  const missing = new Map<string, { ids: number[]; count: number }>();
  const check = (t: TokenTemplate, sample: Sample, id: number, launch: boolean) => {
    for (let k = 0; k < t.names.length; k++) {
      const name = t.names[k]!;
      if (BUILTINS.has(name) || (launch && name === LAUNCH_TOKEN) || Object.hasOwn(sample, name)) continue;
      const hint = name === LAUNCH_TOKEN ? ' (only batch-script steps get %%themis_launch%%)' : '';
      const key = `${t.file}:${t.lines[k]}: %%${name}%%${hint}`;
      const seen = missing.get(key) ?? { ids: [], count: 0 };
      if (seen.ids.length < 3) seen.ids.push(id);
      seen.count++;
      missing.set(key, seen);
    }
  };
  for (const run of runs) {
    for (const p of files.parse) check(p.template, run.sample, run.id, false);
    for (const s of run.scripts) check(s.template, run.sample, run.id, true);
  }
  // Name the runs only when some runs do have the value (heterogeneous JSON samples).
  const problems = [...missing].map(([key, { ids, count }]) => (count >= runs.length ? key : `${key} (${count} run${count === 1 ? '' : 's'}: ${ids.join(', ')}${count > ids.length ? ', …' : ''})`));
  throwIfProblems('INPUT', unknownHeading(), problems);
}

/**
 * Write every prepared run into the stage: `.themis/run.json`, `.themis/status.json`, parsed
 * files, copies, symlinks, rendered batch scripts, and relative step working directories.
 * Sync calls in one loop: this is the hot path of a 100,000-run `gen`.
 */
export function writeRuns(stage: Stage, batch: PreparedBatch, onProgress?: (done: number) => void): void {
  const { files } = batch;
  let current: (typeof batch.runs)[number] | undefined;
  try {
    for (let i = 0; i < batch.runs.length; i++) {
      const run = batch.runs[i]!;
      current = run;
      const staged = stage.stagedPath(run.dir);
      fs.mkdirSync(staged, { recursive: true });
      const meta = path.join(staged, RUN_META_DIR);
      fs.mkdirSync(meta);
      const record: RunRecord = { format: FORMAT_VERSION, id: run.id, sample: run.sample, sampleKeys: Object.keys(run.sample), steps: run.steps };
      fs.writeFileSync(path.join(meta, 'run.json'), JSON.stringify(record) + '\n');
      fs.writeFileSync(path.join(meta, 'status.json'), JSON.stringify(newStatus(run.id)) + '\n');
      // Empty files the packer fills instead of creating new ones at launch (creating a file is
      // the costly metadata operation on most file systems): the next status version and run.log.
      fs.writeFileSync(path.join(meta, STATUS_SPARE), '');
      fs.writeFileSync(path.join(staged, RUN_LOG), '');
      const idText = String(run.id);
      const sample = run.sample;
      const raw = (name: string): string | undefined => (name === 'themis_run_id' ? idText : name === 'themis_run_dir' ? run.dir : Object.hasOwn(sample, name) ? valueText(sample[name]) : undefined);
      for (const p of files.parse) stage.writeFile(path.join(staged, p.name), renderTemplate(p.template, raw), p.mode);
      for (const c of files.copy) {
        const dst = path.join(staged, c.name);
        if (c.isDir) fs.cpSync(c.src, dst, { recursive: true, verbatimSymlinks: true });
        else if (c.data !== null) stage.writeFile(dst, c.data, c.mode);
        else {
          fs.copyFileSync(c.src, dst);
          stage.fixMode(dst, c.mode);
        }
      }
      for (const s of files.symlink) fs.symlinkSync(s.src, path.join(staged, s.name));
      for (const s of run.scripts) {
        // In a script, sample values are shell words: quoted, so data can never run as code.
        const quoted = (name: string): string | undefined => {
          if (name === LAUNCH_TOKEN) return s.launch;
          const v = raw(name);
          return v === undefined ? undefined : quoteShell(v);
        };
        stage.writeFile(path.join(staged, s.name), renderTemplate(s.template, quoted), s.mode);
      }
      for (const step of run.steps) {
        if (step.cwd !== '.' && !path.isAbsolute(step.cwd)) {
          const d = path.resolve(staged, step.cwd);
          if (isInside(staged, d)) fs.mkdirSync(d, { recursive: true });
        }
      }
      if (onProgress) onProgress(i + 1);
    }
  } catch (e) {
    // A full disk or quota mid-render: say which run and what to do, not a stack trace.
    if (e instanceof ThemisError) throw e;
    throw new ThemisError('IO', `cannot render run ${current?.id ?? '?'} (${current?.dir ?? '?'}): ${describeFsError(e)}`, { cause: e });
  }
}
