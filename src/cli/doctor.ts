import { ThemisError } from '../model/errors.js';
import { runDoctor, type DoctorReport, type Finding } from '../store/doctor.js';
import type { CommandBody } from './commands.js';
import type { GlobalOptions } from './main.js';
import { EXIT, type Output } from './output.js';

interface DoctorArgs extends GlobalOptions {
  repair: boolean;
  lease: number;
}

const TITLES: Record<Finding['kind'], string> = {
  'orphan-running': 'running, but its packer is gone',
  'stale-claim': 'stale claim',
  'missing-status': 'status file missing',
  'unreadable-status': 'status file unreadable',
  'missing-run-dir': 'run directory missing',
  'duplicate-id': 'duplicate run id in the index',
  'corrupt-index': 'corrupt index line',
  'claim-leftover': 'leftover file',
  'dead-break-mutex': 'dead claim-break mutex',
  'dead-packer': 'dead packer',
  'staging-leftover': 'leftover staging directory',
  stopped: 'ensemble stopped',
};

/** The text report: one block per finding, then what to do next. */
export function formatDoctor(r: DoctorReport): string {
  const problems = r.findings.filter((f) => f.severity === 'problem');
  const lines = [
    `themis doctor: ${r.runsChecked} run${r.runsChecked === 1 ? '' : 's'} checked in ${r.setupDir}: ${problems.length === 0 ? 'no problems found' : `${problems.length} problem${problems.length === 1 ? '' : 's'}`}`,
  ];
  for (const f of r.findings) {
    lines.push('', `${f.runId !== null ? `run ${f.runId}: ` : ''}${TITLES[f.kind]}${f.severity === 'info' ? ' (info)' : ''}`, `  ${f.problem}`, `  path: ${f.path}`);
    if (!r.repaired) lines.push(`  --repair: ${f.repair ?? 'nothing (needs you, see above)'}`);
    else if (f.outcome === 'repaired') lines.push(`  repaired: ${f.repair}`);
    else if (f.outcome) lines.push(`  ${f.outcome === 'failed' ? 'REPAIR FAILED' : 'left as it is'}: ${f.note}`);
    else lines.push('  left as it is: needs you (see above)');
  }
  const sm = r.summary;
  lines.push(
    '',
    `summary of finished runs: rebuilt from the ${sm.runs} readable status${sm.runs === 1 ? '' : 'es'}${sm.removed > 0 ? `, ${sm.removed} file${sm.removed === 1 ? '' : 's'} folded into it` : ''}${sm.quarantined.length > 0 ? `; damaged and moved aside: ${sm.quarantined.join(', ')}` : ''}`,
  );
  for (const k of sm.kept) lines.push(`  kept, its writer may still be running: ${k.name}: ${k.problem} (statuses are read in full until it ends; run doctor again then)`);
  const fixable = problems.filter((f) => f.repair !== null).length;
  if (!r.repaired && fixable > 0) lines.push('', `\`themis doctor --repair\` fixes ${fixable} of these; it is safe while packers run.`);
  return lines.join('\n');
}

/** Problems still there after this run of doctor (exit code 1 when any). */
export function remainingProblems(r: DoctorReport): number {
  return r.findings.filter((f) => f.severity === 'problem' && f.outcome !== 'repaired').length;
}

/** `themis doctor [--repair] [--lease S]`. */
export function doctorCommand(output: Output): CommandBody<GlobalOptions, DoctorArgs> {
  return {
    builder: (y) =>
      y
        .option('repair', { type: 'boolean', default: false, describe: 'fix what is safe: break stale claims, requeue orphaned runs at their step, remove leftovers' })
        .option('lease', { type: 'number', default: 60, describe: "seconds after its last heartbeat that a claim counts as stale (the packers' --lease)" })
        .example('$0 doctor', 'explain every problem found and rebuild the summary of finished runs; change no run')
        .example('$0 doctor --repair', 'fix what is safe') as never,
    handler: (argv) => {
      if (!Number.isFinite(argv.lease) || argv.lease <= 0) throw new ThemisError('USAGE', `--lease must be a number of seconds > 0, got ${argv.lease}`);
      const report = runDoctor(argv.setupDir, { repair: argv.repair, leaseMs: argv.lease * 1000 });
      output.out(argv.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      if (remainingProblems(report) > 0) process.exitCode = EXIT.failure;
    },
  };
}
