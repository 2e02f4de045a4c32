/**
 * Merging workers' partials (aggregate.ts) into one flush interval's figures, in the
 * supervisor process, so that the result equals what a single process would have
 * computed from every line:
 *
 * - counters: partials' totals added. Exact for integer-valued totals; with fractional
 *   values a key that lands on one worker (the `key` policy) is summed in exactly
 *   Etsy's order; one spread over several workers may differ in the last bit. The
 *   flush outputs get these net totals (Etsy); the Prometheus side gets each key's
 *   positive sum and its negative increments apart (`observeCounter`), as
 *   statsd_exporter adds only the positive ones.
 * - sets: union of members. Exact.
 * - timers: the workers' native histograms merged (exact: the merge of any split is
 *   the histogram of all the values), count, sum, min and max added up; the flush's
 *   percentiles come from the merged histogram, within relativeError(schema) of the
 *   exact ones (timer-stats.ts). In exact mode, all raw values concatenated, then
 *   sorted and summarized as Etsy statsd does: order does not matter once sorted.
 * - gauges: every worker's operations are replayed onto the persisted value in
 *   receive-time order (a stable merge: one worker's operations keep their order).
 *   Under `key` a gauge lives on one worker, so this is its exact arrival order. Under
 *   `hash` one gauge's lines can reach several workers; their relative order is then
 *   the order of the workers' receive clocks (sub-millisecond, per process), which
 *   is as good as the kernel's own: datagrams on different sockets have no order.
 *   Gauges persist across flushes (Etsy's default), so deltas apply to the last value.
 *   Receive times are the kernel's (rinfo.timestamp, native engine): one clock for
 *   every socket, so spreading one gauge over workers keeps its exact order.
 *
 * Limits: at most `maxKeys` distinct keys per interval and persisted gauges (more are
 * dropped and counted), gauges forgotten after `gaugeExpiry` flushes without an
 * update, and sums kept finite (what would overflow is dropped and counted).
 */
import type { CounterSigns, GaugeOps, Partial } from './aggregate.js';
import type { DogEvent, ServiceCheck } from './dogstatsd.js';
import type { BadLineCode } from './parser.js';
import { NativeHistogram } from './native-histogram.js';
import { timerSummary, timerSummaryFromHistogram, type TimerSummary, type TimerTotals } from './timer-stats.js';
import { addTallies, zeroTallies } from './tallies.js';

/** One flush interval's merged figures, plain JSON. */
export interface FlushResult {
  /** Unix time in seconds of the flush (Etsy's timestamp). */
  timestamp: number;
  /** 1, 2, … in the life of the service. */
  flush: number;
  /** The last flush, on a graceful stop. */
  final: boolean;
  /** Milliseconds since the previous flush (or since the start). */
  interval_ms: number;
  bad_lines_seen: number;
  metrics_received: number;
  packets_received: number;
  /** Workers that did not send their partial in time (their figures come in a later flush). */
  missing_workers: number[];
  /** Lines rejected for a name longer than maxNameLength (they are in bad_lines_seen too). */
  names_too_long: number;
  /** Lines (or merged keys) dropped because the interval had maxKeys distinct keys. */
  keys_over_limit: number;
  /** Values dropped because a sum (counter, timer, gauge delta) would have overflowed. */
  overflows: number;
  /** Gauges forgotten at this flush after gaugeExpiry flushes without an update. */
  gauges_expired: number;
  /** name → sample-rate-corrected total of the interval. */
  counters: Record<string, number>;
  /** name → value (every gauge ever set, as Etsy statsd keeps them). */
  gauges: Record<string, number>;
  /** name → unique members in the interval. */
  sets: Record<string, number>;
  /** name → count, sum, mean, min, max, median, p<NN>. */
  timers: Record<string, TimerSummary>;
  /** DogStatsD events of the interval, as parsed (kept apart from the metrics). */
  events: DogEvent[];
  /** DogStatsD service checks of the interval, as parsed. */
  service_checks: ServiceCheck[];
  /** Fields of good lines that were unknown (or had an invalid value) and were ignored. */
  ignored_fields: number;
  /** Bad lines by reason (parser.ts BadLineCode); they add up to bad_lines_seen. */
  bad_lines_by_reason: Record<BadLineCode, number>;
  /** DogStatsD events and service checks parsed, kept in `events` / `service_checks` or dropped by maxKeys. */
  events_seen: number;
  service_checks_seen: number;
}

/** A record without a prototype: keys such as `__proto__` stay ordinary keys. */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

