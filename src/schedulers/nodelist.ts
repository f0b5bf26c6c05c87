import { ThemisError } from '../model/errors.js';

/**
 * Expand a Slurm hostlist (`SLURM_JOB_NODELIST`) into host names, keeping zero padding:
 * `n[1-3,5],gpu[01-02]` -> n1 n2 n3 n5 gpu01 gpu02. Several bracket groups in one name
 * (`r[1-2]n[1-2]`) expand as a cartesian product, as Slurm does.
 */
export function expandNodelist(list: string): string[] {
  const out: string[] = [];
  for (const item of splitTopLevel(list.trim())) {
    if (item !== '') out.push(...expandOne(item, list));
  }
  return out;
}

/** Split on commas that are not inside brackets. */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts.map((p) => p.trim());
}

function expandOne(item: string, whole: string): string[] {
  const open = item.indexOf('[');
  if (open < 0) return [item];
  const close = item.indexOf(']', open);
  if (close < 0) throw new ThemisError('INPUT', `bad Slurm node list ${JSON.stringify(whole)}: "[" without "]" in ${JSON.stringify(item)}`);
  const prefix = item.slice(0, open);
  const rest = expandOne(item.slice(close + 1), whole);
  const out: string[] = [];
  for (const range of item.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!m) throw new ThemisError('INPUT', `bad Slurm node list ${JSON.stringify(whole)}: range ${JSON.stringify(range)} is not N or N-M`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new ThemisError('INPUT', `bad Slurm node list ${JSON.stringify(whole)}: range ${range} runs backwards`);
    const width = m[1]!.length;
    for (let n = lo; n <= hi; n++) {
      const num = String(n).padStart(width, '0');
      for (const tail of rest) out.push(prefix + num + tail);
    }
  }
  return out;
}

/**
 * Expand Slurm's compressed per-node counts (`SLURM_JOB_CPUS_PER_NODE`): `4(x2),2` -> [4,4,2].
 */
export function expandCounts(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)(?:\(x(\d+)\))?\s*$/.exec(part);
    if (!m) continue;
    const times = m[2] === undefined ? 1 : Number(m[2]);
    for (let i = 0; i < times; i++) out.push(Number(m[1]));
  }
  return out;
}
