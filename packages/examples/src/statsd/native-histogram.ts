/**
 * A Prometheus native histogram (sparse exponential buckets), the representation of a
 * StatsD timer from the worker to the Prometheus exposition:
 *
 * - schema s (-4 … 8): bucket k holds the values in (2^((k-1)·2^-s), 2^(k·2^-s)], so each
 *   bucket is 2^(2^-s) times as wide as the one below (schema 3: 9.05 %, 5: 2.19 %,
 *   8: 0.27 %); negative values mirror that in their own buckets; |v| ≤ zeroThreshold
 *   counts in the zero bucket. Bucket keys are computed as Prometheus's client_golang
 *   computes them (frexp of the value, then the position of the fraction among the
 *   schema's bounds), so a histogram here and one there put a value in the same bucket.
 * - merge: counts of equal keys add, so merging the histograms of any split of the
 *   values gives exactly the histogram of all of them; a finer histogram is first brought
 *   down to the coarser schema (key k at s becomes ceil(k / 2) at s-1, exactly the
 *   bucket the value would have had there).
 * - a bucket limit is kept by lowering the schema (halving the resolution), as
 *   client_golang does with NativeHistogramMaxBucketNumber.
 * - quantiles: the value of rank ceil(q·n) lies in one bucket; its estimate is the
 *   bucket's geometric middle, within a relative error of 2^(2^-(s+1)) - 1 of the exact
 *   value (`relativeError(s)`: schema 3: 4.4 %, 5: 1.09 %, 8: 0.14 %).
 *
 * `NativeHistogramData` is the plain (structured-cloneable) form sent from the worker to
 * the supervisor; `spans()` gives Prometheus's span/delta wire layout (exposition and
 * remote write).
 */

export const MIN_SCHEMA = -4;
export const MAX_SCHEMA = 8;
/** client_golang's DefNativeHistogramZeroThreshold (2^-128), which statsd_exporter uses. */
export const DEFAULT_ZERO_THRESHOLD = 2 ** -128;

/** A histogram as plain data. Keys ascending; counts are whole numbers. */
export interface NativeHistogramData {
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  /** Observations (zero bucket included). */
  count: number;
  sum: number;
  posKeys: number[];
  posCounts: number[];
  negKeys: number[];
  negCounts: number[];
}

/** One span of consecutive buckets: `offset` from the end of the previous span (from 0 for the first). */
export interface BucketSpan {
  offset: number;
  length: number;
}

/** Buckets in Prometheus's wire layout: spans, and each bucket's count as a delta from the previous one. */
export interface SpanBuckets {
  spans: BucketSpan[];
  deltas: number[];
}

/**
 * client_golang's pickSchema: the coarsest schema n in -4…8 whose bucket factor
 * 2^(2^-n) is at most `bucketFactor` (> 1): 1.1 → 3, 1.01 → 7, 2 → 0.
 */
export function schemaForFactor(bucketFactor: number): number {
  if (!(bucketFactor > 1)) throw new RangeError(`a native histogram bucket factor must be above 1; got ${bucketFactor}`);
  const floor = Math.floor(Math.log2(Math.log2(bucketFactor)));
  if (floor <= -8) return MAX_SCHEMA;
  if (floor >= 4) return MIN_SCHEMA;
  return 0 - floor || 0; // never -0
}

/** Largest relative error of a quantile estimated from a histogram of this schema (the bucket's geometric middle). */
export function relativeError(schema: number): number {
  return 2 ** (2 ** -(schema + 1)) - 1;
}

/** Upper bound of bucket `key` at `schema` (positive side). */
export function upperBound(schema: number, key: number): number {
  return 2 ** (key * 2 ** -schema);
}

