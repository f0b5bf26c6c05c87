import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { SchedulerName } from '../model/allocation.js';
import { ThemisError, describeFsError } from '../model/errors.js';
import { quoteArgv, quoteShell } from '../model/quote.js';
import type { CommandSpec, JobState } from './adapter.js';
import { getAdapter, type AdapterOptions } from './index.js';
import { FORGOTTEN_JOB } from './job-states.js';

/**
 * The one place themis runs a scheduler's commands: submitting (`sbatch`, `bsub <`, `flux batch`,
 * a local script in the background), resubmitting, asking for job states (`squeue`, `bjobs`,
 * `flux jobs`, `ps`) and discovery's queries. One timeout, one outcome, one error shape; the
 * adapters say what to run and how to read the answer. The asynchronous runner is execa, loaded
 * on first use; the two calls the packer must block on (its resubmission as it ends, discovery as
 * it starts) use node:child_process's spawnSync, so the packer never loads execa.
 */

/** How long any scheduler command may take: a controller that hangs must not hang themis. */
export const SCHEDULER_TIMEOUT_MS = 60_000;

/** Lines of a command's stderr an error message quotes. */
const QUOTED_LINES = 5;

export interface CommandOptions {
  /** The command's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Tests only: a shorter timeout than `SCHEDULER_TIMEOUT_MS`. */
  timeoutMs?: number;
}

/** What became of a command: exactly one of started-and-exited, killed, or never started. */
export interface CommandOutcome {
  /** The command as a user would type it (`bsub < x.sh`). */
  shown: string;
  stdout: string;
  stderr: string;
  /** Its exit code; null when it did not exit by itself (never started, or killed). */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** It did not answer within `timeoutMs` and was killed (SIGKILL). */
  timedOut: boolean;
  timeoutMs: number;
  /** Why it could not start (ENOENT: not on PATH); null when it started. */
  startError: NodeJS.ErrnoException | null;
}

/** What the command was for, for its error message: `allocation 2`, `the resubmission of x.sh`. */
export interface CommandTask {
  what: string;
  /** What to do when the scheduler refused (non-zero exit). */
  fix: string;
  /** What to do when the command cannot run here (not on PATH, no answer); default `fix`. */
  unreachableFix?: string;
}

/** How a user would type the command: `sbatch x.sh`, `bsub < x.sh`. */
export function formatCommand(cmd: CommandSpec): string {
  const words = quoteArgv(cmd.argv);
  return cmd.stdinFile ? `${words} < ${quoteShell(cmd.stdinFile)}` : words;
}

/** The stdin of a command: its file opened for reading, or nothing. */
function openStdin(cmd: CommandSpec): number | 'ignore' {
  if (!cmd.stdinFile) return 'ignore';
  try {
    return fs.openSync(cmd.stdinFile, 'r');
  } catch (e) {
    throw new ThemisError('IO', `cannot read ${cmd.stdinFile} to feed \`${formatCommand(cmd)}\`: ${describeFsError(e)}`, { cause: e });
  }
}

function spawnOptions(opts: CommandOptions, stdin: number | 'ignore'): SpawnOptions {
  return { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [stdin, 'pipe', 'pipe'] };
}

/** execa, loaded on first use: `themis run` and `themis-pack` start without it. */
let execaModule: Promise<typeof import('execa')> | null = null;

/**
 * Run a scheduler command to its end (or the timeout), with execa. Never rejects for the
 * command's sake: a command that is missing, refused or timed out is an outcome like any other.
 */
