import { planEnsemble, renderPlan } from '../api/plan.js';
import { ThemisError } from '../model/errors.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import type { Output } from './output.js';

interface PlanArgs extends GlobalOptions {
  nodes?: string;
  walltime?: string;
  runtime?: string;
  runtimeColumn?: string;
  allocations?: string;
  coresPerNode?: number;
  gpusPerNode?: number;
}

/** "1,2,8" -> [1, 2, 8], each a number >= min (whole when `integer`). */
export function numberList(flag: string, raw: string | undefined, integer: boolean, min: number): number[] | undefined {
  if (raw === undefined) return undefined;
  const parts = String(raw)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out = parts.map(Number);
  const bad = parts.filter((_, i) => !Number.isFinite(out[i]!) || out[i]! < min || (integer && !Number.isInteger(out[i]!)));
  if (parts.length === 0 || bad.length > 0) throw new ThemisError('USAGE', `--${flag} ${raw}: give ${integer ? 'whole numbers' : 'numbers'} >= ${min}, comma-separated (e.g. 1,2,4)`);
  return out;
}

/** `themis plan`: simulate the packer on candidate allocations and say which to ask for. */
export function planCommand(output: Output): CommandBody<GlobalOptions, PlanArgs> {
  return {
    builder: (y) =>
      y
        .option('nodes', { type: 'string', describe: 'node counts to try, comma-separated [default: 1, 2, 4, … up to what the runs can use]' })
        .option('walltime', { type: 'string', describe: "minutes per allocation, comma-separated for several [default: the ensemble's; 0 = no limit]" })
        .option('runtime', { type: 'string', describe: 'estimate for every step: 90 or 90s, 5m, 1.5h [default: the median of finished runs]' })
        .option('runtime-column', { type: 'string', describe: "sample column with each run's duration (90, 90s, 5m, 1.5h)" })
        .option('allocations', { type: 'string', describe: "allocations sharing the queue, comma-separated for several [default: the ensemble's]" })
        .option('cores-per-node', { type: 'number', describe: "cores per node [default: the last packer's nodes, else this machine]" })
        .option('gpus-per-node', { type: 'number', describe: "GPUs per node [default: the last packer's nodes, else 0]" })
        .conflicts('runtime', 'runtime-column')
        .example('$0 plan --walltime 60', 'how many nodes finish the queued runs within an hour, at the fewest node-hours')
        .example('$0 plan --nodes 1,2,4 --runtime-column seconds --json', 'three sizes, durations from a sample column, as JSON') as never,
    handler: async (argv) => {
      const report = await planEnsemble(argv.setupDir, {
        nodes: numberList('nodes', argv.nodes, true, 1),
        walltimes: numberList('walltime', argv.walltime, false, 0),
        allocations: numberList('allocations', argv.allocations, true, 1),
        ...(argv.runtime !== undefined && { runtime: argv.runtime }),
        ...(argv.runtimeColumn !== undefined && { runtimeColumn: argv.runtimeColumn }),
        ...(argv.coresPerNode !== undefined && { coresPerNode: argv.coresPerNode }),
        ...(argv.gpusPerNode !== undefined && { gpusPerNode: argv.gpusPerNode }),
      });
      output.out(argv.json ? JSON.stringify(report, null, 2) : renderPlan(report));
    },
  };
}
