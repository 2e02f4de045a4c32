/**
 * A worker's share of one flush interval: what it parsed since its last flush, kept
 * so that partials of several workers merge into exactly what one process would have
 * computed from all the lines (see merge.ts):
 *
 * - counters: the sum of `value * (1 / rate)` per key, added in arrival order (as
 *   Etsy statsd does);
 * - gauges: the operations themselves, in receive-time order, each with its receive
 *   time: the kernel's (rinfo.timestamp, native engine) or this process's clock; an
 *   absolute value drops the operations before it (they can no longer matter);
 * - timers: every raw value and the sample-rate-corrected count (no sketch, no
 *   approximation);
 * - sets: the members;
 * - DogStatsD events and service checks: each one, as parsed (they are not metrics,
 *   and are kept apart from them), and the count of ignored fields.
 *
 * Limits (options.ts): a line whose name is too long is a bad line (and counted as
 * such); a key beyond `maxKeys` distinct keys in the interval is dropped and counted;
 * a value that would make a sum non-finite is dropped and counted (`overflows`).
 */
import { performance } from 'node:perf_hooks';
import type { DogEvent, ServiceCheck } from './dogstatsd.js';
import { parseDatagram, parseSimpleDatagram, type BadLineCode, type MetricSink, type ParseOptions } from './parser.js';
import { ALL_TAG_STYLES, type TagStyles } from './tag-styles.js';

/** Gauge operations of one key, in receive-time order; only the first may be absolute. */
export interface GaugeOps {
  /** ops[0] sets the value (it had no sign); all others add. */
  abs: boolean;
  /** Receive times (ns since the epoch), one per op, non-decreasing. */
  t: bigint[];
  /** Values, one per op. */
  v: number[];
}

export interface TimerPartial {
  /** Σ 1/rate: the count Etsy statsd reports. */
  count: number;
  /** Σ values (kept finite: a value that would overflow it is rejected). */
  sum: number;
  /** Every value received, in arrival order. */
  values: number[];
}

/** A worker's partial aggregate: plain data, structured-cloneable for IPC. */
export interface Partial {
  counters: [key: string, total: number][];
  gauges: [key: string, ops: GaugeOps][];
  timers: [key: string, timer: TimerPartial][];
  sets: [key: string, members: string[]][];
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
  /** DogStatsD events, in arrival order (at most maxKeys per interval; more are counted in keysOverLimit). */
  events: DogEvent[];
  /** DogStatsD service checks, likewise. */
  serviceChecks: ServiceCheck[];
  /** Fields of good lines that were unknown (or had an invalid value) and were ignored. */
  ignoredFields: number;
}

export function emptyPartial(): Partial {
  return {
    counters: [], gauges: [], timers: [], sets: [], badLines: 0, metrics: 0, packets: 0, namesTooLong: 0, keysOverLimit: 0, overflows: 0,
    events: [], serviceChecks: [], ignoredFields: 0,
  };
}

