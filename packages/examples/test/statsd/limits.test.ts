/**
 * The statsd limits (docs/statsd.md, "Limits"): names too long, too many keys, gauges
 * that expire, sums that overflow. Each rejection is counted; no flush grows with
 * hostile input; no number in JSON or /metrics becomes null, Infinity or a stuck 0.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PartialAggregate, type Partial } from '../../src/statsd/aggregate.js';
import { FlushCollector } from '../../src/statsd/collector.js';
import { formatJson } from '../../src/statsd/flush.js';
import { GaugeStore, IntervalMerge, type FlushResult, type MergeLimits } from '../../src/statsd/merge.js';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import { waitFor } from '@shardgram/test-kit/wait';

const DEFAULTS = parseStatsdOptions({});
const META = (flush: number) => ({ timestamp: 0, flush, final: false, interval_ms: 0, missing_workers: [] });

function aggregate(lines: string[], opts = { maxNameLength: DEFAULTS.maxNameLength, maxKeys: DEFAULTS.maxKeys }): Partial {
  const a = new PartialAggregate(opts);
  for (const l of lines) a.datagram(Buffer.from(l));
  return a.take();
}

function flush(partials: Partial[], store = new GaugeStore(), flushNo = 1, limits: MergeLimits = DEFAULTS): FlushResult {
  const m = new IntervalMerge(limits);
  for (const p of partials) m.add(p);
  return m.finish(store, [90], META(flushNo));
}

/** Every number in a JSON text is a finite number (no null where a number was). */
function expectFiniteJson(text: string): void {
  expect(text).not.toMatch(/null|Infinity|NaN/);
  JSON.parse(text, (_k, v: unknown) => {
    if (typeof v === 'number') expect(Number.isFinite(v)).toBe(true);
    return v;
  });
}

describe('names', () => {
  it('500 datagrams with 60 KB gauge names are rejected and counted; the flush stays small', () => {
    const big = (i: number): string => `${'n'.repeat(60_000)}${i}:1|g`;
    const p = aggregate([...Array.from({ length: 500 }, (_, i) => big(i)), 'ok:1|g']);
    expect(p.namesTooLong).toBe(500);
    expect(p.badLines).toBe(500);
    expect(p.metrics).toBe(501);
    const r = flush([p]);
    expect(r.names_too_long).toBe(500);
    expect(r.gauges).toEqual({ ok: 1 });
    expect(formatJson(r).length).toBeLessThan(1000);
  });

  it('the limit counts the tags too, and a name at the limit is accepted', () => {
    const max = DEFAULTS.maxNameLength;
    const atLimit = 'a'.repeat(max);
    const p = aggregate([`${atLimit}:1|c`, `${atLimit}x:1|c`, `b:1|c|#${'t'.repeat(max)}`]);
    expect(p.counters).toEqual([[atLimit, 1]]);
    expect(p.namesTooLong).toBe(2);
  });
});

describe('distinct keys', () => {
  it('a worker keeps at most maxKeys keys per interval; the merge and the persisted gauges too', () => {
    const lines = Array.from({ length: 15 }, (_, i) => `k${i}:1|${['c', 'g', 'ms', 's'][i % 4]}`);
    const p = aggregate(lines, { maxNameLength: 100, maxKeys: 10 });
    expect(p.keysOverLimit).toBe(5);
    expect(p.counters.length + p.gauges.length + p.timers.length + p.sets.length).toBe(10);
    // Lines for keys already kept still count.
    const a = new PartialAggregate({ maxKeys: 1 });
    a.datagram('x:1|c\ny:1|c\nx:2|c');
    expect(a.take()).toMatchObject({ counters: [['x', 3]], keysOverLimit: 1 });
    // Two workers with 8 different keys each: the merge keeps 10.
    const w1 = aggregate(Array.from({ length: 8 }, (_, i) => `a${i}:1|c`));
    const w2 = aggregate(Array.from({ length: 8 }, (_, i) => `b${i}:1|g`));
    const r = flush([w1, w2], new GaugeStore(), 1, { maxKeys: 10, gaugeExpiry: 0 });
    expect(Object.keys(r.counters).length + Object.keys(r.gauges).length).toBe(10);
    expect(r.keys_over_limit).toBe(6);
  });

  it('gauges are forgotten after gaugeExpiry flushes without an update, and counted', () => {
    const store = new GaugeStore();
    const limits = { maxKeys: 100, gaugeExpiry: 2 };
    expect(flush([aggregate(['g:5|g', 'h:1|g'])], store, 1, limits).gauges).toEqual({ g: 5, h: 1 });
    expect(flush([aggregate(['h:+1|g'])], store, 2, limits).gauges).toEqual({ g: 5, h: 2 });
    const r3 = flush([], store, 3, limits);
    expect(r3.gauges).toEqual({ h: 2 });
    expect(r3.gauges_expired).toBe(1);
    // Set again after it expired: a fresh gauge (a delta starts from 0, as Etsy's).
    expect(flush([aggregate(['g:+2|g'])], store, 4, limits).gauges).toEqual({ g: 2 });
  });
});

