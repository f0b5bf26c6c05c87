import path from 'node:path';
import type { SchedulerName } from '../model/allocation.js';
import { ThemisError } from '../model/errors.js';
import { ensureBatchScripts, fileSafeName, type BatchScriptInfo } from '../render/batch.js';
import { formatCommand, submitScript } from '../schedulers/commands.js';
import { getAdapter } from '../schedulers/index.js';
import { allocationStates, readJobs, recordJobs, type JobRecord } from '../store/jobs.js';
import { setupPaths } from '../store/layout.js';
import { readEnsemble, type EnsembleRecord } from '../store/records.js';

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
    recordJobs(setupDir, [{ allocation: info.allocation, jobId, scheduler: ens.scheduler, submittedAt: new Date().toISOString(), script: info.path, by: options.by ?? 'submit' }]);
    jobs.push({ allocation: info.allocation, jobId, script: info.path, command: formatCommand(info.submit) });
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
  throw new ThemisError('STATE', `already submitted and still in the queue: ${list}; pass --force to submit another allocation anyway, or cancel the job first`);
}

function pickAllocations(scripts: BatchScriptInfo[], wanted: number[] | undefined): BatchScriptInfo[] {
  if (wanted === undefined || wanted.length === 0) return scripts;
  const bad = wanted.filter((k) => !scripts.some((s) => s.allocation === k));
  if (bad.length > 0) {
    throw new ThemisError('USAGE', `--allocation ${bad.join(', ')}: this ensemble has allocations 1..${scripts.length}; pick from those (or regenerate with --allocations N)`);
  }
  return scripts.filter((s) => wanted.includes(s.allocation));
}

async function submitOne(setupDir: string, ens: EnsembleRecord, info: BatchScriptInfo, env: NodeJS.ProcessEnv): Promise<string> {
  const p = setupPaths(setupDir);
  const detached = getAdapter(ens.scheduler).submitDetached === true;
  const { jobId, shown, output } = await submitScript(ens.scheduler, info.path, {
    env,
    cwd: ens.root,
    what: `allocation ${info.allocation}`,
    fix: `fix the problem it names (partition, account, walltime, nodes are in ${info.path}), then run \`themis submit --allocation ${info.allocation}\``,
    unreachableFix: 'submit on a login node of the cluster, or regenerate with --scheduler local',
    // Local: the script runs in the background; its output goes to the allocation's log.
    ...(detached ? { outputFile: path.join(p.logsDir, `${fileSafeName(ens.allocation.name)}-${info.allocation}.out`) } : {}),
  });
  if (jobId === null) {
    throw new ThemisError(
      'SCHEDULER',
      `\`${shown}\` exited 0 but printed no job id themis recognises:\n${output || '(empty)'}\n` + 'the job may have been submitted: check the queue before submitting again',
    );
  }
  return jobId;
}
