/**
 * The statsd_exporter layout's series: native histograms equal to one histogram of every
 * value (from workers' merged buckets), the bucket limit, classic buckets from the
 * merge, summaries over client_golang's sliding window, ttl, and the name clashes
 * statsd_exporter refuses.
 */
import { describe, expect, it } from 'vitest';
import { PromWriter, type PromHistogram, type PromSummary } from '@shardgram/udp-core/prom';
import { Mapper } from '../../src/statsd/mapper.js';
import { parseMappingConfig } from '../../src/statsd/mapping.js';
import { NativeHistogram, relativeError, toSpans } from '../../src/statsd/native-histogram.js';
import { ExporterRegistry } from '../../src/statsd/prom-registry.js';
import type { TimerFlush } from '../../src/statsd/merge.js';

function setup(yaml: string | undefined, schema = 5): { reg: ExporterRegistry; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const mapper = new Mapper(yaml === undefined ? undefined : parseMappingConfig(yaml, 'm.yml'));
  return { reg: new ExporterRegistry({ mapper, maxSeries: 100, schema, maxBuckets: 2048, now: () => clock.t }), clock };
}

/** The interval of one timer as the merge hands it over: values (seconds) spread over three workers' histograms, merged. */
function interval(values: readonly number[], schema = 5): TimerFlush {
  const workers = [0, 1, 2].map(() => new NativeHistogram(schema));
  values.forEach((v, i) => {
    workers[i % 3]!.observe(v);
  });
  const merged = new NativeHistogram(schema);
  for (const w of workers) merged.merge(w.toData());
  return { hist: merged, scale: 0.001, valueSum: values.reduce((a, v) => a + v / 0.001, 0) };
}

function families(
  reg: ExporterRegistry,
): Map<
  string,
  { type: string; metrics: ({ labels: Record<string, string> } & ({ value: number } | { histogram: PromHistogram } | { summary: PromSummary }))[] }
> {
  const w = new PromWriter();
  reg.write(w);
  return new Map(w.families().map((f) => [f.name, f]));
}

const values = Array.from({ length: 3000 }, (_, i) => 0.001 * Math.exp(((i % 997) / 997) * Math.log(1000)));

describe('histograms', () => {
  it("native buckets equal one histogram of every value at the mapping's schema; classic buckets off by at most one fine bucket", () => {
    const { reg } = setup('defaults:\n  observer_type: histogram\n  histogram_options:\n    buckets: [0.005, 0.05, 0.5]\n');
    reg.timer('lat', interval(values.slice(0, 1500)));
    reg.timer('lat', interval(values.slice(1500)));
    const m = families(reg).get('lat')!;
    expect(m.type).toBe('histogram');
    const h = (m.metrics[0] as { histogram: PromHistogram }).histogram;
    const whole = new NativeHistogram(3); // bucket factor 1.1 (statsd_exporter's default): schema 3
    for (const v of values) whole.observe(v);
    const spans = toSpans(whole.positive());
    expect(h.native).toEqual({
      schema: 3,
      zeroThreshold: 2 ** -128,
      zeroCount: 0,
      positiveSpans: spans.spans,
      positiveDeltas: spans.deltas,
      negativeSpans: [],
      negativeDeltas: [],
    });
    expect(h.count).toBe(values.length);
    expect(h.sum).toBeCloseTo(
      values.reduce((a, b) => a + b, 0),
      9,
    );
    for (const [le, cumulative] of h.buckets) {
      const exact = values.filter((v) => v <= le).length;
      const near = values.filter((v) => Math.abs(v - le) / le <= 2 ** (2 ** -5) - 1).length; // within one fine (schema 5) bucket of the bound
      expect(Math.abs(cumulative - exact), `le ${le}`).toBeLessThanOrEqual(near);
    }
  });

  it('native_histogram_max_buckets lowers the schema', () => {
    const { reg } = setup(
      'mappings:\n- match: lat\n  name: lat\n  observer_type: histogram\n  histogram_options:\n    native_histogram_bucket_factor: 1.01\n    native_histogram_max_buckets: 20\n',
      8,
    );
    reg.timer('lat', interval(values, 8));
    const h = (families(reg).get('lat')!.metrics[0] as { histogram: PromHistogram }).histogram;
    const buckets = h.native!.positiveSpans.reduce((a, s) => a + s.length, 0);
    expect(h.native!.schema).toBeLessThan(7);
    expect(h.native!.positiveDeltas.reduce((a, _d, i, all) => a + all.slice(0, i + 1).reduce((x, y) => x + y, 0), 0)).toBe(values.length);
    expect(buckets).toBeLessThanOrEqual(20 + 2 ** 6); // spans may carry empty buckets between used ones; used ones ≤ 20
  });

  it('a factor of 1 or less means classic buckets only (client_golang)', () => {
    const { reg } = setup('defaults:\n  observer_type: histogram\n  histogram_options:\n    native_histogram_bucket_factor: 1\n');
    reg.timer('lat', interval([0.1, 0.2]));
    expect((families(reg).get('lat')!.metrics[0] as { histogram: PromHistogram }).histogram.native).toBeUndefined();
  });
});

