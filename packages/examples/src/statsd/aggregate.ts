/**
 * A worker's share of one flush interval: what it parsed since its last flush, kept
 * so that partials of several workers merge into exactly what one process would have
 * computed from all the lines (see merge.ts):
 *
 * - counters: the sum of `value * (1 / rate)` per key, added in arrival order (as
 *   Etsy statsd does);
 * - gauges: the operations themselves, in arrival order, each with its receive time;
 *   an absolute value drops the operations before it (they can no longer matter);
 * - timers: every raw value and the sample-rate-corrected count (no sketch, no
 *   approximation);
 * - sets: the members.
 */
import { performance } from 'node:perf_hooks';
import { parseDatagram, parseSimpleDatagram, type MetricSink } from './parser.js';

/** Gauge operations of one key, oldest first; only the first may be absolute. */
export interface GaugeOps {
  /** ops[0] sets the value (it had no sign); all others add. */
  abs: boolean;
  /** Receive times (ms since the epoch, sub-millisecond), one per op. */
  t: number[];
  /** Values, one per op. */
  v: number[];
}

export interface TimerPartial {
  /** Σ 1/rate: the count Etsy statsd reports. */
  count: number;
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
}

export function emptyPartial(): Partial {
  return { counters: [], gauges: [], timers: [], sets: [], badLines: 0, metrics: 0, packets: 0 };
}

/** Wall-clock time in ms with sub-millisecond resolution, monotonic within a process. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface PartialAggregateOptions {
  /** Receive-time clock for gauge operations. Default: preciseNow. */
  clock?: () => number;
  /** Called for each bad line (e.g. to log the first few). */
  onBadLine?: (line: string, reason: string) => void;
}

export class PartialAggregate implements MetricSink {
  private counters = new Map<string, number>();
  private gauges = new Map<string, GaugeOps>();
  private timers = new Map<string, TimerPartial>();
  private sets = new Map<string, Set<string>>();
  private badLines = 0;
  private metrics = 0;
  private packets = 0;
  private readonly clock: () => number;
  private readonly onBadLine: ((line: string, reason: string) => void) | undefined;

  constructor(opts: PartialAggregateOptions = {}) {
    this.clock = opts.clock ?? preciseNow;
    this.onBadLine = opts.onBadLine;
  }

  /** Parses and aggregates one datagram. */
  datagram(msg: Buffer | string): void {
    this.packets++;
    if (typeof msg === 'string') this.metrics += parseDatagram(msg, this);
    else if (parseSimpleDatagram(msg, this)) this.metrics++;
    else this.metrics += parseDatagram(msg.toString(), this);
  }

  counter(key: string, value: number, sampleRate: number): void {
    // Etsy's formula, term for term: value * (1 / rate).
    this.counters.set(key, (this.counters.get(key) ?? 0) + value * (1 / sampleRate));
  }

  gauge(key: string, value: number, relative: boolean): void {
    const t = this.clock();
    const ops = this.gauges.get(key);
    if (!relative) {
      // An absolute value makes everything before it irrelevant.
      this.gauges.set(key, { abs: true, t: [t], v: [value] });
    } else if (ops) {
      ops.t.push(t);
      ops.v.push(value);
    } else {
      this.gauges.set(key, { abs: false, t: [t], v: [value] });
    }
  }

  timer(key: string, value: number, sampleRate: number): void {
    let tm = this.timers.get(key);
    if (!tm) this.timers.set(key, (tm = { count: 0, values: [] }));
    tm.values.push(value);
    tm.count += 1 / sampleRate;
  }

  set(key: string, member: string): void {
    let s = this.sets.get(key);
    if (!s) this.sets.set(key, (s = new Set()));
    s.add(member);
  }

  bad(line: string, reason: string): void {
    this.badLines++;
    this.onBadLine?.(line, reason);
  }

  /** True when nothing was received since the last take(). */
  get empty(): boolean {
    return this.packets === 0;
  }

  /** Returns the partial aggregate and starts a new one. */
  take(): Partial {
    const p: Partial = {
      counters: [...this.counters],
      gauges: [...this.gauges],
      timers: [...this.timers],
      sets: [...this.sets].map(([k, s]) => [k, [...s]]),
      badLines: this.badLines,
      metrics: this.metrics,
      packets: this.packets,
    };
    this.counters = new Map();
    this.gauges = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.badLines = 0;
    this.metrics = 0;
    this.packets = 0;
    return p;
  }
}