describe('overflow', () => {
  it('a:1e308|c twice: the sum stays finite, the second is counted; in one worker and across two', () => {
    const one = flush([aggregate(['a:1e308|c', 'a:1e308|c'])]);
    expect(one.counters).toEqual({ a: 1e308 });
    expect(one.overflows).toBe(1);
    expectFiniteJson(formatJson(one));
    const two = flush([aggregate(['a:1e308|c']), aggregate(['a:1e308|c'])]);
    expect(two.counters).toEqual({ a: 1e308 });
    expect(two.overflows).toBe(1);
    expectFiniteJson(formatJson(two));
  });

  it('gauge deltas and timer sums that would overflow are dropped and counted; JSON has no null', () => {
    const w1 = aggregate(['g:1e308|g', 'g:+1e308|g', 't:1e308|ms', 't:1e308|ms', 'u:1e308|ms']);
    const w2 = aggregate(['u:1e308|ms', 'u:1|ms']);
    expect(w1.overflows).toBe(1); // the second t in the same worker
    const r = flush([w1, w2]);
    expect(r.gauges).toEqual({ g: 1e308 });
    expect(r.timers.t).toMatchObject({ count: 1, sum: 1e308 });
    // u: w1's 1e308 kept; w2's chunk (1e308 + 1) would overflow the merged sum: dropped whole.
    expect(r.timers.u).toMatchObject({ count: 1, sum: 1e308 });
    expect(r.overflows).toBe(1 + 1 + 2);
    expectFiniteJson(formatJson(r));
  });

  let c: FlushCollector | undefined;
  afterEach(async () => {
    await c?.stop();
    c = undefined;
  });

  it.each(['labels', 'exporter'])(
    '/metrics (promLayout=%s): a counter total that would overflow restarts from the interval value, never 0 or +Inf',
    async (layout) => {
      const flushes: FlushResult[] = [];
      const agg = new PartialAggregate();
      const collector = new FlushCollector({
        options: parseStatsdOptions({ flushInterval: '20', promLayout: layout }),
        log: () => {},
        broadcast: (m) => setImmediate(() => collector.message(0, { t: 'statsd.partial', index: 0, pid: 1, id: m.id, final: false, partial: agg.take() })),
        outputs: [{ name: 'test', write: async (r) => void flushes.push(r) }],
      });
      c = collector;
      collector.message(0, { t: 'statsd.hello', index: 0, pid: 1 });
      collector.start();
      agg.datagram('a:1e308|c');
      await waitFor(() => flushes.length >= 1, 3_000, 10);
      agg.datagram('a:1e308|c');
      const before = flushes.length;
      await waitFor(() => flushes.slice(before).some((f) => f.counters.a !== undefined), 3_000, 10);
      const text = collector.metrics();
      expect(text).toMatch(layout === 'labels' ? /^shardgram_statsd_counter_total\{metric="a"\} 1e\+308$/m : /^a 1e\+308$/m);
      expect(text).toMatch(/^shardgram_statsd_rejected_total\{reason="overflow"\} 1$/m);
      expect(text).not.toMatch(/\b(?:NaN|[+-]?Inf)\b/);
    },
  );
});
