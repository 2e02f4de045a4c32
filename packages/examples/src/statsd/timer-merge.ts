/**
 * One timer's merge across workers' partials (merge.ts): its accumulator, each partial's
 * totals and values added to it, and at the flush its figures and the histogram the
 * Prometheus side gets.
 */
import type { TimerPartial } from './aggregate.js';
import { NativeHistogram } from './native-histogram.js';
import { timerSummary, timerSummaryFromHistogram, type TimerSummary, type TimerTotals } from './timer-stats.js';

export interface TimerAcc extends TimerTotals {
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

/** A timer's accumulator, from the first partial that had it. */
export function newTimerAcc(t: TimerPartial): TimerAcc {
  return {
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
}

/** Adds a partial's totals and classic buckets to a timer; false, leaving it as it was, when a sum would overflow. */
export function addTimerTotals(acc: TimerAcc, t: TimerPartial): boolean {
  const sum = acc.sum + t.sum;
  const count = acc.count + t.count;
  if (!Number.isFinite(sum) || !Number.isFinite(count)) return false;
  acc.sum = sum;
  acc.count = count;
  acc.n += t.n;
  acc.min = Math.min(acc.min, t.min);
  acc.max = Math.max(acc.max, t.max);
  const c = acc.classic;
  if (c && t.classic?.length === c.length) for (let i = 0; i < c.length; i++) c[i]! += t.classic[i]!;
  else acc.classic = undefined;
  return true;
}

/** Merges a partial's histograms (histogram mode) or keeps its raw values (exact mode). */
export function addTimerValues(acc: TimerAcc, t: TimerPartial): void {
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

/**
 * A timer's figures and its histogram. Exact-mode values are summarized as Etsy does and
 * put into a histogram of `schema`; histogram-mode partials give the figures from their
 * merge (both at once only when the mode changed between two workers' lives: then the
 * values join the histogram and the figures come from it).
 */
export function finishTimer(acc: TimerAcc, percentiles: readonly number[], schema: number): { summary: TimerSummary; flush: TimerFlush } {
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
