/**
 * A worker's share of one flush interval: what it parsed since its last flush, kept
 * so that partials of several workers merge into exactly what one process would have
 * computed from all the lines (see merge.ts):
 *
 * - counters: the sum of `value * (1 / rate)` per key, added in arrival order (as
 *   Etsy statsd does); for a key that had a negative increment, also the sum of its
 *   positive increments and the number and sum of its negative ones (statsd_exporter
 *   adds only the positive ones to a Prometheus counter and counts each negative one);
 * - gauges: the operations themselves, in receive-time order, each with its receive
 *   time: the kernel's (rinfo.timestamp, native engine) or this process's clock; an
 *   absolute value drops the operations before it (they can no longer matter);
 * - timers: by default a native histogram (native-histogram.ts) of the values in
 *   Prometheus's units (seconds for `ms`, as statsd_exporter converts them; times a
 *   mapping's `scale`), whose memory does not grow with traffic, plus the exact count,
 *   sum, min and max; with `timerMode: 'exact'`, every raw value instead (Etsy's
 *   exact percentiles); and, when the timer is served as a classic histogram, its
 *   exact count per bucket (`le` inclusive, as client_golang), one number per bound
 *   and one above the last: a native histogram's bucket can straddle a bound;
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
import { NativeHistogram, firstAtOrAbove, type NativeHistogramData } from './native-histogram.js';
import { splitKey } from './keys.js';
import { parseDatagram, parseSimpleDatagram, type BadLineCode, type MetricSink, type ParseOptions } from './parser.js';
import { ALL_TAG_STYLES, type TagStyles } from './tag-styles.js';
import type { TimerTotals } from './timer-stats.js';
import { zeroTallies, type Tallies } from './tallies.js';

/** Gauge operations of one key, in receive-time order; only the first may be absolute. */
export interface GaugeOps {
  /** ops[0] sets the value (it had no sign); all others add. */
  abs: boolean;
  /** Receive times (ns since the epoch), one per op, non-decreasing. */
  t: bigint[];
  /** Values, one per op. */
  v: number[];
}

/**
 * A timer's interval in a worker's partial: the totals (count Σ 1/rate, sum kept finite,
 * n, min, max, and scale: 0.001 for `ms` (to seconds), 1 for `h` and `d`, times a
 * mapping's `scale`), and its values as a histogram or raw.
 */
export interface TimerPartial extends TimerTotals {
  /** Histogram mode: the values times `scale`, each weighted as statsd_exporter weights a sampled one (trunc(1/rate), at least 1). */
  hist?: NativeHistogramData;
  /** Histogram mode, when a value was sampled: every value counted once (Etsy's percentiles are over the values, not their weights). */
  unweighted?: NativeHistogramData;
  /** Exact mode: every value received, in arrival order. */
  values?: number[];
  /** Exact mode: each value's weight, present when one is not 1. */
  weights?: number[];
  /** Classic histogram: values ≤ each bound and above the last (not cumulative); see TimerOptions.classic. */
  classic?: Float64Array;
}

/** The classic buckets a timer is served with. */
export interface ClassicBuckets {
  /** Upper bounds, inclusive, ascending, in the units of `convert`'s results. */
  bounds: readonly number[];
  /** A raw value (as sent) in the bounds' units. */
  convert(value: number): number;
  /** Count a sampled value trunc(1/rate) times (statsd_exporter), else once. */
  weighted: boolean;
}

/** How a worker keeps its timers. */
export interface TimerOptions {
  /** 'histogram' (default): bounded memory; 'exact': every raw value. */
  mode: 'histogram' | 'exact';
  /** Schema of the histograms (default 5). */
  schema: number;
  /** Most buckets in one timer's histogram in one interval; more lower its schema (default 2048). */
  maxBuckets: number;
  /** Prometheus units per unit of a timer's values (default: 0.001 for `ms`, else 1). */
  scale(name: string, type: 'ms' | 'h' | 'd'): number;
  /** The classic buckets a timer is served with, counted exactly here (default: none). */
  classic(name: string, type: 'ms' | 'h' | 'd'): ClassicBuckets | undefined;
}

export const DEFAULT_TIMER_OPTIONS: TimerOptions = {
  mode: 'histogram',
  schema: 5,
  maxBuckets: 2048,
  scale: (_name, type) => (type === 'ms' ? 0.001 : 1),
  classic: () => undefined,
};