// Per schema 1…8, the bucket bounds of a frexp fraction in [0.5, 1): 2^(j/2^s - 1).
const BOUNDS: Float64Array[] = [];
for (let s = 0; s <= MAX_SCHEMA; s++) {
  const n = 2 ** s;
  const b = new Float64Array(n);
  for (let j = 0; j < n; j++) b[j] = 2 ** (j / n - 1);
  BOUNDS.push(b);
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
// The high word of a double is U32[1] on little-endian machines (every platform Node runs shardgram on).
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** Go's math.Frexp for a finite v > 0: v = frac · 2^exp with frac in [0.5, 1). */
function frexp(v: number): [frac: number, exp: number] {
  let shift = 0;
  if (v < 2 ** -1022) {
    v *= 2 ** 64; // subnormal: scale into the normal range first
    shift = 64;
  }
  F64[0] = v;
  const hi = U32[HI]!;
  const e = (hi >>> 20) & 0x7ff;
  U32[HI] = (hi & 0x800fffff) | (1022 << 20);
  return [F64[0], e - 1022 - shift];
}

/** Index of the first bound ≥ v (bounds.length when none is): a classic bucket's index, or a native bucket's within its power of two. */
export function firstAtOrAbove(bounds: ArrayLike<number>, v: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bounds[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The bucket of |v| > 0 at `schema`, as client_golang computes it (an infinite value goes one above the largest double's). */
export function bucketKey(schema: number, absValue: number): number {
  const inf = absValue === Infinity;
  const [frac, exp] = frexp(inf ? Number.MAX_VALUE : absValue);
  let key: number;
  if (schema > 0) {
    const bounds = BOUNDS[schema]!;
    // The first bound ≥ frac (Go's sort.SearchFloat64s).
    key = firstAtOrAbove(bounds, frac) + (exp - 1) * bounds.length;
  } else {
    key = frac === 0.5 ? exp - 1 : exp;
    key = Math.ceil(key / 2 ** -schema);
  }
  return inf ? key + 1 : key;
}

/** Key `k` at a schema `by` steps finer, at the coarser one: ceil(k / 2^by). */
function coarser(k: number, by: number): number {
  return Math.ceil(k / 2 ** by);
}

function checkSchema(schema: number): void {
  if (!Number.isInteger(schema) || schema < MIN_SCHEMA || schema > MAX_SCHEMA)
    throw new RangeError(`a native histogram schema is a whole number from ${MIN_SCHEMA} to ${MAX_SCHEMA}; got ${schema}`);
}

export class NativeHistogram {
  schema: number;
  readonly zeroThreshold: number;
  zeroCount = 0;
  count = 0;
  sum = 0;
  private pos = new Map<number, number>();
  private neg = new Map<number, number>();

  constructor(schema: number, zeroThreshold = DEFAULT_ZERO_THRESHOLD) {
    checkSchema(schema);
    this.schema = schema;
    this.zeroThreshold = zeroThreshold;
  }

  /** Buckets in use (the zero bucket not included), what a bucket limit counts. */
  get buckets(): number {
    return this.pos.size + this.neg.size;
  }

  /** Adds `weight` (a whole number ≥ 1) observations of `v`; NaN is ignored. */
  observe(v: number, weight = 1): void {
    if (Number.isNaN(v)) return;
    this.count += weight;
    this.sum += v * weight;
    if (v > this.zeroThreshold) add(this.pos, bucketKey(this.schema, v), weight);
    else if (v < -this.zeroThreshold) add(this.neg, bucketKey(this.schema, -v), weight);
    else this.zeroCount += weight;
  }

  /** Lowers the schema to `schema` (no-op if already at or below it), merging buckets. */
  reduceTo(schema: number): this {
    checkSchema(schema);
    const by = this.schema - schema;
    if (by <= 0) return this;
    this.pos = rekey(this.pos, by);
    this.neg = rekey(this.neg, by);
    this.schema = schema;
    return this;
  }

  /** Lowers the schema until at most `maxBuckets` buckets are used (or the schema is the lowest). */
  limit(maxBuckets: number): this {
    while (this.buckets > maxBuckets && this.schema > MIN_SCHEMA) this.reduceTo(this.schema - 1);
    return this;
  }

  /** Adds another histogram (or its data); the result has the coarser of the two schemas. */
  merge(other: NativeHistogram | NativeHistogramData): this {
    if (other.zeroThreshold !== this.zeroThreshold)
      throw new RangeError(`cannot merge native histograms with zero thresholds ${this.zeroThreshold} and ${other.zeroThreshold}`);
    if (other.schema < this.schema) this.reduceTo(other.schema);
    const by = other.schema - this.schema;
    const each = (keys: Iterable<[number, number]>, into: Map<number, number>): void => {
      for (const [k, c] of keys) add(into, by > 0 ? coarser(k, by) : k, c);
    };
    if (other instanceof NativeHistogram) {
      each(other.pos, this.pos);
      each(other.neg, this.neg);
    } else {
      each(pairs(other.posKeys, other.posCounts), this.pos);
      each(pairs(other.negKeys, other.negCounts), this.neg);
    }
    this.zeroCount += other.zeroCount;
    this.count += other.count;
    this.sum += other.sum;
    return this;
  }

  /** A copy. */
  clone(): NativeHistogram {
    return new NativeHistogram(this.schema, this.zeroThreshold).merge(this);
  }

  /**
   * The estimate of the `rank`-th smallest observation (1-based, clamped to 1…count):
   * the geometric middle of its bucket (0 for the zero bucket). NaN when empty.
   */
  valueAtRank(rank: number): number {
    if (this.count === 0) return NaN;
    const r = Math.min(Math.max(rank, 1), this.count);
    let seen = 0;
    // Ascending values: negative buckets from the largest magnitude, zero, then positive.
    for (const k of [...this.neg.keys()].sort((a, b) => b - a)) {
      seen += this.neg.get(k)!;
      if (seen >= r) return -this.middle(k);
    }
    seen += this.zeroCount;
    if (seen >= r) return 0;
    for (const k of [...this.pos.keys()].sort((a, b) => a - b)) {
      seen += this.pos.get(k)!;
      if (seen >= r) return this.middle(k);
    }
    return NaN; // not reached: the counts add up to count
  }

  /** The q-quantile (0 ≤ q ≤ 1) by nearest rank: the observation of rank ceil(q·count). */
  quantile(q: number): number {
    return this.valueAtRank(Math.ceil(q * this.count));
  }

  /** Geometric middle of positive bucket k. */
  private middle(k: number): number {
    return 2 ** ((k - 0.5) * 2 ** -this.schema);
  }

  /** Positive buckets as [key, count], keys ascending. */
  positive(): [number, number][] {
    return [...this.pos].sort((a, b) => a[0] - b[0]);
  }

  /** Negative buckets (by magnitude) as [key, count], keys ascending. */
  negative(): [number, number][] {
    return [...this.neg].sort((a, b) => a[0] - b[0]);
  }

  /** Plain data (for IPC). */
  toData(): NativeHistogramData {
    const p = this.positive();
    const n = this.negative();
    return {
      schema: this.schema,
      zeroThreshold: this.zeroThreshold,
      zeroCount: this.zeroCount,
      count: this.count,
      sum: this.sum,
      posKeys: p.map((e) => e[0]),
      posCounts: p.map((e) => e[1]),
      negKeys: n.map((e) => e[0]),
      negCounts: n.map((e) => e[1]),
    };
  }

  static fromData(d: NativeHistogramData): NativeHistogram {
    return new NativeHistogram(d.schema, d.zeroThreshold).merge(d);
  }
}

function add(m: Map<number, number>, k: number, c: number): void {
  m.set(k, (m.get(k) ?? 0) + c);
}

function rekey(m: Map<number, number>, by: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const [k, c] of m) add(out, coarser(k, by), c);
  return out;
}

function* pairs(keys: readonly number[], counts: readonly number[]): Iterable<[number, number]> {
  for (let i = 0; i < keys.length; i++) yield [keys[i]!, counts[i]!];
}

/** Buckets (keys ascending, counts) in Prometheus's span/delta layout. */
export function toSpans(buckets: readonly (readonly [number, number])[]): SpanBuckets {
  const spans: BucketSpan[] = [];
  const deltas: number[] = [];
  let prevCount = 0;
  let next = 0;
  for (let i = 0; i < buckets.length; i++) {
    const [k, c] = buckets[i]!;
    if (i === 0 || k !== next) spans.push({ offset: i === 0 ? k : k - next, length: 0 });
    spans[spans.length - 1]!.length++;
    deltas.push(c - prevCount);
    prevCount = c;
    next = k + 1;
  }
  return { spans, deltas };
}

/**
 * Classic bucket counts (not cumulative; one per bound, then the one above the last)
 * estimated from a native histogram: each sparse bucket counts under the first bound at
 * or above its geometric middle, so a value may be counted one bound off when it lies
 * within a sparse bucket's width of that bound (a relative 2^(2^-schema) - 1), a value
 * exactly on a bound included. Only a fallback: the workers count the classic buckets
 * exactly (aggregate.ts, TimerOptions.classic) whenever the bounds are known there.
 */
export function classicCounts(h: NativeHistogram, bounds: readonly number[]): Float64Array {
  const out = new Float64Array(bounds.length + 1);
  const put = (v: number, c: number): void => {
    out[firstAtOrAbove(bounds, v)]! += c;
  };
  const mid = (k: number): number => 2 ** ((k - 0.5) * 2 ** -h.schema);
  for (const [k, c] of h.negative()) put(-mid(k), c);
  if (h.zeroCount) put(0, h.zeroCount);
  for (const [k, c] of h.positive()) put(mid(k), c);
  return out;
}
