import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ThemisError, describeFsError } from '../model/errors.js';
import { ensureBatchScripts, fileSafeName, type BatchScriptInfo } from '../render/batch.js';
import { quoteArgv, quoteShell } from '../model/quote.js';
import type { CommandSpec } from '../schedulers/adapter.js';
import { getAdapter } from '../schedulers/index.js';
import { allocationStates, readJobs, recordJobs, type JobRecord } from '../store/jobs.js';
import { setupPaths } from '../store/layout.js';
import { readEnsemble, type EnsembleRecord, type SchedulerName } from '../store/records.js';

export interface SubmittedJob {
  allocation: number;
  jobId: string;
  script: string;
  /** The command that was run, as a shell would show it (`bsub < script`). */
  command: string;
}

export interface SubmitReport {
  scheduler: SchedulerName;
  jobs: SubmittedJob[];
  /** Where the job ids were recorded. */
  jobsFile: string;
}

export interface SubmitOptions {
  /** Allocations to submit (1-based); all when omitted. */
  allocations?: number[];
  /** Environment for the scheduler's command (tests put fake executables on PATH). */
  env?: NodeJS.ProcessEnv;
  /** Recorded as `by` in jobs.json: `repeat` when a packer resubmits its own allocation. */
  by?: JobRecord['by'];
  /** Submit even when the allocation's last job is still pending or running. */
  force?: boolean;
}

/** How a user would type the command: `sbatch x.sh`, `bsub < x.sh`. */
export function displayCommand(cmd: CommandSpec): string {
  const words = quoteArgv(cmd.argv);
  return cmd.stdinFile ? `${words} < ${quoteShell(cmd.stdinFile)}` : words;
}

/**
 * Submit each allocation's batch script with the scheduler's own command and record the job ids
 * in `jobs.json` (each as soon as it is accepted, so a failure on allocation 3 keeps 1 and 2).
 * Scripts missing from the setup directory are rendered first.
 * Example: `await submitAllocations('.themis_setup', {allocations: [2]})`.
 */
export async function submitAllocations(setupDir: string, options: SubmitOptions = {}): Promise<SubmitReport> {
  const ens = readEnsemble(setupDir);
  const scripts = ensureBatchScripts(setupDir, ens);
  const chosen = pickAllocations(scripts, options.allocations);
  if (!options.force) await refuseLiveAllocations(setupDir, chosen, options.env ?? process.env);
  const jobs: SubmittedJob[] = [];
  for (const info of chosen) {
    let jobId: string;
    try {
      jobId = await submitOne(setupDir, ens, info, options.env ?? process.env);
    } catch (e) {
      if (e instanceof ThemisError && jobs.length > 0) {
        const done = jobs.map((j) => `allocation ${j.allocation} = job ${j.jobId}`).join(', ');
        throw new ThemisError(e.code, `${e.message}\n(already submitted and recorded: ${done})`, { cause: e.cause });
      }
      throw e;
    }
    recordJobs(setupDir, [
      { allocation: info.allocation, jobId, scheduler: ens.scheduler, submittedAt: new Date().toISOString(), script: info.path, by: options.by ?? 'submit' },
    ]);
    jobs.push({ allocation: info.allocation, jobId, script: info.path, command: displayCommand(info.submit) });
  }
  return { scheduler: ens.scheduler, jobs, jobsFile: setupPaths(setupDir).jobsFile };
}

/**
 * A second `themis submit` (a double Enter at 2 a.m.) would queue a duplicate allocation: refuse
 * while the scheduler still lists the previous job, unless forced. Unknown states do not block.
 */
async function refuseLiveAllocations(setupDir: string, chosen: BatchScriptInfo[], env: NodeJS.ProcessEnv): Promise<void> {
  if (readJobs(setupDir).length === 0) return;
  const wanted = new Set(chosen.map((c) => c.allocation));
  const live = (await allocationStates(setupDir, { env })).filter((a) => wanted.has(a.allocation) && (a.state === 'pending' || a.state === 'running'));
  if (live.length === 0) return;
  const list = live.map((a) => `allocation ${a.allocation} = job ${a.jobId} (${a.state})`).join(', ');
  throw new ThemisError(
    'STATE',
    `already submitted and still in the queue: ${list}; pass --force to submit another allocation anyway, or cancel the job first`,
  );
}

