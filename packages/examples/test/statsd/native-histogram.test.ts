/**
 * The native histogram: bucket keys as client_golang computes them, exact merge of any
 * split, schema reduction equal to observing at the lower schema, the bucket limit, and
 * quantiles within the stated relative error of the exact ones (property tests).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bucketKey, MAX_SCHEMA, MIN_SCHEMA, NativeHistogram, relativeError, schemaForFactor, toSpans, upperBound } from '../../src/statsd/native-histogram.js';

const build = (schema: number, values: readonly number[]): NativeHistogram => {
  const h = new NativeHistogram(schema);
  for (const v of values) h.observe(v);
  return h;
};
const schema = fc.integer({ min: MIN_SCHEMA, max: MAX_SCHEMA });
// Timer-like values: zero, whole and fractional milliseconds, tiny and huge ones, negatives.
const value = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 100_000 }),
  fc.double({ min: 1e-9, max: 1e12, noNaN: true }),
  fc.double({ min: -1e6, max: -1e-6, noNaN: true }),
);
const buckets = (h: NativeHistogram): unknown => ({ schema: h.schema, zero: h.zeroCount, count: h.count, pos: h.positive(), neg: h.negative() });

describe('bucket keys', () => {
  it('match client_golang: powers of two are upper bounds, and bucket k is (2^((k-1)·2^-s), 2^(k·2^-s)]', () => {
    // Schema 3 (bucket factor 1.1, statsd_exporter's default): 1 is the top of bucket 0, 2 of bucket 8.
    expect(bucketKey(3, 1)).toBe(0);
    expect(bucketKey(3, 1.0000001)).toBe(1);
    expect(bucketKey(3, 2)).toBe(8);
    expect(bucketKey(0, 1)).toBe(0);
    expect(bucketKey(0, 3)).toBe(2);
    expect(bucketKey(-1, 3)).toBe(1); // (1, 4]
    expect(bucketKey(-1, 5)).toBe(2); // (4, 16]
    expect(bucketKey(0, 0.25)).toBe(-2);
    expect(bucketKey(0, 5e-324)).toBe(-1074); // the smallest subnormal is 2^-1074
    expect(bucketKey(0, Infinity)).toBe(bucketKey(0, Number.MAX_VALUE) + 1);
    fc.assert(
      fc.property(schema, fc.double({ min: 1e-300, max: 1e300, noNaN: true }), (s, v) => {
        const k = bucketKey(s, v);
        // Within the bucket's bounds (computed independently, so allow one ulp-sized slack).
        expect(v).toBeLessThanOrEqual(upperBound(s, k) * (1 + 1e-12));
        expect(v).toBeGreaterThan(upperBound(s, k - 1) * (1 - 1e-12));
      }),
      { numRuns: 2000 },
    );
  });

  it("schemaForFactor is client_golang's pickSchema", () => {
    expect(schemaForFactor(1.1)).toBe(3);
    expect(schemaForFactor(2)).toBe(0);
    expect(schemaForFactor(1.0001)).toBe(8);
    expect(schemaForFactor(1e9)).toBe(-4);
    expect(schemaForFactor(1.01)).toBe(7);
    expect(() => schemaForFactor(1)).toThrow(/above 1/);
    fc.assert(
      fc.property(fc.double({ min: 1.003, max: 65536, noNaN: true }), (f) => {
        const s = schemaForFactor(f);
        expect(2 ** (2 ** -s)).toBeLessThanOrEqual(f * (1 + 1e-12));
        if (s > MIN_SCHEMA) expect(2 ** (2 ** -(s - 1))).toBeGreaterThan(f * (1 - 1e-12));
      }),
    );
  });
});

describe('merge', () => {
  it('the histograms of any split of the values merge into exactly the histogram of all of them', () => {
    fc.assert(
      fc.property(schema, fc.array(fc.tuple(value, fc.integer({ min: 0, max: 3 })), { maxLength: 300 }), (s, tagged) => {
        const whole = build(
          s,
          tagged.map((t) => t[0]),
        );
        const parts = [0, 1, 2, 3].map((w) =>
          build(
            s,
            tagged.filter((t) => t[1] === w).map((t) => t[0]),
          ),
        );
        const merged = new NativeHistogram(s);
        for (const p of parts) merged.merge(p.toData()); // through the plain data, as from a worker
        expect(buckets(merged)).toEqual(buckets(whole));
        expect(merged.sum).toBeCloseTo(whole.sum, 0);
      }),
    );
  });

  it('lowering the schema gives the histogram observed at the lower schema; merging finer into coarser too', () => {
    fc.assert(
      fc.property(schema, fc.integer({ min: 1, max: 12 }), fc.array(value, { maxLength: 200 }), (s, by, values) => {
        const lower = Math.max(MIN_SCHEMA, s - by);
        expect(buckets(build(s, values).reduceTo(lower))).toEqual(buckets(build(lower, values)));
        const coarse = build(lower, values.slice(0, 50)).merge(build(s, values.slice(50)));
        expect(buckets(coarse)).toEqual(buckets(build(lower, values)));
        const fine = build(s, values.slice(0, 50)).merge(build(lower, values.slice(50)));
        expect(buckets(fine)).toEqual(buckets(build(lower, values)));
      }),
    );
  });

  it('a bucket limit lowers the schema until it holds', () => {
    const values = Array.from({ length: 5000 }, (_, i) => 1 + i * 3.7);
    const h = build(8, values).limit(40);
    expect(h.buckets).toBeLessThanOrEqual(40);
    expect(h.schema).toBeLessThan(8);
    expect(buckets(h)).toEqual(buckets(build(h.schema, values)));
    expect(build(h.schema + 1, values).buckets).toBeGreaterThan(40);
  });
});

describe('quantiles', () => {
  it('are within relativeError(schema) of the exact nearest-rank quantile', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_SCHEMA }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 1e-3, max: 1e7, noNaN: true })), { minLength: 1, maxLength: 400 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (s, values, q) => {
          const h = build(s, values);
          const sorted = [...values].sort((a, b) => a - b);
          const exact = sorted[Math.max(1, Math.ceil(q * values.length)) - 1]!;
          const est = h.quantile(q);
          expect(Math.abs(est - exact) / exact).toBeLessThanOrEqual(relativeError(s) * (1 + 1e-9));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('orders negative values, zeros and positive ones', () => {
    const h = build(4, [-8, -1, 0, 0, 3]);
    expect([1, 2, 3, 4, 5].map((r) => Math.sign(h.valueAtRank(r)))).toEqual([-1, -1, 0, 0, 1]);
    expect(Math.abs(h.valueAtRank(1) + 8) / 8).toBeLessThanOrEqual(relativeError(4));
    expect(new NativeHistogram(3).quantile(0.5)).toBeNaN();
  });
});

describe('span layout', () => {
  it('spans with offsets from the previous span, deltas across spans', () => {
    expect(
      toSpans([
        [-2, 3],
        [-1, 1],
        [3, 5],
        [4, 5],
        [10, 1],
      ]),
    ).toEqual({
      spans: [
        { offset: -2, length: 2 },
        { offset: 3, length: 2 },
        { offset: 5, length: 1 },
      ],
      deltas: [3, -2, 4, 0, -4],
    });
    expect(toSpans([])).toEqual({ spans: [], deltas: [] });
  });
});