describe('summaries', () => {
  it('quantiles over the sliding window within relativeError(schema); _sum and _count since the start', () => {
    const { reg, clock } = setup('mappings:\n- match: lat\n  name: lat\n  summary_options:\n    max_age: 30s\n    age_buckets: 3\n');
    reg.timer('lat', interval(values.map((v) => v * 1000))); // old, large values
    // client_golang's window: quantiles from the oldest of age_buckets streams, which are emptied in
    // turn every max_age / age_buckets from max_age on (here at 30, 40 and 50 s): by 51 s every one was.
    clock.t += 49_000;
    expect((families(reg).get('lat')!.metrics[0] as { summary: PromSummary }).summary.quantiles[0]![1]).toBeGreaterThan(1); // the old values are still in the window
    clock.t += 2_000;
    reg.timer('lat', interval(values));
    const s = (families(reg).get('lat')!.metrics[0] as { summary: PromSummary }).summary;
    expect(s.count).toBe(2 * values.length);
    const sorted = [...values].sort((a, b) => a - b);
    for (const [q, v] of s.quantiles) {
      const exact = sorted[Math.ceil(q * sorted.length) - 1]!;
      expect(Math.abs(v - exact) / exact, `q ${q}`).toBeLessThanOrEqual(relativeError(5));
    }
    expect(s.quantiles.map(([q]) => q)).toEqual([0.5, 0.9, 0.99]);
  });
});

describe('series lifecycle and clashes', () => {
  it('ttl removes an idle series', () => {
    const { reg, clock } = setup('defaults:\n  ttl: 10s\n');
    reg.counter('a', 1);
    reg.gauge('g', 2);
    clock.t += 5_000;
    reg.counter('a', 1);
    clock.t += 6_000;
    const f = families(reg);
    expect(f.get('a')!.metrics).toEqual([{ labels: {}, value: 2 }]);
    expect(f.has('g')).toBe(false);
    expect(reg.size).toBe(1);
  });

  it('a name used with two types, or x_count beside a summary x, is refused and counted; so are negative counters and sets', () => {
    const { reg } = setup(undefined);
    reg.counter('x', 1);
    reg.gauge('x', 5);
    reg.timer('t', interval([0.1]));
    reg.counter('t.count', 1);
    reg.counter('y', -1);
    reg.set();
    const f = families(reg);
    expect(f.get('x')!.type).toBe('counter');
    expect(f.has('t_count')).toBe(false);
    expect(f.has('y')).toBe(false);
    expect(reg.dropped).toMatchObject({ conflict: 2, illegal_negative_counter: 1, set: 1 });
  });

  it("tags that would break the exposition are no labels: __…, a histogram's le, a summary's quantile (counted)", () => {
    const { reg } = setup('mappings:\n- match: h\n  name: h\n  observer_type: histogram\n');
    reg.counter('c;__name__=x;ok=1', 1);
    reg.timer('h;le=5;ok=1', interval([0.1]));
    reg.timer('s;quantile=5;ok=1', interval([0.1]));
    const f = families(reg);
    expect(f.get('c')!.metrics[0]!.labels).toEqual({ ok: '1' });
    expect(f.get('h')!.metrics[0]!.labels).toEqual({ ok: '1' });
    expect(f.get('s')!.metrics[0]!.labels).toEqual({ ok: '1' });
    expect(reg.dropped.tag).toBe(3);
  });

  it("a counter's scale applies to its increments", () => {
    const { reg } = setup('mappings:\n- match: bytes.kb\n  name: bytes_total\n  scale: 1024\n');
    reg.counter('bytes.kb', 2);
    expect(families(reg).get('bytes_total')!.metrics).toEqual([{ labels: {}, value: 2048 }]);
  });
});
