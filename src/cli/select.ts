import { type Themis, statusSet } from '../api/themis.js';
import { ThemisError } from '../model/errors.js';
import type { RunStatus } from '../model/status.js';
import { parseIdList } from '../store/run-ops.js';

/** Options shared by commands that act on some runs: `IDS` (`1-10,15`) and/or `--status NAME`. */
export interface SelectArgs {
  ids?: (string | number)[];
  status?: string[];
}

/** Parse `IDS…` words into ids (each word may be a list: `1-3,7 9`). */
export function idsFromWords(words: readonly (string | number)[] | undefined): number[] | null {
  if (!words || words.length === 0) return null;
  return parseIdList(words.map(String).join(','));
}

/**
 * The runs a command acts on: the ids given, narrowed (or, without ids, chosen) by `--status`.
 * `required`: with neither, it is a usage error naming both ways to choose.
 */
export async function selectRuns(themis: Themis, args: SelectArgs, required: boolean, verb: string): Promise<number[] | null> {
  const ids = idsFromWords(args.ids);
  const statuses = (args.status ?? []).flatMap((s) => String(s).split(',')).filter((s) => s !== '');
  if (statuses.length === 0) {
    if (ids === null && required) {
      throw new ThemisError('USAGE', `say which runs to ${verb}: run ids like \`1-10,15\`, or --status NAME (e.g. --status failed)`);
    }
    return ids;
  }
  statusSet(statuses); // validates the names
  const matching = await themis.filterByStatus(...(statuses as RunStatus[]));
  if (ids === null) return matching;
  const keep = new Set(matching);
  return ids.filter((id) => keep.has(id));
}

/** Compact id list for messages: [1,2,3,7] -> "1-3,7". */
export function formatIds(ids: readonly number[]): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
