/**
 * StatsD timers as Prometheus histograms: every timer value (milliseconds) counted
 * into cumulative buckets since the service started, exposed in seconds as
 * `shardgram_statsd_timer_seconds_bucket{metric,…tags,le}`, `_sum` and `_count`.
 *
 * Unlike the per-flush percentiles (`shardgram_statsd_timer{stat="p90"}`), buckets add
 * up: `histogram_quantile(0.9, sum by (le) (rate(shardgram_statsd_timer_seconds_bucket[5m])))`
 * is a percentile over every host and worker, within one bucket's width of the exact one.
 * A value counts once whatever its sample rate (`_count` is observations, not Etsy's
 * sample-rate-corrected `count`).
 */
import { PromWriter, type PromLabels } from '@shardgram/udp-core/prom';
import type { TimerFlush } from './merge.js';
import { classicCounts, firstAtOrAbove } from './native-histogram.js';

/** Default bucket upper bounds in milliseconds: 1 ms to 10 s, 1-2.5-5 steps. */
export const DEFAULT_TIMER_BUCKETS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
export const MAX_TIMER_BUCKETS = 64;

export const TIMER_HISTOGRAM = 'shardgram_statsd_timer_seconds';

/**
 * `timerBuckets=1,5,10,50` → [1, 5, 10, 50]: upper bounds in milliseconds, ascending,
 * positive, at most 64 (the `+Inf` bucket is always there). Throws a RangeError
 * whose message says what is expected.
 */
export function parseTimerBuckets(value: string): number[] {
  const expected = `a comma-separated ascending list of up to ${MAX_TIMER_BUCKETS} bucket bounds in milliseconds, each above 0, e.g. 5,10,25,50,100`;
  const parts = value.split(',').map((s) => s.trim());
  const out = parts.map((s) => (/^\d+(?:\.\d+)?$/.test(s) ? Number(s) : NaN));
  if (out.length === 0 || out.length > MAX_TIMER_BUCKETS) throw new RangeError(expected);
  for (let i = 0; i < out.length; i++) {
    const b = out[i]!;
    if (!(b > 0 && Number.isFinite(b)) || (i > 0 && b <= out[i - 1]!)) throw new RangeError(expected);
  }
  return out;
}

interface Series {
  /** Observations ≤ each bound (not yet cumulative), then the ones above the last. */
  counts: Float64Array;
  sumMs: number;
  count: number;
}

export class TimerHistograms {
  private readonly series = new Map<string, Series>();
  /** Series started again because their sum would have overflowed (a counter reset to Prometheus). */
  overflowResets = 0;

  constructor(
    private readonly boundsMs: readonly number[] = DEFAULT_TIMER_BUCKETS_MS,
    /** Most timer keys with a histogram; a new key beyond it is not tracked. */
    private readonly maxKeys = Infinity,
  ) {}

  /**
   * Counts one flush interval of timer `key`: the workers' exact bucket counts (each
   * value once), or else its raw values (exact mode), or else its native histogram's
   * buckets (each under the first bound at or above its middle).
   */
  observeFlush(key: string, t: TimerFlush): void {
    if (t.values && !t.classic) {
      this.observe(key, t.values);
      return;
    }
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxKeys) return;
      this.series.set(key, (s = { counts: new Float64Array(this.boundsMs.length + 1), sumMs: 0, count: 0 }));
    }
    // Each value once, as the buckets and _count count it (the native histogram weighs a sampled one).
    const sumMs = t.valueSum;
    if (!Number.isFinite(s.sumMs + sumMs)) {
      s.counts.fill(0);
      s.sumMs = 0;
      s.count = 0;
      this.overflowResets++;
    }
    // The workers' exact counts (each value once, against the bounds in ms); else estimated from the native buckets.
    const counts =
      t.classic?.length === this.boundsMs.length + 1
        ? t.classic
        : classicCounts(
            t.hist,
            this.boundsMs.map((b) => b * t.scale),
          );
    let n = 0;
    for (let i = 0; i < counts.length; i++) {
      s.counts[i]! += counts[i]!;
      n += counts[i]!;
    }
    s.sumMs += sumMs;
    s.count += n;
  }

  /** Counts one flush interval's raw values of timer `key` (milliseconds). */
  observe(key: string, values: ArrayLike<number>): void {
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxKeys) return;
      this.series.set(key, (s = { counts: new Float64Array(this.boundsMs.length + 1), sumMs: 0, count: 0 }));
    }
    const b = this.boundsMs;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) continue;
      const k = firstAtOrAbove(b, v);
      if (!Number.isFinite(s.sumMs + v)) {
        s.counts.fill(0);
        s.sumMs = 0;
        s.count = 0;
        this.overflowResets++;
      }
      s.counts[k]!++;
      s.sumMs += v;
      s.count++;
    }
  }

  /** Number of timer keys with a histogram. */
  get size(): number {
    return this.series.size;
  }

  /** Writes the histogram family (nothing when no timer was seen). */
  write(w: PromWriter, labels: (key: string) => PromLabels): void {
    if (this.series.size === 0) return;
    w.family(TIMER_HISTOGRAM, 'histogram', 'StatsD timer values since the service started, in seconds (sum by le across hosts for percentiles).');
    for (const [key, s] of this.series) {
      let cumulative = 0;
      const buckets = this.boundsMs.map((ms, i): [number, number] => [ms / 1000, (cumulative += s.counts[i]!)]);
      w.histogram(TIMER_HISTOGRAM, labels(key), { buckets, sum: Number.isFinite(s.sumMs) ? s.sumMs / 1000 : 0, count: s.count });
    }
  }

  /** The histogram family as Prometheus text. */
  text(labels: (key: string) => PromLabels): string {
    const w = new PromWriter();
    this.write(w, labels);
    return w.text();
  }
}