export async function runSchedulerCommand(cmd: CommandSpec, opts: CommandOptions = {}): Promise<CommandOutcome> {
  const shown = formatCommand(cmd);
  const timeoutMs = opts.timeoutMs ?? SCHEDULER_TIMEOUT_MS;
  // Opened once here so an unreadable script is named before anything runs; execa reads it by name.
  const fd = openStdin(cmd);
  if (typeof fd === 'number') fs.closeSync(fd);
  execaModule ??= import('execa');
  const { execa } = await execaModule;
  const r = await execa(cmd.argv[0]!, cmd.argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    extendEnv: false,
    stdin: cmd.stdinFile ? { file: cmd.stdinFile } : 'ignore',
    reject: false,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    // A grandchild that keeps the pipes open must not keep us waiting past the kill.
    forceKillAfterDelay: 1000,
    stripFinalNewline: false,
  });
  const timedOut = r.timedOut === true;
  const started = r.exitCode !== undefined || r.signal !== undefined || timedOut;
  return {
    shown,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
    exitCode: timedOut ? null : (r.exitCode ?? null),
    signal: (r.signal as NodeJS.Signals | undefined) ?? (timedOut ? 'SIGKILL' : null),
    timedOut,
    timeoutMs,
    startError: started ? null : ((r.cause as NodeJS.ErrnoException | undefined) ?? null),
  };
}

/** The same, blocking (the packer's resubmission and discovery run outside any event loop need). */
export function runSchedulerCommandSync(cmd: CommandSpec, opts: CommandOptions = {}): CommandOutcome {
  const shown = formatCommand(cmd);
  const timeoutMs = opts.timeoutMs ?? SCHEDULER_TIMEOUT_MS;
  const stdin = openStdin(cmd);
  try {
    const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), {
      ...spawnOptions(opts, stdin),
      encoding: 'utf8',
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
    });
    const error = (r.error ?? null) as NodeJS.ErrnoException | null;
    const timedOut = error?.code === 'ETIMEDOUT';
    const startError = error !== null && !timedOut ? error : null;
    const exitCode = error !== null ? null : r.status;
    return { shown, stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode, signal: r.signal, timedOut, timeoutMs, startError };
  } finally {
    if (typeof stdin === 'number') fs.closeSync(stdin);
  }
}

/** The first lines of a command's message (stderr, else stdout), for an error. */
function quoted(o: CommandOutcome): string {
  const lines = (o.stderr.trim() || o.stdout.trim()).split('\n');
  if (lines[0] === '') return '(no message)';
  const more = lines.length - QUOTED_LINES;
  return lines.slice(0, QUOTED_LINES).join('\n') + (more > 0 ? `\n… (${more} more line${more === 1 ? '' : 's'})` : '');
}

/** Why a command did not answer, in words; null when it exited by itself. */
function unreachable(o: CommandOutcome, tool: string): string | null {
  if (o.startError) return o.startError.code === 'ENOENT' ? `\`${tool}\` is not on PATH` : `it failed to run (${o.startError.message})`;
  if (o.timedOut) return `it did not answer in ${o.timeoutMs / 1000} s and was killed`;
  if (o.exitCode === null) return `it was killed by ${o.signal ?? 'a signal'}`;
  return null;
}

/**
 * The error for a command that failed, or null when it exited 0. Names the command, its exit code
 * or signal, the first lines of what it printed, and the fix:
 * "sbatch refused allocation 2 (`sbatch x.sh`, exit 1):\nsbatch: error: Invalid account…\nfix…".
 */
export function commandError(o: CommandOutcome, task: CommandTask): ThemisError | null {
  if (o.exitCode === 0) return null;
  const tool = o.shown.split(' ')[0]!;
  const why = unreachable(o, tool);
  if (why !== null) {
    const cause = o.startError ?? undefined;
    return new ThemisError('SCHEDULER', `cannot run \`${o.shown}\` for ${task.what}: ${why}; ${task.unreachableFix ?? task.fix}`, { cause });
  }
  return new ThemisError('SCHEDULER', `${tool} refused ${task.what} (\`${o.shown}\`, exit ${o.exitCode}):\n${quoted(o)}\n${task.fix}`);
}

/** A submission the scheduler accepted; `jobId` null when it printed none the adapter recognises. */
export interface Submission {
  jobId: string | null;
  shown: string;
  /** What the submit command printed (stdout, then stderr). */
  output: string;
}

export interface SubmitOptions extends CommandOptions {
  /** Local (detached) submission only: where the script's output goes (appended); default nowhere. */
  outputFile?: string;
}

/**
 * Submit a rendered batch script with its scheduler's command; the job id. Throws the
 * `commandError` when the command cannot run or exits non-zero.
 * Example: `await submitScript('slurm', '/e/.themis_setup/batch/themis-1.sh', {what: 'allocation 1', fix: '…'})`.
 */
