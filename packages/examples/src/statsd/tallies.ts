/**
 * What an interval counts besides its metrics: a worker's partial carries these
 * tallies (aggregate.ts), the supervisor's merge adds them up (merge.ts). One list,
 * declared, checked, added and reset here.
 */
import { BAD_LINE_CODES, type BadLineCode } from './parser.js';

/** The tallies that are one number each. */
export interface CountTallies {
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
  /** DogStatsD events parsed, kept or dropped by maxKeys (then also in keysOverLimit). */
  eventsSeen: number;
  /** DogStatsD service checks parsed, kept or dropped by maxKeys. */
  serviceChecksSeen: number;
}

export interface Tallies extends CountTallies {
  /** Bad lines by reason; they add up to badLines. */
  badReasons: Record<BadLineCode, number>;
}

export const TALLY_KEYS: readonly (keyof CountTallies)[] = [
  'badLines',
  'metrics',
  'packets',
  'namesTooLong',
  'keysOverLimit',
  'overflows',
  'ignoredFields',
  'eventsSeen',
  'serviceChecksSeen',
];

export function zeroBadReasons(): Record<BadLineCode, number> {
  const r = {} as Record<BadLineCode, number>;
  for (const c of BAD_LINE_CODES) r[c] = 0;
  return r;
}

export function zeroTallies(): Tallies {
  return {
    badLines: 0,
    metrics: 0,
    packets: 0,
    namesTooLong: 0,
    keysOverLimit: 0,
    overflows: 0,
    ignoredFields: 0,
    eventsSeen: 0,
    serviceChecksSeen: 0,
    badReasons: zeroBadReasons(),
  };
}

export function addTallies(into: Tallies, from: Tallies): void {
  for (const k of TALLY_KEYS) into[k] += from[k];
  for (const c of BAD_LINE_CODES) into.badReasons[c] += from.badReasons[c];
}

/** Whether `p` carries every tally as a number (a message from a worker, checked). */
export function hasTallies(p: Record<string, unknown>): boolean {
  const reasons = p.badReasons;
  if (typeof reasons !== 'object' || reasons === null) return false;
  const r = reasons as Record<string, unknown>;
  return TALLY_KEYS.every((k) => typeof p[k] === 'number') && BAD_LINE_CODES.every((c) => typeof r[c] === 'number');
}
