import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ThemisError } from '../model/errors.js';
import { setStop } from '../store/ensemble-state.js';
import type { OnCompletion, RunRecord } from '../store/records.js';

/** What every hook receives (one object, so hooks can take what they need). */
export interface HookContext {
  /** null inside prepEnsemble/postEnsemble. */
  runId: number | null;
  run: RunRecord | null;
  runDir: string | null;
  setupDir: string;
  /** A `Themis` handle on this ensemble (the API's `Themis.open(setupDir)`), or null if unavailable. */
  themis: unknown;
  /** Ask every packer to start no new run (running ones finish). */
  stopEnsemble(): void;
}

export type HookName = 'prepEnsemble' | 'prepRun' | 'postRun' | 'postEnsemble';
type HookFn = (ctx: HookContext) => unknown;

/**
 * Opens the `Themis` handle hooks get, on first use. Handed in by the caller (the CLI, the API):
 * the packer sits below the API and never imports it.
 */
export type ThemisOpener = () => unknown;

/** The seed's snake_case names are accepted too, so a ported interface works unchanged. */
const ALIASES: Record<HookName, string[]> = {
  prepEnsemble: ['prepEnsemble', 'prep_ensemble'],
  prepRun: ['prepRun', 'prep_run'],
  postRun: ['postRun', 'post_run'],
  postEnsemble: ['postEnsemble', 'post_ensemble'],
};

/** The application interface (`--interface`, an ES module), loaded once per packer. */
export class Hooks {
  private themisHandle: unknown = undefined;
  /** Told at once when a hook calls stopEnsemble(), so this packer stops before its next heartbeat. */
  onStop: ((reason: string) => void) | null = null;

  private constructor(
    private readonly fns: Partial<Record<HookName, HookFn>>,
    private readonly setupDir: string,
    private readonly by: string,
    private readonly openThemis: ThemisOpener | null,
  ) {}

  static none(setupDir: string, by: string): Hooks {
    return new Hooks({}, setupDir, by, null);
  }

  /** Import the interface module; every hook is optional. A module that fails to load is an input error. */
  static async load(file: string | null, setupDir: string, by: string, openThemis: ThemisOpener | null = null): Promise<Hooks> {
    if (!file) return Hooks.none(setupDir, by);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, unknown>;
    } catch (e) {
      throw new ThemisError('INPUT', `cannot load the application interface ${file}: ${(e as Error).message}; fix the module or the ensemble's "interface"`, { cause: e });
    }
    const source = (mod.default && typeof mod.default === 'object' ? { ...(mod.default as object), ...mod } : mod) as Record<string, unknown>;
    const fns: Partial<Record<HookName, HookFn>> = {};
    for (const [name, aliases] of Object.entries(ALIASES) as [HookName, string[]][]) {
      for (const a of aliases) {
        if (typeof source[a] === 'function') {
          fns[name] = source[a] as HookFn;
          break;
        }
      }
    }
    return new Hooks(fns, setupDir, by, openThemis);
  }

  has(name: HookName): boolean {
    return this.fns[name] !== undefined;
  }

  private async themis(): Promise<unknown> {
    if (this.themisHandle !== undefined) return this.themisHandle;
    try {
      this.themisHandle = this.openThemis ? ((await this.openThemis()) ?? null) : null;
    } catch {
      this.themisHandle = null;
    }
    return this.themisHandle;
  }

  /** Call a hook (awaiting a promise it returns); the result, or undefined when the hook is absent. */
  async call(name: HookName, run: { id: number; record: RunRecord; dir: string } | null): Promise<unknown> {
    const fn = this.fns[name];
    if (!fn) return undefined;
    const ctx: HookContext = {
      runId: run?.id ?? null,
      run: run?.record ?? null,
      runDir: run?.dir ?? null,
      setupDir: this.setupDir,
      themis: await this.themis(),
      stopEnsemble: () => {
        const reason = `stopEnsemble() called by ${name}${run ? ` of run ${run.id}` : ''}`;
        setStop(this.setupDir, { reason, by: this.by, kind: 'stop-ensemble' });
        this.onStop?.(reason);
      },
    };
    return await fn(ctx);
  }
}

/** Run the ensemble's `on_completion` command once; resolves with its exit code (never throws). */
export function runOnCompletion(cmd: OnCompletion, defaultLog: string): Promise<number> {
  return new Promise((resolve) => {
    const open = (file: string | null) => fs.openSync(path.resolve(cmd.cwd, file ?? defaultLog), 'a');
    let out: number;
    let err: number;
    try {
      fs.mkdirSync(path.dirname(path.resolve(cmd.cwd, defaultLog)), { recursive: true });
      out = open(cmd.stdout);
      err = cmd.stderr === cmd.stdout ? out : open(cmd.stderr);
    } catch {
      resolve(126);
      return;
    }
    const child = spawn(cmd.args[0]!, cmd.args.slice(1), { cwd: cmd.cwd, stdio: ['ignore', out, err] });
    fs.closeSync(out);
    if (err !== out) fs.closeSync(err);
    child.once('error', () => resolve(127));
    child.once('exit', (code) => resolve(code ?? 1));
  });
}