export async function submitScript(scheduler: SchedulerName, script: string, opts: SubmitOptions & CommandTask): Promise<Submission> {
  const cmd = getAdapter(scheduler).submitCommand(script);
  if (getAdapter(scheduler).submitDetached) return startDetached(cmd, opts);
  return accepted(scheduler, await runSchedulerCommand(cmd, opts), opts);
}

/** `submitScript`, blocking: the packer resubmitting its own script as it ends. */
export function submitScriptSync(scheduler: SchedulerName, script: string, opts: SubmitOptions & CommandTask): Submission {
  const cmd = getAdapter(scheduler).submitCommand(script);
  if (getAdapter(scheduler).submitDetached) return startDetached(cmd, opts);
  return accepted(scheduler, runSchedulerCommandSync(cmd, opts), opts);
}

function accepted(scheduler: SchedulerName, o: CommandOutcome, task: CommandTask): Submission {
  const error = commandError(o, task);
  if (error) throw error;
  const output = [o.stdout.trim(), o.stderr.trim()].filter(Boolean).join('\n');
  return { jobId: getAdapter(scheduler).parseJobId(o.stdout.trim()), shown: o.shown, output };
}

/** Local "submission": start the script in the background, in its own session; the pid is the job id. */
function startDetached(cmd: CommandSpec, opts: SubmitOptions & CommandTask): Submission {
  let fd: number | 'ignore' = 'ignore';
  if (opts.outputFile) {
    try {
      fs.mkdirSync(path.dirname(opts.outputFile), { recursive: true });
      fd = fs.openSync(opts.outputFile, 'a');
    } catch (e) {
      throw new ThemisError('IO', `cannot open ${opts.outputFile} for ${opts.what}'s output: ${describeFsError(e)}`, { cause: e });
    }
  }
  try {
    const child = spawn(cmd.argv[0]!, cmd.argv.slice(1), { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => {
      // Reported through the missing pid below; keep Node from crashing on the late event.
    });
    if (child.pid === undefined) {
      throw new ThemisError('SCHEDULER', `cannot start ${cmd.argv[0]} for ${opts.what}; is it executable (chmod +x)?`);
    }
    child.unref();
    return { jobId: String(child.pid), shown: formatCommand(cmd), output: '' };
  } finally {
    if (typeof fd === 'number') fs.closeSync(fd);
  }
}

/**
 * Ask one scheduler about these jobs in one command (LSF as its flavour answers: `opts.lsfFlavor`):
 * pending/running/gone each, or `unknown` when the scheduler could not be asked (command missing,
 * no answer) or failed without saying the jobs are gone (see `forgottenJobMessage`). Never throws
 * for the scheduler's sake.
 */
export async function queryJobStates(scheduler: SchedulerName, jobIds: string[], opts: CommandOptions & AdapterOptions = {}): Promise<Map<string, JobState | 'unknown'>> {
  const adapter = getAdapter(scheduler, opts);
  const o = await runSchedulerCommand(adapter.jobStatesCommand(jobIds), opts);
  const states = new Map<string, JobState | 'unknown'>();
  // Not started or killed: nothing to conclude.
  if (o.exitCode === null) {
    for (const id of jobIds) states.set(id, 'unknown');
    return states;
  }
  const parsed = adapter.parseJobStates(o.stdout, jobIds);
  const trustMissing = o.exitCode === 0 || (adapter.forgottenJobMessage ?? FORGOTTEN_JOB).test(o.stderr);
  for (const id of jobIds) {
    const st = parsed.get(id) ?? 'gone';
    states.set(id, st === 'gone' && !trustMissing ? 'unknown' : st);
  }
  return states;
}

/** A discovery query (`squeue -o %e`, `flux resource list`): its stdout, or null when it failed. */
export function readSchedulerOutput(argv: string[]): string | null {
  try {
    const o = runSchedulerCommandSync({ argv });
    return o.exitCode === 0 ? o.stdout : null;
  } catch {
    return null;
  }
}
