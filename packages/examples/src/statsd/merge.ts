/**
 * Merging workers' partials (aggregate.ts) into one flush interval's figures, in the
 * supervisor process, so that the result equals what a single process would have
 * computed from every line:
 *
 * - counters: partials' totals added. Exact for integer-valued totals; with fractional
 *   values a key that lands on one worker (the `key` policy) is summed in exactly
 *   Etsy's order; one spread over several workers may differ in the last bit.
 * - sets: union of members. Exact.
 * - timers: all raw values concatenated, then sorted and summarized (timer-stats.ts).
 *   Exact: order does not matter once sorted.
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
import type { GaugeOps, Partial } from './aggregate.js';
import type { DogEvent, ServiceCheck } from './dogstatsd.js';
import { timerSummary, type TimerSummary } from './timer-stats.js';

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
}

/** A record without a prototype: keys such as `__proto__` stay ordinary keys. */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

interface TimerAcc {
  count: number;
  sum: number;
  chunks: number[][];
  n: number;
}

export interface MergeLimits {
  /** Most distinct keys in one merged interval, and most persisted gauges. */
  maxKeys: number;
  /** Flushes without an update after which a gauge is forgotten (0: never). */
  gaugeExpiry: number;
}

const NO_LIMITS: MergeLimits = { maxKeys: Infinity, gaugeExpiry: 0 };

/** The gauges kept across flushes, with the flush that last updated each. */
export class GaugeStore {
  readonly values = new Map<string, number>();
  readonly updated = new Map<string, number>();
}

export class IntervalMerge {
  private counters = new Map<string, number>();
  private timers = new Map<string, TimerAcc>();
  private sets = new Map<string, Set<string>>();
  private gauges = new Map<string, GaugeOps[]>();
  private badLines = 0;
  private metrics = 0;
  private packets = 0;
  private namesTooLong = 0;
  private keysOverLimit = 0;
  private overflows = 0;
  private keys = 0;
  private partials = 0;
  private events: DogEvent[] = [];
  private serviceChecks: ServiceCheck[] = [];
  private ignoredFields = 0;

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
    this.keysOverLimit++;
    return false;
  }

  add(p: Partial): void {
    this.partials++;
    for (const [k, v] of p.counters) {
      const old = this.counters.get(k);
      if (old === undefined && !this.room()) continue;
      const sum = (old ?? 0) + v;
      if (Number.isFinite(sum)) this.counters.set(k, sum);
      else this.overflows++;
    }
    for (const [k, t] of p.timers) {
      const acc = this.timers.get(k);
      if (acc) {
        const sum = acc.sum + t.sum;
        const count = acc.count + t.count;
        if (!Number.isFinite(sum) || !Number.isFinite(count)) {
          this.overflows += t.values.length;
          continue;
        }
        acc.sum = sum;
        acc.count = count;
        acc.chunks.push(t.values);
        acc.n += t.values.length;
      } else if (this.room()) {
        this.timers.set(k, { count: t.count, sum: t.sum, chunks: [t.values], n: t.values.length });
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
      else this.keysOverLimit++;
    }
    for (const c of p.serviceChecks) {
      if (this.events.length + this.serviceChecks.length < this.limits.maxKeys) this.serviceChecks.push(c);
      else this.keysOverLimit++;
    }
    this.ignoredFields += p.ignoredFields;
    this.badLines += p.badLines;
    this.metrics += p.metrics;
    this.packets += p.packets;
    this.namesTooLong += p.namesTooLong;
    this.keysOverLimit += p.keysOverLimit;
    this.overflows += p.overflows;
  }

  /**
   * Ends the interval: replays gauge operations onto `store` (the persisted values,
   * updated in place; gauges idle for `gaugeExpiry` flushes are forgotten) and returns
   * the interval's figures. Starts a new interval. `observe` sees each timer's raw
   * values (the histograms).
   */
  finish(
    store: GaugeStore,
    percentiles: readonly number[],
    meta: Pick<FlushResult, 'timestamp' | 'flush' | 'final' | 'interval_ms' | 'missing_workers'>,
    observe?: (key: string, values: Float64Array) => void,
  ): FlushResult {
    const gauges = store.values;
    const overflow = { n: 0 };
    for (const [k, list] of this.gauges) {
      const old = gauges.get(k);
      if (old === undefined && gauges.size >= this.limits.maxKeys) {
        this.keysOverLimit++;
        continue;
      }
      gauges.set(k, replayGauge(old, list, overflow));
      store.updated.set(k, meta.flush);
    }
    this.overflows += overflow.n;
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
    for (const [k, v] of this.counters) counters[k] = v;
    const sets = record<number>();
    for (const [k, s] of this.sets) sets[k] = s.size;
    const timers = record<TimerSummary>();
    for (const [k, acc] of this.timers) {
      if (acc.n === 0) continue;
      const all = new Float64Array(acc.n);
      let o = 0;
      for (const c of acc.chunks) {
        all.set(c, o);
        o += c.length;
      }
      const t = timerSummary(all, acc.count, percentiles);
      // Sorted, the same values could still round past the largest double.
      if (Number.isFinite(t.sum)) {
        observe?.(k, all);
        timers[k] = t;
      } else {
        this.overflows += acc.n;
      }
    }
    const g = record<number>();
    for (const [k, v] of gauges) g[k] = v;
    const result: FlushResult = {
      ...meta,
      bad_lines_seen: this.badLines,
      metrics_received: this.metrics,
      packets_received: this.packets,
      names_too_long: this.namesTooLong,
      keys_over_limit: this.keysOverLimit,
      overflows: this.overflows,
      gauges_expired: expired,
      counters,
      gauges: g,
      sets,
      timers,
      events: this.events,
      service_checks: this.serviceChecks,
      ignored_fields: this.ignoredFields,
    };
    this.events = [];
    this.serviceChecks = [];
    this.ignoredFields = 0;
    this.counters = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.gauges = new Map();
    this.badLines = 0;
    this.metrics = 0;
    this.packets = 0;
    this.namesTooLong = 0;
    this.keysOverLimit = 0;
    this.overflows = 0;
    this.keys = 0;
    this.partials = 0;
    return result;
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
