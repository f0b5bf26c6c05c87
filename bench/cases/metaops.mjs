// metaops (issue 14, "Kind to Lustre and GPFS"): the metadata operations one launched single-step
// run costs the file server, counted with strace, not timed, so the figure is the same on any
// machine. `themis gen /bin/true` of N runs, then `strace -f -qq -y -e trace=%file,%desc themis run`
// in the ensemble: every call whose path lies under the ensemble root (bench/strace-count.mjs says
// exactly what counts), divided by the runs launched; and of those, the ones changing the namespace.
import fs from 'node:fs';
import path from 'node:path';
import { THEMIS, countStatuses, ensureStrace, genEnsemble, round, settle, timed, writeCsv } from '../lib.mjs';
import { countStraceFile } from '../strace-count.mjs';

export const TARGET_OPS = 12;
export const TARGET_NAMESPACE = 5;

/** Per-run figures of a count, for the JSON: classes, syscalls and path patterns divided by `n`. */
export function perRun(count, n, minShare = 0) {
  const div = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v / n, 3)]));
  return {
    total: round(count.total / n, 3),
    namespace: round(count.namespace / n, 3),
    creates: round(count.creates / n, 3),
    failed: round(count.failed / n, 3),
    byClass: div(count.byClass),
    bySyscall: div(count.bySyscall),
    fdOpsNotCounted: div(count.fdOps),
    unresolvedPaths: count.unresolved,
    patterns: count.patterns
      .filter((p) => p.count / n >= minShare)
      .map((p) => ({ perRun: round(p.count / n, 3), op: p.key, class: p.class, namespace: p.namespace, ...(p.errno ? { failed: p.errno } : {}) })),
  };
}

/** gen N `/bin/true` runs, run them under strace, count what touched the ensemble's files. */
function measure(base, runs, cores) {
  fs.mkdirSync(base, { recursive: true });
  const samples = path.join(base, 'samples.csv');
  writeCsv(samples, ['x'], runs, (i) => [i]);
  // Real paths: strace prints the kernel's view of the cwd (no symlinked TMPDIR).
  const dir = path.join(fs.realpathSync(base), 'ensemble');
  genEnsemble(dir, '/bin/true', samples);
  const trace = path.join(base, 'trace');
  settle();
  const t = timed(['strace', '-f', '-qq', '-y', '-e', 'trace=%file,%desc', '-o', trace, process.execPath, THEMIS, 'run', '--json', '--cores', String(cores)], { cwd: dir });
  const summary = JSON.parse(t.stdout);
  const launched = summary.counts?.started ?? 0;
  const statuses = countStatuses(path.join(dir, 'runs'));
  if (launched !== runs || statuses.successful !== runs) throw new Error(`expected ${runs} successful runs, launched ${launched}: ${JSON.stringify(statuses)}`);
  const traceMB = fs.statSync(trace).size / 2 ** 20;
  const count = countStraceFile(trace, { root: dir, cwd: dir });
  fs.rmSync(trace, { force: true });
  return { launched, count, seconds: t.seconds, traceMB };
}

export async function run(ctx) {
  const noStrace = ensureStrace();
  if (noStrace) return { skipped: `skipped: ${noStrace}` };
  const runs = ctx.quick ? 200 : 1000;
  const cores = ctx.cores ?? 2;
  // Two sizes: the difference is what each launched run costs; what is left is the packer's own
  // start-up and exit (its heartbeat file, journal, log, summary file), paid once per allocation.
  const small = measure(path.join(ctx.work, 'metaops-half'), runs / 2, cores);
  const big = measure(path.join(ctx.work, 'metaops'), runs, cores);
  const slope = (k) => (big.count[k] - small.count[k]) / (big.launched - small.launched);
  const ops = slope('total');
  const ns = slope('namespace');
  const fixed = big.count.total - ops * big.launched;
  const { launched, count } = big;
  return {
    rows: [
      {
        metric: `metadata ops per launched run (strace -f, files under the ensemble; ${small.launched} vs ${launched} runs)`,
        themis: round(ops, 2),
        baseline: null,
        ratio: null,
        target: `<= ${TARGET_OPS}`,
        met: ops <= TARGET_OPS + 0.005,
      },
      {
        metric: 'namespace-changing ops per launched run (O_CREAT opens counted as creates)',
        themis: round(ns, 2),
        baseline: null,
        ratio: null,
        target: `<= ${TARGET_NAMESPACE}`,
        met: ns <= TARGET_NAMESPACE + 0.005,
      },
      {
        metric: 'metadata ops of the packer itself, once per allocation (start-up, heartbeat file, journal, exit)',
        themis: round(fixed, 0),
        baseline: null,
        ratio: null,
        target: null,
        met: null,
      },
    ],
    details: {
      runs,
      launched,
      cores,
      command: `strace -f -qq -y -e trace=%file,%desc -o TRACE node dist/bin/themis.js run --json --cores ${cores}`,
      counting:
        'calls with a path argument resolving under the ensemble root (either path of link/rename), failed calls included (each a round trip); ' +
        'O_CREAT/O_TMPFILE opens and creat() are counted as creates (namespace-changing) whether or not the file existed; ' +
        'descriptor-only calls (close, fstat, statx(fd, "")) are in fdOpsNotCounted, in no total; per run = the difference between two runs of the packer (N/2 and N runs) over N/2, ' +
        "so the packer's own start-up and exit are reported once, not spread over the runs",
      wholeRunAverage: { total: round(count.total / launched, 3), namespace: round(count.namespace / launched, 3) },
      stracedSeconds: round(big.seconds, 2),
      traceMB: round(big.traceMB, 1),
      traceLines: count.lines,
      perRun: perRun(count, launched),
    },
  };
}
