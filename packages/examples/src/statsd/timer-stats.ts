/**
 * A timer's figures for one flush interval, computed from all its raw values exactly
 * as Etsy statsd 0.9.0 computes them (lib/process_metrics.js), so the two agree to the
 * last bit:
 *
 * - values sorted ascending; sum accumulated over the sorted values; mean = sum / n;
 * - median: the middle value, or the mean of the two middle ones;
 * - percentile p (0 < p ≤ 100): k = round(p/100 · n) values from the bottom;
 *   `pNN` = the k-th smallest (Etsy's `upper_NN`); omitted when k = 0 (n > 1); with
 *   one value it is that value;
 * - count: Σ 1/sample-rate (Etsy's `count`), which differs from n only for sampled
 *   timers.
 *
 * `timerSummaryFromHistogram` gives the same figures from a native histogram (the
 * default timer mode): the percentiles within the histogram's relative error.
 */
import type { NativeHistogram } from './native-histogram.js';

export interface TimerSummary {
  count: number;
  sum: number;
  mean: number;
  min: number;
  max: number;
  median: number;
  /** `p90`, `p99_9`, …: one per configured percentile (see percentileKey). */
  [percentile: `p${string}`]: number;
}

/** `90` → `p90`; `99.9` → `p99_9` (Etsy's `upper_99_9`). */
export function percentileKey(p: number): `p${string}` {
  return `p${String(p).replace('.', '_')}`;
}

/** Sorts in place (numerically) and returns the figures; `values` must not be empty. */
export function timerSummary(values: Float64Array | number[], count: number, percentiles: readonly number[]): TimerSummary {
  const sorted = values instanceof Float64Array ? values.sort() : values.sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) throw new RangeError('timerSummary needs at least one value');
  const min = sorted[0]!;
  const max = sorted[n - 1]!;
  // Cumulative sums in Etsy's order: one pass, bottom up.
  const cumulative = new Float64Array(n);
  let acc = min;
  cumulative[0] = acc;
  for (let i = 1; i < n; i++) {
    acc = sorted[i]! + acc;
    cumulative[i] = acc;
  }
  const sum = cumulative[n - 1]!;
  const mid = Math.floor(n / 2);
  const median = n % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const out: TimerSummary = { count, sum, mean: sum / n, min, max, median };
  for (const p of percentiles) {
    if (n === 1) {
      out[percentileKey(p)] = max;
      continue;
    }
    const k = Math.round((Math.abs(p) / 100) * n);
    if (k === 0) continue;
    out[percentileKey(p)] = sorted[k - 1]!;
  }
  return out;
}

/**
 * A timer's totals over an interval: what a histogram summary needs besides the
 * histogram, and the base of the worker's (aggregate.ts) and the merge's (merge.ts)
 * timer records.
 */
export interface TimerTotals {
  /** Σ 1/sample-rate (the count Etsy statsd reports). */
  count: number;
  /** Σ values (kept finite: a value that would overflow it is rejected and counted). */
  sum: number;
  /** Values received. */
  n: number;
  min: number;
  max: number;
  /** Histogram units per unit of the values. */
  scale: number;
}

/**
 * The same figures from a native histogram of the values times `t.scale`: count, sum,
 * mean, min and max exact; the median and each `pNN` (Etsy's rank, k = round(p/100 · n),
 * the k-th smallest) estimated from the histogram, within relativeError(h.schema) of
 * the exact value, and never outside [min, max]. `h` counts each value once.
 */
export function timerSummaryFromHistogram(h: NativeHistogram, t: TimerTotals, percentiles: readonly number[]): TimerSummary {
  const n = t.n;
  if (n === 0) throw new RangeError('timerSummaryFromHistogram needs at least one value');
  const at = (k: number): number => {
    const v = h.valueAtRank(k) / t.scale;
    return Math.min(t.max, Math.max(t.min, v));
  };
  const mid = Math.floor(n / 2);
  const median = n % 2 ? at(mid + 1) : (at(mid) + at(mid + 1)) / 2;
  const out: TimerSummary = { count: t.count, sum: t.sum, mean: t.sum / n, min: t.min, max: t.max, median };
  for (const p of percentiles) {
    if (n === 1) {
      out[percentileKey(p)] = t.max;
      continue;
    }
    const k = Math.round((Math.abs(p) / 100) * n);
    if (k === 0) continue;
    out[percentileKey(p)] = at(k);
  }
  return out;
}