interface TimerAcc extends TimerTotals {
  /** Histogram-mode partials, merged. */
  hist: NativeHistogram | undefined;
  /** The same with every value counted once, kept from the first partial that had a sampled value. */
  unweighted: NativeHistogram | undefined;
  /** Exact-mode partials' values (and weights, when one is not 1). */
  chunks: number[][];
  weights: (number[] | undefined)[];
  /** Classic bucket counts added up; undefined once a partial came without them (or with other bounds). */
  classic: Float64Array | undefined;
}

/** One counter's interval as the Prometheus side sees it: its increments by sign. */
export type CounterFlush = CounterSigns;

/** One timer's interval as the Prometheus side sees it. */
export interface TimerFlush {
  /** Every value of the interval, in Prometheus units (value × scale), as a native histogram. */
  hist: NativeHistogram;
  /** Prometheus units per unit of the values. */
  scale: number;
  /** Σ the values received, each once whatever its sample rate, in their own unit (ms for `ms` timers). */
  valueSum: number;
  /** Exact mode: the raw values, sorted (each once, whatever its sample rate). */
  values?: Float64Array;
  /** Exact classic bucket counts (per bound, then above the last; not cumulative), when the workers counted them. */
  classic?: Float64Array;
}

export interface MergeLimits {
  /** Most distinct keys in one merged interval, and most persisted gauges. */
  maxKeys: number;
  /** Flushes without an update after which a gauge is forgotten (0: never). */
  gaugeExpiry: number;
  /** Schema of the histograms built from exact-mode values (default 5). */
  timerSchema?: number;
}

const NO_LIMITS: MergeLimits = { maxKeys: Infinity, gaugeExpiry: 0 };

/** The gauges kept across flushes, with the flush that last updated each. */
export class GaugeStore {
  readonly values = new Map<string, number>();
  readonly updated = new Map<string, number>();
}

export class IntervalMerge {
  private counters = new Map<string, number>();
  /** Keys that had a negative increment in some partial: their increments by sign. */
  private counterSigns = new Map<string, CounterSigns>();
  private timers = new Map<string, TimerAcc>();
  private sets = new Map<string, Set<string>>();
  private gauges = new Map<string, GaugeOps[]>();
  /** The interval's tallies, summed over the partials (tallies.ts). */
  private t = zeroTallies();
  private keys = 0;
  private partials = 0;
  private events: DogEvent[] = [];
  private serviceChecks: ServiceCheck[] = [];

  constructor(private readonly limits: MergeLimits = NO_LIMITS) {}

  /** Number of partials merged since the last finish(). */
  get size(): number {
    return this.partials;
  }

  /** True if a new key may be added this interval (else counts it as over the limit). */
  private room(): boolean {
    if (this.keys < this.limits.maxKeys) {
      this.keys++;
      return true;
    }
    this.t.keysOverLimit++;
    return false;
  }