/** A timer of the interval being received. */
interface LiveTimer extends TimerTotals {
  hist: NativeHistogram | undefined;
  unweighted: NativeHistogram | undefined;
  values: number[] | undefined;
  weights: number[] | undefined;
  buckets: ClassicBuckets | undefined;
  classic: Float64Array | undefined;
}

/** A counter key's increments split by sign, kept once one was negative (the Prometheus side adds only the positive ones). */
export interface CounterSigns {
  /** Σ of the increments ≥ 0 (`value * (1 / rate)` each). */
  positive: number;
  /** Number of negative increments. */
  negatives: number;
  /** Σ of the negative increments. */
  negativeSum: number;
}

/** statsd_exporter observes a value sampled at rate r trunc(1/r) times. */
export function sampleWeight(sampleRate: number): number {
  return Math.max(1, Math.trunc(1 / sampleRate));
}

/** A worker's partial aggregate: plain data, structured-cloneable for IPC. */
export interface Partial extends Tallies {
  counters: [key: string, total: number][];
  /** Keys of `counters` that had a negative increment, with their increments by sign. */
  counterSigns?: [key: string, signs: CounterSigns][];
  gauges: [key: string, ops: GaugeOps][];
  timers: [key: string, timer: TimerPartial][];
  sets: [key: string, members: string[]][];
  /** DogStatsD events, in arrival order (at most maxKeys per interval; more are counted in keysOverLimit). */
  events: DogEvent[];
  /** DogStatsD service checks, likewise. */
  serviceChecks: ServiceCheck[];
}

