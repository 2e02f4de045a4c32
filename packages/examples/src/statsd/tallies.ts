/**
 * What an interval counts besides its metrics: a worker's partial carries these
 * tallies (aggregate.ts), the supervisor's merge adds them up (merge.ts). One list,
 * declared, checked, added and reset here.
 */
export interface Tallies {
  /** Lines that are not StatsD (every reason, those below included). */
  badLines: number;
  /** Non-empty lines. */
  metrics: number;
  /** Datagrams. */
  packets: number;
  /** Lines rejected for a name (with tags) longer than maxNameLength (also in badLines). */
  namesTooLong: number;
  /** Lines dropped because the interval already had maxKeys distinct keys. */
  keysOverLimit: number;
  /** Values dropped because a sum would have overflowed. */
  overflows: number;
  /** Fields of good lines that were unknown (or had an invalid value) and were ignored. */
  ignoredFields: number;
}

export const TALLY_KEYS: readonly (keyof Tallies)[] = ['badLines', 'metrics', 'packets', 'namesTooLong', 'keysOverLimit', 'overflows', 'ignoredFields'];

export function zeroTallies(): Tallies {
  return { badLines: 0, metrics: 0, packets: 0, namesTooLong: 0, keysOverLimit: 0, overflows: 0, ignoredFields: 0 };
}

export function addTallies(into: Tallies, from: Tallies): void {
  for (const k of TALLY_KEYS) into[k] += from[k];
}

/** Whether `p` carries every tally as a number (a message from a worker, checked). */
export function hasTallies(p: Record<string, unknown>): boolean {
  return TALLY_KEYS.every((k) => typeof p[k] === 'number');
}