  add(p: Partial): void {
    this.partials++;
    const signs = p.counterSigns?.length ? new Map(p.counterSigns) : undefined;
    for (const [k, v] of p.counters) {
      const old = this.counters.get(k);
      if (old === undefined && !this.room()) continue;
      const sum = (old ?? 0) + v;
      if (!Number.isFinite(sum)) {
        this.t.overflows++;
        continue;
      }
      this.counters.set(k, sum);
      const ps = signs?.get(k);
      let acc = this.counterSigns.get(k);
      // The partials before had only positive increments of it: their total is its positive sum.
      if (ps && !acc) this.counterSigns.set(k, (acc = { positive: old ?? 0, negatives: 0, negativeSum: 0 }));
      if (acc) {
        acc.positive += ps ? ps.positive : v;
        if (ps) {
          acc.negatives += ps.negatives;
          acc.negativeSum += ps.negativeSum;
        }
      }
    }
    for (const [k, t] of p.timers) {
      let acc = this.timers.get(k);
      if (acc) {
        const sum = acc.sum + t.sum;
        const count = acc.count + t.count;
        if (!Number.isFinite(sum) || !Number.isFinite(count)) {
          this.t.overflows += t.n;
          continue;
        }
        acc.sum = sum;
        acc.count = count;
        acc.n += t.n;
        acc.min = Math.min(acc.min, t.min);
        acc.max = Math.max(acc.max, t.max);
        const c = acc.classic;
        if (c && t.classic?.length === c.length) for (let i = 0; i < c.length; i++) c[i]! += t.classic[i]!;
        else acc.classic = undefined;
      } else if (this.room()) {
        acc = {
          count: t.count,
          sum: t.sum,
          n: t.n,
          min: t.min,
          max: t.max,
          scale: t.scale,
          hist: undefined,
          unweighted: undefined,
          chunks: [],
          weights: [],
          classic: t.classic ? Float64Array.from(t.classic) : undefined,
        };
        this.timers.set(k, acc);
      } else continue;
      if (t.hist) {
        // Until a sampled value shows up, the weighted histogram is the unweighted one.
        if (t.unweighted && !acc.unweighted) acc.unweighted = acc.hist?.clone() ?? new NativeHistogram(t.hist.schema);
        acc.unweighted?.merge(t.unweighted ?? t.hist);
        if (acc.hist) acc.hist.merge(t.hist);
        else acc.hist = NativeHistogram.fromData(t.hist);
      }
      if (t.values) {
        acc.chunks.push(t.values);
        acc.weights.push(t.weights);
      }
    }
    for (const [k, members] of p.sets) {
      let s = this.sets.get(k);
      if (!s) {
        if (!this.room()) continue;
        this.sets.set(k, (s = new Set()));
      }
      for (const m of members) s.add(m);
    }
    for (const [k, ops] of p.gauges) {
      const list = this.gauges.get(k);
      if (list) list.push(ops);
      else if (this.room()) this.gauges.set(k, [ops]);
    }
    // Events and service checks: at most maxKeys of them per interval, the rest counted.
    for (const e of p.events) {
      if (this.events.length + this.serviceChecks.length < this.limits.maxKeys) this.events.push(e);
      else this.t.keysOverLimit++;
    }
    for (const c of p.serviceChecks) {
      if (this.events.length + this.serviceChecks.length < this.limits.maxKeys) this.serviceChecks.push(c);
      else this.t.keysOverLimit++;
    }
    addTallies(this.t, p);
  }

  /**
   * Ends the interval: replays gauge operations onto `store` (the persisted values,
   * updated in place; gauges idle for `gaugeExpiry` flushes are forgotten) and returns
   * the interval's figures. Starts a new interval. `observe` sees each timer's
   * interval (the Prometheus side); `observeCounter` each counter's increments by sign.
   */
  finish(
    store: GaugeStore,
    percentiles: readonly number[],
    meta: Pick<FlushResult, 'timestamp' | 'flush' | 'final' | 'interval_ms' | 'missing_workers'>,
    observe?: (key: string, timer: TimerFlush) => void,
    observeCounter?: (key: string, counter: CounterFlush) => void,
  ): FlushResult {
    const gauges = store.values;
    const overflow = { n: 0 };
    for (const [k, list] of this.gauges) {
      const old = gauges.get(k);
      if (old === undefined && gauges.size >= this.limits.maxKeys) {
        this.t.keysOverLimit++;
        continue;
      }
      gauges.set(k, replayGauge(old, list, overflow));
      store.updated.set(k, meta.flush);
    }
    this.t.overflows += overflow.n;
    let expired = 0;
    const expiry = this.limits.gaugeExpiry;
    if (expiry > 0) {
      for (const [k, at] of store.updated) {
        if (meta.flush - at < expiry) continue;
        store.updated.delete(k);
        gauges.delete(k);
        expired++;
      }
    }
    const counters = record<number>();
    for (const [k, v] of this.counters) {
      counters[k] = v;
      observeCounter?.(k, this.counterSigns.get(k) ?? { positive: v, negatives: 0, negativeSum: 0 });
    }
    const sets = record<number>();
    for (const [k, s] of this.sets) sets[k] = s.size;
    const timers = record<TimerSummary>();
    for (const [k, acc] of this.timers) {
      if (acc.n === 0) continue;
      const t = finishTimer(acc, percentiles, this.limits.timerSchema ?? 5);
      // Sorted, the same values could still round past the largest double.
      if (Number.isFinite(t.summary.sum)) {
        observe?.(k, t.flush);
        timers[k] = t.summary;
      } else {
        this.t.overflows += acc.n;
      }
    }
    const g = record<number>();
    for (const [k, v] of gauges) g[k] = v;
    const result: FlushResult = {
      ...meta,
      bad_lines_seen: this.t.badLines,
      metrics_received: this.t.metrics,
      packets_received: this.t.packets,
      names_too_long: this.t.namesTooLong,
      keys_over_limit: this.t.keysOverLimit,
      overflows: this.t.overflows,
      gauges_expired: expired,
      counters,
      gauges: g,
      sets,
      timers,
      events: this.events,
      service_checks: this.serviceChecks,
      ignored_fields: this.t.ignoredFields,
      bad_lines_by_reason: this.t.badReasons,
      events_seen: this.t.eventsSeen,
      service_checks_seen: this.t.serviceChecksSeen,
    };
    this.events = [];
    this.serviceChecks = [];
    this.counters = new Map();
    this.counterSigns = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.gauges = new Map();
    this.t = zeroTallies();
    this.keys = 0;
    this.partials = 0;
    return result;
  }
}

