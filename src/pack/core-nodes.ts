import type { ExitRecord } from './launcher-protocol.js';
import type { Route } from './launch-policy.js';
import { markDown, type Slot } from './pool.js';
import type { HeldRun } from './state.js';
import type { Core } from './transitions.js';

/*
 * The packer core's transitions about job steps and the launchers of other nodes: the step limit
 * (a launch through the scheduler, or the first on a node, takes a job step), a node given up, a
 * node launcher that died, a launch the infrastructure refused. See `transitions.ts`.
 */

/**
 * The job step a launch needs, if any, within the step limit: one per launch through the
 * scheduler, and one for the first launch on each other node (its launcher). Past the limit a
 * scheduler launch blocks the run here, and a node without a launcher yet is given up; the run
 * goes back to the queue with why, no restart used. False when it does not launch.
 */
export function takeJobStep(c: Core, a: HeldRun, slot: Slot, route: Route): boolean {
  const s = c.s;
  const remoteNode = route.kind === 'node' && route.node !== s.cfg.launch.ownNode ? route.node : null;
  const needs = route.kind === 'scheduler' || (remoteNode !== null && s.nodes[remoteNode]!.launcher === 'none');
  if (!needs) return true;
  const limit = s.cfg.stepLimit;
  // One step is kept for the cleanup after a node launcher dies.
  if (s.steps.exhausted || (limit !== null && s.steps.used + 1 > limit - 1)) {
    const why = s.steps.exhausted
      ? "the allocation's job steps are used up (the scheduler refused a step: its step limit was reached)"
      : `the allocation's job steps are used up (${s.steps.used} of the step limit ${limit}, MaxStepCount)`;
    c.giveBack(slot);
    if (remoteNode !== null) {
      nodeDown(c, remoteNode, `${why}: no launcher can start there`);
      c.requeue(a, `not started: ${why}`);
    } else {
      s.blocked.set(a.id, why);
      c.log(`run ${a.id} step ${a.status.step} cannot start: ${why}`);
      c.requeue(a, `blocked: ${why}`);
    }
    return false;
  }
  s.steps.used++;
  if (route.kind === 'scheduler') s.steps.scheduler++;
  else {
    s.steps.nodeLaunchers++;
    s.nodes[remoteNode!]!.launcher = 'up';
  }
  return true;
}

/** Place nothing more on node `n`: its cores and GPUs leave the pool, and the packer says why. */
function nodeDown(c: Core, n: number, why: string): void {
  const s = c.s;
  if (s.pool.down.has(n)) return;
  s.pool = markDown(s.pool, n);
  c.log(`stopping placing steps on node ${s.pool.nodes[n]!.name}: ${why}`);
  c.out.push({ type: 'decide-soon' });
}

/**
 * The launcher of node `n` died. Steps whose exit its journal holds are settled from it; the
 * others died with it (or are stopped now, `clean-node`) and go back to the queue, no restart
 * used. The node gets a new launcher with its next step; after a second loss it is given up.
 */
export function nodeLost(c: Core, n: number, why: string, journaled: { key: string; exit: ExitRecord }[]): void {
  const s = c.s;
  const st = s.nodes[n];
  if (!st) return;
  st.losses++;
  st.launcher = 'none';
  const name = s.pool.nodes[n]!.name;
  const exits = new Map(journaled.map((j) => [j.key, j.exit]));
  const pids: number[] = [];
  for (const [key, a] of [...s.byKey]) {
    const p = a.phase;
    if (p.kind !== 'running' && p.kind !== 'lost') continue;
    if (p.route?.kind !== 'node' || p.route.node !== n) continue;
    if (p.pid > 0 && !exits.has(key)) pids.push(p.pid);
    if (p.kind === 'lost') {
      c.dropLost(a);
      continue;
    }
    const exit: ExitRecord = exits.get(key) ?? {
      format: 1,
      runId: a.id,
      step: a.status.step,
      attempt: a.status.attempt,
      code: null,
      signal: 'SIGKILL',
      stoppedBy: 'interrupt',
      startedAt: c.at.iso,
      endedAt: c.at.iso,
      host: name,
      pid: p.pid,
    };
    c.settleExit(a, p.slot, key, exit);
  }
  c.log(`the launcher on node ${name} died (${why}); ${st.losses < 2 ? 'its runs go back to the queue and the next step there starts a new one' : 'its runs go back to the queue'}`);
  if (pids.length > 0 && (s.cfg.stepLimit === null || s.steps.used < s.cfg.stepLimit)) {
    s.steps.used++;
    c.out.push({ type: 'clean-node', node: n, pids });
  }
  if (st.losses >= 2) nodeDown(c, n, `its launcher died ${st.losses} times (last: ${why})`);
}

/** A launch that never started (its node's launcher could not start): back to the queue, no restart used. */
export function spawnRefused(c: Core, key: string, why: string): void {
  const s = c.s;
  const a = s.byKey.get(key);
  if (!a) return;
  const p = a.phase;
  if (p.kind === 'lost') {
    c.dropLost(a);
    return;
  }
  if (p.kind !== 'running') return;
  s.byKey.delete(key);
  c.giveBack(p.slot);
  if (p.route.kind === 'node' && p.route.node !== s.cfg.launch.ownNode) {
    s.nodes[p.route.node]!.launcher = 'none';
    nodeDown(c, p.route.node, why);
  }
  c.log(`run ${a.id} step ${a.status.step} not started: ${why}`);
  c.requeue(a, `not started: ${why}`);
}
