import fs from 'node:fs';
import path from 'node:path';
import { forgetJournal, launchEntry, listJournals, parseJournal } from '../../src/store/journal.js';
import { runPaths, setupPaths } from '../../src/store/layout.js';
import type { ExitRecord, StatusRecord, StepStartRecord } from '../../src/store/records.js';

/**
 * What tests read of a run's launches: the step process a `running` status points to (its start
 * record in the packer's journal), and every exit journaled for a run.
 */

function statusOf(runDir: string): StatusRecord | null {
  try {
    return JSON.parse(fs.readFileSync(runPaths(runDir).status, 'utf8')) as StatusRecord;
  } catch {
    return null;
  }
}

/** The setup dir of the test ensembles: `<root>/.themis_setup`, runs in `<root>/runs/<id>`. */
function setupOf(runDir: string): string {
  return path.join(path.dirname(path.dirname(runDir)), '.themis_setup');
}

/** The start record of the step the run's `running` status names, once its launcher journaled it; else null. */
export function stepStart(runDir: string, setupDir = setupOf(runDir)): StepStartRecord | null {
  const s = statusOf(runDir);
  if (s?.status !== 'running' || !s.launch) return null;
  return launchEntry(setupDir, s.launch).start;
}

/** The pid (= process group) of the run's running step, or null while it has not started. */
export function stepPid(runDir: string, setupDir = setupOf(runDir)): number | null {
  return stepStart(runDir, setupDir)?.pid ?? null;
}

/** Every exit journaled for run `runId`, in every journal of the setup directory (journals of packers that ended cleanly are gone). */
export function journaledExits(setupDir: string, runId: number): ExitRecord[] {
  const out: ExitRecord[] = [];
  for (const id of listJournals(setupDir)) {
    const file = setupPaths(setupDir).packerJournal(id);
    forgetJournal(file);
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const e of parseJournal(text).values()) if (e.exit && e.exit.runId === runId) out.push(e.exit);
  }
  return out;
}

/** Write a journal line by hand, as a launcher would (for planting a dead packer's journal). */
export function appendJournal(setupDir: string, packerId: string, kind: 'S' | 'E', key: string, record: object | string): void {
  const file = setupPaths(setupDir).packerJournal(packerId);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.appendFileSync(file, `${kind} ${key} ${typeof record === 'string' ? record : JSON.stringify(record)}\n`);
}
