import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, runThemis, writeScript } from '../helpers/cli.js';
import { readStatusOf, waitFor } from './helpers.js';

/**
 * An ensemble submitted with `themis submit` to a fake scheduler that runs the job here
 * (`fixtures/bin/_jobs.sh`: `THEMIS_FAKE_RUN_JOBS`), as the real engine would start the batch
 * script: the fakes' environment and signals follow ../shared/notes/lsf.md and flux.md.
 * `tmp` makes the ensemble's directory (`tempDirs()` in the test file removes it).
 */
export function fakeJobEnsemble(tmp: () => string, genArgs: string[], runs: number, extraEnv: Record<string, string> = {}, appBody = 'sleep 30\n') {
  const root = tmp();
  const jobs = path.join(root, 'jobs');
  fs.mkdirSync(jobs);
  const env: Record<string, string> = { PATH: `${path.join(FIXTURES, 'bin')}:${process.env.PATH}`, THEMIS_FAKE_RUN_JOBS: jobs, ...extraEnv };
  const app = writeScript(path.join(root, 'sim.sh'), appBody);
  fs.writeFileSync(path.join(root, 'samples.csv'), `x\n${Array.from({ length: runs }, (_, i) => i + 1).join('\n')}\n`);
  const gen = runThemis(['gen', app, 'samples.csv', ...genArgs], { cwd: root, env });
  if (gen.code !== 0) throw new Error(`gen failed: ${gen.stderr}`);
  const runDir = (id: number) => path.join(root, 'runs', String(id));
  return {
    root,
    env,
    gen,
    runDir,
    /** `themis submit`; the job id the fake printed. */
    submit(): { jobId: string; stdout: string } {
      const r = runThemis(['submit', '--json'], { cwd: root, env });
      if (r.code !== 0) throw new Error(`submit failed: ${r.stderr}`);
      return { jobId: JSON.parse(r.stdout).jobs[0].jobId as string, stdout: r.stdout };
    },
    /** Run one of the fake scheduler's commands, as a user would. */
    command(argv: string[]) {
      return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: root, env: { ...process.env, ...env } });
    },
    /** The job's exit code, once its script ended (null: killed, it never wrote one). */
    async exitCode(jobId: string, ms = 20_000): Promise<number> {
      const rc = path.join(jobs, `${jobId}.rc`);
      await waitFor(() => fs.existsSync(rc), ms, `job ${jobId} to end (output: ${path.join(jobs, `${jobId}.out`)})`);
      return Number(fs.readFileSync(rc, 'utf8').trim());
    },
    output: (jobId: string) => fs.readFileSync(path.join(jobs, `${jobId}.out`), 'utf8'),
    /** What the fakes recorded (with THEMIS_FAKE_LOG in `extraEnv`). */
    calls(): { tool: string; argv: string[]; env: Record<string, string> }[] {
      const log = env.THEMIS_FAKE_LOG;
      if (!log || !fs.existsSync(log)) return [];
      return fs
        .readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    },
    async allRunning(n: number, pidOf: (runDir: string) => number | null): Promise<number[]> {
      const dirs = Array.from({ length: n }, (_, i) => runDir(i + 1));
      await waitFor(() => dirs.every((d) => readStatusOf(d).status === 'running' && pidOf(d) !== null), 15_000, 'every run running');
      return dirs.map((d) => pidOf(d)!);
    },
  };
}
