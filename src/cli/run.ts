import { ThemisError } from '../model/errors.js';
import { runPacker, type PackerProgress } from '../pack/index.js';
import { themisOpener } from './pack.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface RunArgs extends GlobalOptions {
  maxConcurrency?: number;
  timeout?: number;
  cores?: number;
  gpus?: number;
  detach: boolean;
}

function positive(name: string, v: number | undefined, integer: boolean, min = 1): void {
  if (v === undefined) return;
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new ThemisError('USAGE', `--${name} ${v}: must be ${integer ? 'a whole number' : 'a number'} >= ${min}`);
  }
}

/** "12 done (11 successful, 1 failed), 4 running, 84 waiting" */
function progressText(p: PackerProgress): string {
  const c = p.counts;
  const done = c.successful + c.failed + c.aborted + c.killed;
  const parts = [`${c.successful} successful`];
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.aborted) parts.push(`${c.aborted} aborted`);
  if (c.killed) parts.push(`${c.killed} killed`);
  const waiting = p.pending >= 0 ? Math.max(0, p.pending - done - p.running) : null;
  return `themis run: ${done} done (${parts.join(', ')}), ${p.running} running${waiting === null ? '' : `, ${waiting} waiting`}`;
}

/** `themis run`: the packer on this machine (the seed's execute_local), blocking by default. */
export function runCommand(output: Output): CommandBody<GlobalOptions, RunArgs> {
  return {
    builder: (y) =>
      y
        .option('max-concurrency', { type: 'number', describe: 'most steps running at once' })
        .option('timeout', { type: 'number', describe: 'minutes to run; then running runs are stopped and queued again' })
        .option('cores', { type: 'number', describe: "cores to use (default: all of this machine's)" })
        .option('gpus', { type: 'number', describe: 'GPUs to use (default: CUDA_VISIBLE_DEVICES or nvidia-smi)' })
        .option('detach', { type: 'boolean', default: false, describe: 'start the packer in the background; print its pid and log' })
        .example('$0 run', 'run everything queued here, with a progress line')
        .example('$0 run --cores 8 --gpus 2 --detach', 'use 8 cores and 2 GPUs, in the background') as never,
    handler: async (argv) => {
      positive('max-concurrency', argv.maxConcurrency, true);
      positive('timeout', argv.timeout, false, 0.001);
      positive('cores', argv.cores, true);
      positive('gpus', argv.gpus, true, 0);
      if (argv.detach) {
        // The whole API only for --detach: the blocking path needs just the packer.
        const { Themis } = await import('../api/themis.js');
        const started = await Themis.open(argv.setupDir).executeLocal({
          blocking: false,
          timeout: argv.timeout ?? null,
          maxConcurrency: argv.maxConcurrency ?? null,
          ...(argv.cores !== undefined ? { cores: argv.cores } : {}),
          ...(argv.gpus !== undefined ? { gpus: argv.gpus } : {}),
        });
        if (argv.json) output.out(JSON.stringify({ pid: started.pid, logFile: started.logFile }));
        else output.out(`packer started: pid ${started.pid}, log ${started.logFile}\n\`themis progress\` follows it; \`kill ${started.pid}\` stops it (running runs are queued again)`);
        return;
      }
      let last = 0;
      let drawn = false;
      const draw = (p: PackerProgress) => {
        const now = Date.now();
        if (now - last < 200) return;
        last = now;
        drawn = true;
        process.stderr.write(`\r\x1b[K${progressText(p)}`);
      };
      const summary = await runPacker({
        setupDir: argv.setupDir,
        openThemis: themisOpener(argv.setupDir),
        ...(argv.maxConcurrency !== undefined ? { maxConcurrency: argv.maxConcurrency } : {}),
        ...(argv.timeout !== undefined ? { walltime: argv.timeout } : {}),
        ...(argv.cores !== undefined ? { cores: argv.cores } : {}),
        ...(argv.gpus !== undefined ? { gpus: argv.gpus } : {}),
        // Quiet unless asked: the summary below says what happened.
        log: (line) => {
          if (argv.verbose > 0) {
            if (drawn) process.stderr.write('\r\x1b[K');
            output.err(`themis-pack: ${line}`);
          }
        },
        ...(output.interactive && !argv.json ? { onProgress: draw } : {}),
      });
      if (drawn) process.stderr.write('\r\x1b[K');
      if (argv.json) {
        output.out(JSON.stringify(summary, null, 2));
      } else {
        const c = summary.counts;
        output.out(`${c.started} steps started: ${c.successful} runs successful, ${c.failed} failed, ${c.aborted} aborted, ${c.killed} killed, ${c.requeued} back in the queue (${summary.reason})`);
        for (const b of summary.blocked.slice(0, 10)) output.err(`run ${b.id} not started: ${b.reason}`);
        if (summary.blocked.length > 10) output.err(`… and ${summary.blocked.length - 10} more runs that cannot fit here`);
      }
      process.exitCode = summary.exitCode;
    },
  };
}
