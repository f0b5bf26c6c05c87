import yargs from 'yargs';
import { ThemisError } from '../model/errors.js';
import { LAUNCHER_MODES, PACK_EXIT, runPacker, type LauncherMode } from '../pack/index.js';
import type { ThemisOpener } from '../pack/hooks.js';

const EPILOG = `Exit codes: 0 nothing left to run (or the allocation's time is up), 1 error, 2 bad usage,
3 only runs that can never fit this allocation remain, 4 the ensemble is stopped (max_failed_runs
or stopEnsemble()), 128+N stopped by signal N (runs put back in the queue).`;

/**
 * The `Themis` handle an interface's hooks get, opened on first use: the packer sits below the API
 * and never imports it, and a packer whose hooks never ask does not load it at all.
 */
export function themisOpener(setupDir: string): ThemisOpener {
  return async () => (await import('../api/themis.js')).Themis.open(setupDir);
}

/** `themis-pack`: what every batch script runs; also runnable by hand to drain an ensemble anywhere. */
export async function runPackCli(argv: string[]): Promise<number> {
  try {
    // Loaded and worked out only when asked for: a packer starts with as little as it needs.
    const version = argv.includes('--version') ? (await import('./version.js')).versionText() : '';
    const args = await yargs(argv)
      .scriptName('themis-pack')
      .usage("$0 --setup-dir DIR [options]\n\nClaim queued runs of an ensemble and pack their steps onto this allocation's cores and GPUs.")
      .option('setup-dir', { type: 'string', default: './.themis_setup', describe: "the ensemble's setup directory" })
      .option('allocation', { type: 'number', describe: "this allocation's number: its planned runs go first" })
      .option('nodes', { type: 'string', describe: "node names (comma list) or a node count, instead of the allocation's" })
      .option('cores', { type: 'number', describe: 'cores per node to use' })
      .option('gpus', { type: 'number', describe: 'GPUs per node to use' })
      .option('lease', { type: 'number', default: 60, describe: 'seconds after which a silent claim is stale' })
      .option('heartbeat', { type: 'number', default: 10, describe: 'seconds between claim heartbeats' })
      .option('max-concurrency', { type: 'number', describe: 'most steps running at once' })
      .option('launcher', { choices: LAUNCHER_MODES as unknown as string[], default: 'auto', describe: 'how steps start' })
      .option('walltime', { type: 'number', describe: 'minutes the allocation lasts (default: ask the scheduler)' })
      .option('early-stop', { type: 'number', default: 0, describe: 'start no run this many minutes before the end' })
      .option('repeats', { type: 'number', default: 0, describe: 'resubmit --script up to this many times if runs remain' })
      .option('script', { type: 'string', describe: 'the batch script to resubmit (--repeats)' })
      .option('steal', { type: 'boolean', default: true, describe: "take other allocations' runs too (--no-steal: only this plan)" })
      .option('bind', { type: 'boolean', default: false, describe: 'bind direct steps to their cores (taskset)' })
      .option('grace', { type: 'number', default: 10, describe: 'seconds between SIGTERM and SIGKILL when stopping a step' })
      .option('rescan', { type: 'number', default: 30, describe: 'seconds between scans of the queue' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout' })
      .epilog(EPILOG)
      .strict()
      .help()
      .version('version', 'show the version and which launcher starts steps here', version)
      .exitProcess(false)
      .fail((msg, err) => {
        if (err) throw err;
        throw new ThemisError('USAGE', `${msg}\nRun with --help for usage.`);
      })
      .parseAsync();
    if (args.help || args.version) return PACK_EXIT.ok;
    const summary = await runPacker({
      setupDir: args['setup-dir'],
      allocation: args.allocation ?? null,
      nodes: args.nodes,
      cores: args.cores,
      gpus: args.gpus,
      leaseSeconds: args.lease,
      heartbeatSeconds: args.heartbeat,
      maxConcurrency: args['max-concurrency'],
      launcher: args.launcher as LauncherMode,
      walltime: args.walltime,
      earlyStop: args['early-stop'],
      repeats: args.repeats,
      script: args.script ?? null,
      steal: args.steal,
      bind: args.bind,
      graceSeconds: args.grace,
      rescanSeconds: args.rescan,
      openThemis: themisOpener(args['setup-dir']),
    });
    const c = summary.counts;
    if (args.json) process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
    else {
      process.stderr.write(`themis-pack: started ${c.started} steps: ${c.successful} successful, ${c.failed} failed, ${c.aborted} aborted, ${c.killed} killed, ${c.requeued} requeued\n`);
      for (const b of summary.blocked.slice(0, 20)) process.stderr.write(`themis-pack: run ${b.id} not started: ${b.reason}\n`);
      if (summary.blocked.length > 20) process.stderr.write(`themis-pack: … and ${summary.blocked.length - 20} more runs that cannot fit\n`);
    }
    return summary.exitCode;
  } catch (e) {
    if (e instanceof ThemisError) {
      process.stderr.write(`themis-pack: ${e.message}\n`);
      return e.exitCode === 2 ? PACK_EXIT.usage : PACK_EXIT.error;
    }
    process.stderr.write(`themis-pack: unexpected error (a bug in themis; please report it):\n${(e as Error)?.stack ?? e}\n`);
    return 70;
  }
}
