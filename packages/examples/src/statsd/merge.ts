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
import type { TimerSummary } from './timer-stats.js';
import { addTallies, zeroTallies } from './tallies.js';
import { addTimerTotals, addTimerValues, finishTimer, newTimerAcc, type TimerAcc, type TimerFlush } from './timer-merge.js';

export type { TimerFlush } from './timer-merge.js';

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

/** One counter's interval as the Prometheus side sees it: its increments by sign. */
export type CounterFlush = CounterSigns;

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

  /** Merges one worker's partial into the interval. */
  add(p: Partial): void {
    this.partials++;
    this.addCounters(p);
    this.addTimers(p);
    this.addSets(p);
    this.addGauges(p);
    this.addEventsAndChecks(p);
    addTallies(this.t, p);
  }

  private addCounters(p: Partial): void {
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
      this.addCounterSigns(k, old, v, signs?.get(k));
    }
  }

  /** Keeps a key's increments by sign once one partial had a negative one (`ps`). */
  private addCounterSigns(k: string, old: number | undefined, v: number, ps: CounterSigns | undefined): void {
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

  private addTimers(p: Partial): void {
    for (const [k, t] of p.timers) {
      let acc = this.timers.get(k);
      if (acc) {
        if (!addTimerTotals(acc, t)) {
          this.t.overflows += t.n;
          continue;
        }
      } else if (this.room()) {
        acc = newTimerAcc(t);
        this.timers.set(k, acc);
      } else continue;
      addTimerValues(acc, t);
    }
  }

  private addSets(p: Partial): void {
    for (const [k, members] of p.sets) {
      let s = this.sets.get(k);
      if (!s) {
        if (!this.room()) continue;
        this.sets.set(k, (s = new Set()));
      }
      for (const m of members) s.add(m);
    }
  }

  private addGauges(p: Partial): void {
    for (const [k, ops] of p.gauges) {
      const list = this.gauges.get(k);
      if (list) list.push(ops);
      else if (this.room()) this.gauges.set(k, [ops]);
    }
  }

  /** Events and service checks: at most maxKeys of them per interval, the rest counted. */
  private addEventsAndChecks(p: Partial): void {
    for (const e of p.events) {
      if (this.events.length + this.serviceChecks.length < this.limits.maxKeys) this.events.push(e);
      else this.t.keysOverLimit++;
    }
    for (const c of p.serviceChecks) {
      if (this.events.length + this.serviceChecks.length < this.limits.maxKeys) this.serviceChecks.push(c);
      else this.t.keysOverLimit++;
    }
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
    this.replayGauges(store, meta.flush);
    const expired = this.expireGauges(store, meta.flush);
    const counters = this.counterFigures(observeCounter);
    const sets = record<number>();
    for (const [k, s] of this.sets) sets[k] = s.size;
    const timers = this.timerFigures(percentiles, observe);
    const gauges = record<number>();
    for (const [k, v] of store.values) gauges[k] = v;
    const result = this.result(meta, expired, counters, gauges, sets, timers);
    this.reset();
    return result;
  }

  /** Replays the interval's gauge operations onto the persisted values (a new gauge only while under maxKeys). */
  private replayGauges(store: GaugeStore, flush: number): void {
    const gauges = store.values;
    const overflow = { n: 0 };
    for (const [k, list] of this.gauges) {
      const old = gauges.get(k);
      if (old === undefined && gauges.size >= this.limits.maxKeys) {
        this.t.keysOverLimit++;
        continue;
      }
      gauges.set(k, replayGauge(old, list, overflow));
      store.updated.set(k, flush);
    }
    this.t.overflows += overflow.n;
  }

  /** Forgets the gauges not updated for gaugeExpiry flushes; returns how many. */
  private expireGauges(store: GaugeStore, flush: number): number {
    let expired = 0;
    const expiry = this.limits.gaugeExpiry;
    if (expiry > 0) {
      for (const [k, at] of store.updated) {
        if (flush - at < expiry) continue;
        store.updated.delete(k);
        store.values.delete(k);
        expired++;
      }
    }
    return expired;
  }

  private counterFigures(observeCounter: ((key: string, counter: CounterFlush) => void) | undefined): Record<string, number> {
    const counters = record<number>();
    for (const [k, v] of this.counters) {
      counters[k] = v;
      observeCounter?.(k, this.counterSigns.get(k) ?? { positive: v, negatives: 0, negativeSum: 0 });
    }
    return counters;
  }

  private timerFigures(percentiles: readonly number[], observe: ((key: string, timer: TimerFlush) => void) | undefined): Record<string, TimerSummary> {
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
    return timers;
  }

  /** The interval's figures, from its tallies and the records built by finish(). */
  private result(
    meta: Pick<FlushResult, 'timestamp' | 'flush' | 'final' | 'interval_ms' | 'missing_workers'>,
    expired: number,
    counters: Record<string, number>,
    gauges: Record<string, number>,
    sets: Record<string, number>,
    timers: Record<string, TimerSummary>,
  ): FlushResult {
    return {
      ...meta,
      bad_lines_seen: this.t.badLines,
      metrics_received: this.t.metrics,
      packets_received: this.t.packets,
      names_too_long: this.t.namesTooLong,
      keys_over_limit: this.t.keysOverLimit,
      overflows: this.t.overflows,
      gauges_expired: expired,
      counters,
      gauges,
      sets,
      timers,
      events: this.events,
      service_checks: this.serviceChecks,
      ignored_fields: this.t.ignoredFields,
      bad_lines_by_reason: this.t.badReasons,
      events_seen: this.t.eventsSeen,
      service_checks_seen: this.t.serviceChecksSeen,
    };
  }

  /** Starts a new interval. */
  private reset(): void {
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
  }
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
