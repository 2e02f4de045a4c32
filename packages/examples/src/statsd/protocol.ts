/**
 * The messages between the statsd app's worker side and its supervisor side (through
 * AppContext.send / AppSupervisorContext.broadcast):
 *
 *   worker → supervisor  hello    on start: "count me in flush rounds" (index, pid)
 *   supervisor → workers flush    "send your partial for round `id`, and reset"
 *   worker → supervisor  partial  the reply (id), or the last one on a graceful stop
 *                                 (final: true, sent by the close hook after the drain)
 */
import type { Partial } from './aggregate.js';
import { hasTallies } from './tallies.js';

export interface HelloMessage {
  t: 'statsd.hello';
  index: number;
  pid: number;
}

export interface FlushRequest {
  t: 'statsd.flush';
  id: number;
}

export interface PartialMessage {
  t: 'statsd.partial';
  index: number;
  pid: number;
  /** The round answered; null for a final partial that answers none. */
  id: number | null;
  final: boolean;
  partial: Partial;
}

export type FromWorker = HelloMessage | PartialMessage;

function isObject(m: unknown): m is Record<string, unknown> {
  return typeof m === 'object' && m !== null;
}

export function isFlushRequest(m: unknown): m is FlushRequest {
  return isObject(m) && m.t === 'statsd.flush' && typeof m.id === 'number';
}

const isArray = Array.isArray;

function isPartial(p: unknown): p is Partial {
  return (
    isObject(p) &&
    isArray(p.counters) &&
    isArray(p.gauges) &&
    isArray(p.timers) &&
    isArray(p.sets) &&
    isArray(p.events) &&
    isArray(p.serviceChecks) &&
    hasTallies(p)
  );
}

export function isFromWorker(m: unknown): m is FromWorker {
  if (!isObject(m) || typeof m.index !== 'number' || typeof m.pid !== 'number') return false;
  if (m.t === 'statsd.hello') return true;
  return m.t === 'statsd.partial' && (m.id === null || typeof m.id === 'number') && typeof m.final === 'boolean' && isPartial(m.partial);
}
