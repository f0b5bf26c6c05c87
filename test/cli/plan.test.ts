import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runThemis, tempDirs } from '../helpers/cli.js';

const temp = tempDirs('themis-plan-cli-');

function ensemble(extra: string[] = []): string {
  const dir = temp();
  const rows = ['secs,cores_per_task'];
  for (let i = 0; i < 32; i++) rows.push(`${20 + (i % 3) * 10},${1 + (i % 2)}`);
  fs.writeFileSync(path.join(dir, 's.csv'), rows.join('\n') + '\n');
  const r = runThemis(['gen', '/bin/sleep', 's.csv', '--no-batch-script', '--scheduler', 'slurm', '--vary-all', '-a', '%%secs%%', ...extra], { cwd: dir });
  expect(r.code, r.stderr).toBe(0);
  return dir;
}

describe('themis plan and --nodes auto', () => {
  it('plans a fresh ensemble from a sample column and says which estimate it used', () => {
    const dir = ensemble();
    const r = runThemis(['plan', '--runtime-column', 'secs', '--walltime', '2', '--nodes', '1,2,4', '--cores-per-node', '8', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.runs).toBe(32);
    expect(p.estimate.said).toMatch(/sample column "secs"/);
    expect(p.candidates.map((c: { nodes: number }) => c.nodes)).toEqual([1, 2, 4]);
    const best = p.candidates[p.recommended];
    expect(best.finishes).toBe(true);
    expect(p.candidates.filter((c: { finishes: boolean; nodeHours: number }) => c.finishes && c.nodeHours < best.nodeHours)).toEqual([]);
    const text = runThemis(['plan', '--runtime', '30s', '--walltime', '2', '--cores-per-node', '8'], { cwd: dir });
    expect(text.stdout).toMatch(/durations: the given estimate: 30 s per step/);
    expect(text.stdout).toMatch(/^recommended: \d+ nodes?/m);
  });

  it('says what to give when nothing has run yet', () => {
    const dir = ensemble();
    const r = runThemis(['plan'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--runtime 90s.*--runtime-column NAME/);
  });

  it('gen --nodes auto --walltime chooses the node count, prints why, and writes it into the batch script', () => {
    const dir = ensemble(['--nodes', 'auto', '--walltime', '1', '--runtime-column', 'secs', '--cores-per-node', '8', '--name', 'p']);
    const script = fs.readFileSync(path.join(dir, '.themis_setup/batch/p-1.sh'), 'utf8');
    const nodes = Number(/--nodes=(\d+)/.exec(script)![1]);
    expect(nodes).toBeGreaterThan(1);
    const again = runThemis(['gen', '/bin/sleep', 's.csv', '--no-batch-script', '--scheduler', 'slurm', '--vary-all', '-a', '%%secs%%', '--nodes', 'auto', '--overwrite'], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/give --walltime MINUTES/);
  });
});