function pickAllocations(scripts: BatchScriptInfo[], wanted: number[] | undefined): BatchScriptInfo[] {
  if (wanted === undefined || wanted.length === 0) return scripts;
  const bad = wanted.filter((k) => !scripts.some((s) => s.allocation === k));
  if (bad.length > 0) {
    throw new ThemisError(
      'USAGE',
      `--allocation ${bad.join(', ')}: this ensemble has allocations 1..${scripts.length}; pick from those (or regenerate with --allocations N)`,
    );
  }
  return scripts.filter((s) => wanted.includes(s.allocation));
}

async function submitOne(setupDir: string, ens: EnsembleRecord, info: BatchScriptInfo, env: NodeJS.ProcessEnv): Promise<string> {
  const adapter = getAdapter(ens.scheduler);
  if (adapter.submitDetached) return String(startDetached(setupDir, ens, info, env));
  const cmd = info.submit;
  const shown = displayCommand(cmd);
  const r = await (await loadExeca())(cmd.argv[0]!, cmd.argv.slice(1), {
    reject: false,
    env,
    extendEnv: false,
    cwd: ens.root,
    // A scheduler that hangs (controller down) must not hang `themis submit` forever.
    timeout: 120_000,
    ...(cmd.stdinFile ? { inputFile: cmd.stdinFile } : { stdin: 'ignore' as const }),
  });
  const out = String(r.stdout ?? '').trim();
  const err = String(r.stderr ?? '').trim();
  if (r.exitCode === undefined) {
    const why = (r as { code?: string }).code === 'ENOENT' ? `\`${cmd.argv[0]}\` is not on PATH` : r.timedOut ? 'it did not answer in 120 s' : r.shortMessage;
    throw new ThemisError(
      'SCHEDULER',
      `cannot submit allocation ${info.allocation} with \`${shown}\`: ${why}; submit on a login node of the cluster, or regenerate with --scheduler local`,
    );
  }
  if (r.exitCode !== 0) {
    throw new ThemisError(
      'SCHEDULER',
      `${cmd.argv[0]} refused allocation ${info.allocation} (\`${shown}\`, exit ${r.exitCode}):\n${err || out || '(no message)'}\n` +
        `fix the problem it names (partition, account, walltime, nodes are in ${info.path}), then run \`themis submit --allocation ${info.allocation}\``,
    );
  }
  const jobId = adapter.parseJobId(out);
  if (jobId === null) {
    throw new ThemisError(
      'SCHEDULER',
      `\`${shown}\` exited 0 but printed no job id themis recognises:\n${out || '(empty)'}${err ? `\n${err}` : ''}\n` +
        'the job may have been submitted: check the queue before submitting again',
    );
  }
  return jobId;
}

/** Local "submission": start the script in the background, in its own session; the pid is the job id. */
function startDetached(setupDir: string, ens: EnsembleRecord, info: BatchScriptInfo, env: NodeJS.ProcessEnv): number {
  const p = setupPaths(setupDir);
  const log = path.join(p.logsDir, `${fileSafeName(ens.allocation.name)}-${info.allocation}.out`);
  let fd: number;
  try {
    fs.mkdirSync(p.logsDir, { recursive: true });
    fd = fs.openSync(log, 'a');
  } catch (e) {
    throw new ThemisError('IO', `cannot open ${log} for allocation ${info.allocation}'s output: ${describeFsError(e)}`, { cause: e });
  }
  try {
    const child = spawn(info.path, [], { cwd: ens.root, env, detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) {
      throw new ThemisError('SCHEDULER', `cannot start ${info.path} for allocation ${info.allocation}; is it executable (chmod +x)?`);
    }
    child.on('error', () => {
      // Reported through the missing pid above; keep Node from crashing on the late event.
    });
    child.unref();
    return child.pid;
  } finally {
    fs.closeSync(fd);
  }
}

/** execa costs ~90 ms to import: load it only when a scheduler command really runs. */
async function loadExeca(): Promise<typeof import('execa').execa> {
  return (await import('execa')).execa;
}
