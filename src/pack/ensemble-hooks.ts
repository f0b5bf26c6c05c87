import fs from 'node:fs';
import path from 'node:path';
import { ThemisError } from '../model/errors.js';
import { readGeneration, takeOnce } from '../store/ensemble-state.js';
import { setupPaths } from '../store/layout.js';
import type { OnCompletion } from '../store/records.js';
import { runOnCompletion, type Hooks } from './hooks.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** prepEnsemble once per ensemble: the first packer runs it, the others wait until it is done. */
export async function prepEnsemble(setupDir: string, hooks: Hooks, log: (l: string) => void): Promise<void> {
  if (!hooks.has('prepEnsemble')) return;
  const p = setupPaths(setupDir);
  if (fs.existsSync(p.prepEnsembleDone)) return;
  if (takeOnce(p.prepEnsembleLock)) {
    try {
      await hooks.call('prepEnsemble', null);
    } catch (e) {
      fs.rmSync(p.prepEnsembleLock, { recursive: true, force: true });
      throw new ThemisError('INPUT', `prepEnsemble failed: ${(e as Error)?.message ?? e}; fix the interface and start the packer again`, { cause: e });
    }
    takeOnce(p.prepEnsembleDone);
    return;
  }
  log('waiting for another packer to finish prepEnsemble');
  while (!fs.existsSync(p.prepEnsembleDone)) {
    if (!fs.existsSync(p.prepEnsembleLock)) return prepEnsemble(setupDir, hooks, log);
    await sleep(250);
  }
}

/** postEnsemble, then on_completion, once per generation by whoever sees the ensemble complete. */
export async function completeEnsemble(setupDir: string, hooks: Hooks, onCompletion: OnCompletion | null, log: (l: string) => void): Promise<void> {
  const p = setupPaths(setupDir);
  if (!hooks.has('postEnsemble') && !onCompletion) return;
  if (!takeOnce(p.postEnsembleMark(String(readGeneration(setupDir))))) return;
  try {
    await hooks.call('postEnsemble', null);
  } catch (e) {
    log(`postEnsemble failed: ${(e as Error)?.stack ?? e}`);
  }
  if (onCompletion) {
    const code = await runOnCompletion(onCompletion, path.join(p.logsDir, 'on-completion.log'));
    log(`on_completion ${onCompletion.args.join(' ')} exited ${code}`);
  }
}