/**
 * A timer's figures and its histogram. Exact-mode values are summarized as Etsy does and
 * put into a histogram of `schema`; histogram-mode partials give the figures from their
 * merge (both at once only when the mode changed between two workers' lives: then the
 * values join the histogram and the figures come from it).
 */
function finishTimer(acc: TimerAcc, percentiles: readonly number[], schema: number): { summary: TimerSummary; flush: TimerFlush } {
  let all: Float64Array | undefined;
  let weights: Float64Array | undefined;
  if (acc.chunks.length) {
    const n = acc.chunks.reduce((a, c) => a + c.length, 0);
    all = new Float64Array(n);
    const withWeights = acc.weights.some((w) => w !== undefined);
    if (withWeights) weights = new Float64Array(n).fill(1);
    let o = 0;
    for (let i = 0; i < acc.chunks.length; i++) {
      const c = acc.chunks[i]!;
      all.set(c, o);
      const w = acc.weights[i];
      if (w && weights) weights.set(w, o);
      o += c.length;
    }
  }
  if (all && !acc.hist) {
    const hist = new NativeHistogram(schema);
    for (let i = 0; i < all.length; i++) hist.observe(all[i]! * acc.scale, weights ? weights[i]! : 1);
    // timerSummary sorts `all` in place (after the histogram counted it with its weights).
    return { summary: timerSummary(all, acc.count, percentiles), flush: withClassic({ hist, scale: acc.scale, valueSum: acc.sum, values: all }, acc) };
  }
  const hist = acc.hist ?? new NativeHistogram(schema);
  // Every value counted once, for the percentiles: the weighted histogram itself unless a value was sampled.
  let unweighted = acc.unweighted ?? (weights ? hist.clone() : undefined);
  if (all) {
    for (let i = 0; i < all.length; i++) {
      hist.observe(all[i]! * acc.scale, weights ? weights[i]! : 1);
      unweighted?.observe(all[i]! * acc.scale);
    }
  }
  unweighted ??= hist;
  return { summary: timerSummaryFromHistogram(unweighted, acc, percentiles), flush: withClassic({ hist, scale: acc.scale, valueSum: acc.sum }, acc) };
}

function withClassic(f: TimerFlush, acc: TimerAcc): TimerFlush {
  if (acc.classic) f.classic = acc.classic;
  return f;
}

/**
 * Applies gauge operations from one or more partials onto `start`, in receive-time
 * order (stable: ties keep partial order, and one partial's ops keep their order).
 * An op without a sign sets the value; a signed one adds to it (to 0 when unset, as
 * Etsy statsd does). A delta that would overflow is skipped and counted in `overflow`.
 */
export function replayGauge(start: number | undefined, list: readonly GaugeOps[], overflow: { n: number } = { n: 0 }): number {
  let value = start;
  const apply = (abs: boolean, v: number): void => {
    if (abs || value === undefined) value = v;
    else if (Number.isFinite(value + v)) value += v;
    else overflow.n++;
  };
  if (list.length === 1) {
    const ops = list[0]!;
    for (let i = 0; i < ops.v.length; i++) apply(i === 0 && ops.abs, ops.v[i]!);
    return value ?? 0;
  }
  // k-way merge by time; each list is already in its own (monotonic) order.
  const pos = list.map(() => 0);
  for (;;) {
    let best = -1;
    let bestT: bigint | undefined;
    for (let j = 0; j < list.length; j++) {
      const ops = list[j]!;
      const i = pos[j]!;
      if (i < ops.t.length && (bestT === undefined || ops.t[i]! < bestT)) {
        bestT = ops.t[i]!;
        best = j;
      }
    }
    if (best < 0) break;
    const ops = list[best]!;
    const i = pos[best]!;
    apply(i === 0 && ops.abs, ops.v[i]!);
    pos[best] = i + 1;
  }
  return value ?? 0;
}