export function emptyPartial(): Partial {
  return {
    counters: [],
    gauges: [],
    timers: [],
    sets: [],
    events: [],
    serviceChecks: [],
    ...zeroTallies(),
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
  /** How timers are kept. Default: DEFAULT_TIMER_OPTIONS. */
  timers?: { [K in keyof TimerOptions]?: TimerOptions[K] };
}

export class PartialAggregate implements MetricSink {
  /** Totals in holders: one Map lookup per increment, not a get and a set. */
  private counters = new Map<string, { v: number; signs: CounterSigns | undefined }>();
  private gauges = new Map<string, GaugeOps>();
  private timers = new Map<string, LiveTimer>();
  private readonly timerOptions: TimerOptions;
  private sets = new Map<string, Set<string>>();
  /** The interval's tallies (tallies.ts). */
  private t = zeroTallies();
  private keys = 0;
  private events: DogEvent[] = [];
  private serviceChecks: ServiceCheck[] = [];
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
    this.timerOptions = { ...DEFAULT_TIMER_OPTIONS, ...opts.timers };
  }

  /** Parses and aggregates one datagram; `rinfo.timestamp`, when there is one, orders its gauge operations. */
  datagram(msg: Buffer | string, rinfo?: Received): void {
    this.t.packets++;
    this.current = rinfo;
    if (typeof msg === 'string') this.t.metrics += parseDatagram(msg, this, this.parse);
    else if (parseSimpleDatagram(msg, this, this.maxName)) this.t.metrics++;
    else this.t.metrics += parseDatagram(msg.toString(), this, this.parse);
    this.current = undefined;
  }

  /** True if a new key may be added this interval (else counts the line as over the limit). */
  private room(): boolean {
    if (this.keys < this.maxKeys) {
      this.keys++;
      return true;
    }
    this.t.keysOverLimit++;
    return false;
  }

  counter(key: string, value: number, sampleRate: number): void {
    // Etsy's formula, term for term: value * (1 / rate).
    let total = this.counters.get(key);
    if (total === undefined) {
      if (!this.room()) return;
      this.counters.set(key, (total = { v: 0, signs: undefined }));
    }
    const x = value * (1 / sampleRate);
    const sum = total.v + x;
    if (!Number.isFinite(sum)) {
      this.t.overflows++;
      return;
    }
    // Until a negative increment, the total is the positive sum.
    if (x < 0 && !total.signs) total.signs = { positive: total.v, negatives: 0, negativeSum: 0 };
    const s = total.signs;
    if (s) {
      if (x < 0) {
        s.negatives++;
        s.negativeSum += x;
      } else if (Number.isFinite(s.positive + x)) s.positive += x;
      else {
        this.t.overflows++;
        return;
      }
    }
    total.v = sum;
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

  timer(key: string, value: number, sampleRate: number, type: 'ms' | 'h' | 'd' = 'ms'): void {
    let tm = this.timers.get(key);
    const o = this.timerOptions;
    if (!tm) {
      if (!this.room()) return;
      const exact = o.mode === 'exact';
      const name = splitKey(key).name;
      const buckets = o.classic(name, type);
      tm = {
        count: 0,
        sum: 0,
        n: 0,
        min: Infinity,
        max: -Infinity,
        scale: o.scale(name, type),
        hist: exact ? undefined : new NativeHistogram(o.schema),
        unweighted: undefined,
        values: exact ? [] : undefined,
        weights: undefined,
        buckets,
        classic: buckets ? new Float64Array(buckets.bounds.length + 1) : undefined,
      };
      this.timers.set(key, tm);
    }
    const sum = tm.sum + value;
    const count = tm.count + 1 / sampleRate;
    if (!Number.isFinite(sum) || !Number.isFinite(count)) {
      this.t.overflows++;
      return;
    }
    const w = sampleWeight(sampleRate);
    if (tm.hist) {
      if (w !== 1) tm.unweighted ??= tm.hist.clone();
      tm.hist.observe(value * tm.scale, w);
      if (tm.hist.buckets > o.maxBuckets) tm.hist.limit(o.maxBuckets);
      if (tm.unweighted) {
        tm.unweighted.observe(value * tm.scale);
        if (tm.unweighted.buckets > o.maxBuckets) tm.unweighted.limit(o.maxBuckets);
      }
    } else {
      if (w !== 1) tm.weights ??= new Array<number>(tm.values!.length).fill(1);
      tm.weights?.push(w);
      tm.values!.push(value);
    }
    if (tm.classic) {
      const b = tm.buckets!;
      tm.classic[firstAtOrAbove(b.bounds, b.convert(value))]! += b.weighted ? w : 1;
    }
    if (value < tm.min) tm.min = value;
    if (value > tm.max) tm.max = value;
    tm.n++;
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

  bad(line: string, reason: string, code: BadLineCode): void {
    this.t.badLines++;
    this.t.badReasons[code]++;
    if (code === 'name_length') this.t.namesTooLong++;
    this.onBadLine?.(line, reason);
  }

  event(e: DogEvent): void {
    this.t.eventsSeen++;
    if (this.events.length + this.serviceChecks.length < this.maxKeys) this.events.push(e);
    else this.t.keysOverLimit++;
  }

  serviceCheck(c: ServiceCheck): void {
    this.t.serviceChecksSeen++;
    if (this.events.length + this.serviceChecks.length < this.maxKeys) this.serviceChecks.push(c);
    else this.t.keysOverLimit++;
  }

  ignoredFields(n: number): void {
    this.t.ignoredFields += n;
  }

  /** True when nothing was received since the last take(). */
  get empty(): boolean {
    return this.t.packets === 0;
  }

  /** Returns the partial aggregate and starts a new one. */
  take(): Partial {
    const p: Partial = {
      counters: Array.from(this.counters, ([k, t]): [string, number] => [k, t.v]),
      counterSigns: signsOf(this.counters),
      gauges: [...this.gauges],
      timers: Array.from(this.timers, ([k, t]): [string, TimerPartial] => [k, timerPartial(t)]),
      sets: [...this.sets].map(([k, s]) => [k, [...s]]),
      events: this.events,
      serviceChecks: this.serviceChecks,
      ...this.t,
    };
    this.t = zeroTallies();
    this.events = [];
    this.serviceChecks = [];
    this.counters = new Map();
    this.gauges = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.keys = 0;
    return p;
  }
}

function signsOf(counters: Map<string, { signs: CounterSigns | undefined }>): [string, CounterSigns][] | undefined {
  let out: [string, CounterSigns][] | undefined;
  for (const [k, t] of counters) if (t.signs) (out ??= []).push([k, t.signs]);
  return out;
}

function timerPartial(t: LiveTimer): TimerPartial {
  const p: TimerPartial = { count: t.count, sum: t.sum, n: t.n, min: t.min, max: t.max, scale: t.scale };
  if (t.hist) p.hist = t.hist.toData();
  if (t.unweighted) p.unweighted = t.unweighted.toData();
  if (t.values) p.values = t.values;
  if (t.weights) p.weights = t.weights;
  if (t.classic) p.classic = t.classic;
  return p;
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
