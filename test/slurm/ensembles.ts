/**
 * What the real-Slurm suites read back from an ensemble a job ran: its run directories, their
 * statuses, and the diagnostics printed when a case fails (the assertion alone rarely explains it).
 */
import fs from 'node:fs';
import path from 'node:path';

/** An ensemble a suite generated: its root, the ledger the test application appends to, its name. */
export interface SuiteEnsemble {
  dir: string;
  ledger: string;
  name: string;
}

export function safeList(d: string): string[] {
  try {
    return fs.readdirSync(d);
  } catch {
    return [];
  }
}

/** Run directories by id, from the index (`index/*.jsonl`, dirs relative to the ensemble root). */
export function runDirs(e: { dir: string }): Map<number, string> {
  const out = new Map<number, string>();
  const idx = path.join(e.dir, '.themis_setup', 'index');
  for (const f of safeList(idx).sort()) {
    for (const line of fs.readFileSync(path.join(idx, f), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const rec = JSON.parse(line) as { id: number; dir: string };
      out.set(rec.id, path.resolve(e.dir, rec.dir));
    }
  }
  return out;
}

export interface RunStatus {
  status: string;
  jobId: string | null;
  restarts: number;
}

/** Each run's status.json (`missing` when it cannot be read). */
export function readStatuses(e: { dir: string }): Map<number, RunStatus> {
  const out = new Map<number, RunStatus>();
  for (const [id, d] of runDirs(e)) {
    try {
      out.set(id, JSON.parse(fs.readFileSync(path.join(d, '.themis', 'status.json'), 'utf8')) as RunStatus);
    } catch {
      out.set(id, { status: 'missing', jobId: null, restarts: 0 });
    }
  }
  return out;
}

/**
 * One ledger line the test application wrote from inside a run: `kind id job at node gpus step pid`
 * (space-separated; a suite's application may leave the last fields out or put more after them).
 */
export interface LedgerLine {
  kind: string;
  id: number;
  job: string;
  at: number;
  node: string;
  gpus: string;
  step: string;
}

export function readLedger(e: { ledger: string }): LedgerLine[] {
  return fs
    .readFileSync(e.ledger, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [kind, id, job, at, node, gpus, step] = l.split(' ');
      return { kind: kind!, id: Number(id), job: job!, at: Number(at), node: node!, gpus: gpus!, step: step ?? '' };
    });
}

/** On failure, print the packer logs, batch scripts, statuses and ledger of the ensemble, then rethrow. */
export async function withDiagnostics(e: () => SuiteEnsemble | undefined, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const ens = e();
    if (ens) {
      const lines: string[] = [`--- diagnostics for ${ens.name} in ${ens.dir}`];
      for (const sub of ['logs', 'batch']) {
        const d = path.join(ens.dir, '.themis_setup', sub);
        for (const f of safeList(d)) {
          const p = path.join(d, f);
          if (fs.statSync(p).isFile()) lines.push(`== ${sub}/${f}\n${fs.readFileSync(p, 'utf8').split('\n').slice(-40).join('\n')}`);
        }
      }
      const st = [...readStatuses(ens)];
      const counts = new Map<string, number>();
      for (const [, s] of st) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
      lines.push(`== statuses ${JSON.stringify([...counts])}`);
      if (st.length <= 50) lines.push(`== by run ${JSON.stringify(st.map(([id, s]) => [id, s.status, s.jobId]))}`);
      const ledger = fs.readFileSync(ens.ledger, 'utf8').split('\n');
      lines.push(`== ledger${ledger.length > 61 ? ' (last 60 lines)' : ''}\n${ledger.slice(-61).join('\n')}`);
      console.error(lines.join('\n'));
    }
    throw err;
  }
}