/** Wall-clock time in ns since the epoch (µs resolution), monotonic within a process. */
export function preciseNow(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** What a datagram's receive time comes from (a RemoteInfo fits). */
export interface Received {
  readonly timestamp?: bigint | undefined;
}

export interface PartialAggregateOptions {
  /** Receive-time clock for gauge operations without a kernel timestamp. Default: preciseNow. */
  clock?: () => bigint;
  /** Called for each bad line (e.g. to log the first few). */
  onBadLine?: (line: string, reason: string) => void;
  /** Longest name (with tags) accepted, in characters. Default: no limit. */
  maxNameLength?: number;
  /** Most distinct keys (all types) in one interval, and most events and service checks. Default: no limit. */
  maxKeys?: number;
  /** Which name-embedded tag styles are read (tag-styles.ts). Default: all. */
  tagStyles?: TagStyles;
}

export class PartialAggregate implements MetricSink {
  /** Totals in holders: one Map lookup per increment, not a get and a set. */
  private counters = new Map<string, { v: number }>();
  private gauges = new Map<string, GaugeOps>();
  private timers = new Map<string, TimerPartial>();
  private sets = new Map<string, Set<string>>();
  private badLines = 0;
  private metrics = 0;
  private packets = 0;
  private namesTooLong = 0;
  private keysOverLimit = 0;
  private overflows = 0;
  private keys = 0;
  private events: DogEvent[] = [];
  private serviceChecks: ServiceCheck[] = [];
  private ignored = 0;
  private readonly parse: ParseOptions;
  private readonly clock: () => bigint;
  private readonly onBadLine: ((line: string, reason: string) => void) | undefined;
  private readonly maxName: number;
  private readonly maxKeys: number;
  /** The datagram being parsed (its timestamp is read only if it holds a gauge). */
  private current: Received | undefined;

  constructor(opts: PartialAggregateOptions = {}) {
    this.clock = opts.clock ?? preciseNow;
    this.onBadLine = opts.onBadLine;
    this.maxName = opts.maxNameLength ?? Infinity;
    this.maxKeys = opts.maxKeys ?? Infinity;
    this.parse = { ...(opts.tagStyles ?? ALL_TAG_STYLES), maxName: this.maxName };
  }

  /** Parses and aggregates one datagram; `rinfo.timestamp`, when there is one, orders its gauge operations. */
  datagram(msg: Buffer | string, rinfo?: Received): void {
    this.packets++;
    this.current = rinfo;
    if (typeof msg === 'string') this.metrics += parseDatagram(msg, this, this.parse);
    else if (parseSimpleDatagram(msg, this, this.maxName)) this.metrics++;
    else this.metrics += parseDatagram(msg.toString(), this, this.parse);
    this.current = undefined;
  }

  /** True if a new key may be added this interval (else counts the line as over the limit). */
  private room(): boolean {
    if (this.keys < this.maxKeys) {
      this.keys++;
      return true;
    }
    this.keysOverLimit++;
    return false;
  }

  counter(key: string, value: number, sampleRate: number): void {
    // Etsy's formula, term for term: value * (1 / rate).
    let total = this.counters.get(key);
    if (total === undefined) {
      if (!this.room()) return;
      this.counters.set(key, (total = { v: 0 }));
    }
    const sum = total.v + value * (1 / sampleRate);
    if (Number.isFinite(sum)) total.v = sum;
    else this.overflows++;
  }

  gauge(key: string, value: number, relative: boolean): void {
    const t = this.current?.timestamp ?? this.clock();
    const ops = this.gauges.get(key);
    if (!ops) {
      if (this.room()) this.gauges.set(key, { abs: !relative, t: [t], v: [value] });
      return;
    }
    const last = ops.t.length - 1;
    if (t >= ops.t[last]!) {
      if (!relative) {
        // An absolute value makes everything before it irrelevant.
        ops.abs = true;
        ops.t = [t];
        ops.v = [value];
      } else {
        ops.t.push(t);
        ops.v.push(value);
      }
      return;
    }
    insertGaugeOp(ops, t, value, relative);
  }

  timer(key: string, value: number, sampleRate: number): void {
    let tm = this.timers.get(key);
    if (!tm) {
      if (!this.room()) return;
      this.timers.set(key, (tm = { count: 0, sum: 0, values: [] }));
    }
    const sum = tm.sum + value;
    const count = tm.count + 1 / sampleRate;
    if (!Number.isFinite(sum) || !Number.isFinite(count)) {
      this.overflows++;
      return;
    }
    tm.values.push(value);
    tm.sum = sum;
    tm.count = count;
  }

  set(key: string, member: string): void {
    let s = this.sets.get(key);
    if (!s) {
      if (!this.room()) return;
      this.sets.set(key, (s = new Set()));
    }
    s.add(member);
  }

  bad(line: string, reason: string, code?: BadLineCode): void {
    this.badLines++;
    if (code === 'name_length') this.namesTooLong++;
    this.onBadLine?.(line, reason);
  }

  event(e: DogEvent): void {
    if (this.events.length + this.serviceChecks.length < this.maxKeys) this.events.push(e);
    else this.keysOverLimit++;
  }

  serviceCheck(c: ServiceCheck): void {
    if (this.events.length + this.serviceChecks.length < this.maxKeys) this.serviceChecks.push(c);
    else this.keysOverLimit++;
  }

  ignoredFields(n: number): void {
    this.ignored += n;
  }

  /** True when nothing was received since the last take(). */
  get empty(): boolean {
    return this.packets === 0;
  }

  /** Returns the partial aggregate and starts a new one. */
  take(): Partial {
    const p: Partial = {
      counters: Array.from(this.counters, ([k, t]): [string, number] => [k, t.v]),
      gauges: [...this.gauges],
      timers: [...this.timers],
      sets: [...this.sets].map(([k, s]) => [k, [...s]]),
      badLines: this.badLines,
      metrics: this.metrics,
      packets: this.packets,
      namesTooLong: this.namesTooLong,
      keysOverLimit: this.keysOverLimit,
      overflows: this.overflows,
      events: this.events,
      serviceChecks: this.serviceChecks,
      ignoredFields: this.ignored,
    };
    this.events = [];
    this.serviceChecks = [];
    this.ignored = 0;
    this.counters = new Map();
    this.gauges = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.badLines = 0;
    this.metrics = 0;
    this.packets = 0;
    this.namesTooLong = 0;
    this.keysOverLimit = 0;
    this.overflows = 0;
    this.keys = 0;
    return p;
  }
}

/**
 * An operation older than the newest one kept (read after it, received before it:
 * two CPUs queueing onto one socket): put in its receive-time place. After an equal
 * time it goes last (arrival order breaks ties).
 */
function insertGaugeOp(ops: GaugeOps, t: bigint, value: number, relative: boolean): void {
  let lo = 0;
  let hi = ops.t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ops.t[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  if (relative) {
    // Before an absolute first op it can no longer matter.
    if (lo === 0 && ops.abs) return;
    ops.t.splice(lo, 0, t);
    ops.v.splice(lo, 0, value);
  } else {
    // Absolute: what came before it is irrelevant; the deltas after it stay.
    ops.abs = true;
    ops.t = [t, ...ops.t.slice(lo)];
    ops.v = [value, ...ops.v.slice(lo)];
  }
}
