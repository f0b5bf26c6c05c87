import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { aliveHere, deadHere, hostName, pidNs, thisProcess } from '../../src/store/proc.js';

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('aliveHere / deadHere: is the process a record names alive, judged only where its pid means something', () => {
  it('this process is alive here; a dead or reused pid here is dead', () => {
    expect(aliveHere(thisProcess())).toBe(true);
    expect(deadHere(thisProcess())).toBe(false);
    const gone = { host: hostName(), pid: deadPid(), pidStart: null, pidNs: pidNs() };
    expect([aliveHere(gone), deadHere(gone)]).toEqual([false, true]);
    const reused = { ...thisProcess(), pidStart: '1' };
    expect([aliveHere(reused), deadHere(reused)]).toEqual([false, true]);
    // Records written before themis recorded start times or namespaces: host name and pid alone.
    expect(aliveHere({ host: hostName(), pid: process.pid })).toBe(true);
  });

  it('another host or pid namespace: neither alive nor dead (cannot judge)', () => {
    const other = { host: 'some-other-node', pid: deadPid(), pidStart: null, pidNs: pidNs() };
    expect([aliveHere(other), deadHere(other)]).toEqual([false, false]);
    if (pidNs() !== null) {
      const container = { host: hostName(), pid: deadPid(), pidStart: null, pidNs: 'pid:[1]' };
      expect([aliveHere(container), deadHere(container)]).toEqual([false, false]);
    }
  });
});
