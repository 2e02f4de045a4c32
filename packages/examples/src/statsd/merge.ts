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
 */
import type { GaugeOps, Partial } from './aggregate.js';
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
  /** name → sample-rate-corrected total of the interval. */
  counters: Record<string, number>;
  /** name → value (every gauge ever set, as Etsy statsd keeps them). */
  gauges: Record<string, number>;
  /** name → unique members in the interval. */
  sets: Record<string, number>;
  /** name → count, sum, mean, min, max, median, p<NN>. */
  timers: Record<string, TimerSummary>;
}

/** A record without a prototype: keys such as `__proto__` stay ordinary keys. */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

interface TimerAcc {
  count: number;
  chunks: number[][];
  n: number;
}

export class IntervalMerge {
  private counters = new Map<string, number>();
  private timers = new Map<string, TimerAcc>();
  private sets = new Map<string, Set<string>>();
  private gauges = new Map<string, GaugeOps[]>();
  private badLines = 0;
  private metrics = 0;
  private packets = 0;
  private partials = 0;

  /** Number of partials merged since the last finish(). */
  get size(): number {
    return this.partials;
  }

  add(p: Partial): void {
    this.partials++;
    for (const [k, v] of p.counters) this.counters.set(k, (this.counters.get(k) ?? 0) + v);
    for (const [k, t] of p.timers) {
      const acc = this.timers.get(k);
      if (acc) {
        acc.count += t.count;
        acc.chunks.push(t.values);
        acc.n += t.values.length;
      } else {
        this.timers.set(k, { count: t.count, chunks: [t.values], n: t.values.length });
      }
    }
    for (const [k, members] of p.sets) {
      let s = this.sets.get(k);
      if (!s) this.sets.set(k, (s = new Set()));
      for (const m of members) s.add(m);
    }
    for (const [k, ops] of p.gauges) {
      const list = this.gauges.get(k);
      if (list) list.push(ops);
      else this.gauges.set(k, [ops]);
    }
    this.badLines += p.badLines;
    this.metrics += p.metrics;
    this.packets += p.packets;
  }

  /**
   * Ends the interval: replays gauge operations onto `gauges` (the persisted values,
   * updated in place) and returns the interval's figures. Starts a new interval.
   * `observe` sees each timer's raw values (the histograms).
   */
  finish(
    gauges: Map<string, number>,
    percentiles: readonly number[],
    meta: Pick<FlushResult, 'timestamp' | 'flush' | 'final' | 'interval_ms' | 'missing_workers'>,
    observe?: (key: string, values: Float64Array) => void,
  ): FlushResult {
    for (const [k, list] of this.gauges) gauges.set(k, replayGauge(gauges.get(k), list));
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
      observe?.(k, all);
      timers[k] = timerSummary(all, acc.count, percentiles);
    }
    const g = record<number>();
    for (const [k, v] of gauges) g[k] = v;
    const result: FlushResult = {
      ...meta,
      bad_lines_seen: this.badLines,
      metrics_received: this.metrics,
      packets_received: this.packets,
      counters,
      gauges: g,
      sets,
      timers,
    };
    this.counters = new Map();
    this.timers = new Map();
    this.sets = new Map();
    this.gauges = new Map();
    this.badLines = 0;
    this.metrics = 0;
    this.packets = 0;
    this.partials = 0;
    return result;
  }
}

/**
 * Applies gauge operations from one or more partials onto `start`, in receive-time
 * order (stable: ties keep partial order, and one partial's ops keep their order).
 * An op without a sign sets the value; a signed one adds to it (to 0 when unset, as
 * Etsy statsd does).
 */
export function replayGauge(start: number | undefined, list: readonly GaugeOps[]): number {
  let value = start;
  const apply = (abs: boolean, v: number): void => {
    value = abs || value === undefined ? v : value + v;
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
    let bestT = Infinity;
    for (let j = 0; j < list.length; j++) {
      const ops = list[j]!;
      const i = pos[j]!;
      if (i < ops.t.length && ops.t[i]! < bestT) {
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
