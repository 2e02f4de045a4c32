/**
 * The /metrics families of what is not a metric line (dialect-metrics.ts), fed the way
 * the service feeds them: lines parsed into a worker's partial, merged, flushed. Events
 * and service checks count as their kind whether kept or dropped by maxKeys, and bad
 * lines are counted by reason, in the text and the protobuf exposition alike.
 */
import { describe, expect, it } from 'vitest';
import { PromWriter, decodeFamilies, encodeFamilies } from '@shardgram/udp-core/prom';
import { PartialAggregate } from '../../src/statsd/aggregate.js';
import { DialectTotals } from '../../src/statsd/dialect-metrics.js';
import { GaugeStore, IntervalMerge, type FlushResult } from '../../src/statsd/merge.js';

function flush(datagrams: string[], maxKeys = Infinity, workers = 1): FlushResult {
  const merge = new IntervalMerge({ maxKeys, gaugeExpiry: 0 });
  for (let w = 0; w < workers; w++) {
    const agg = new PartialAggregate({ maxKeys });
    for (const d of datagrams) agg.datagram(Buffer.from(d));
    merge.add(agg.take());
  }
  return merge.finish(new GaugeStore(), [], { timestamp: 1, flush: 1, final: false, interval_ms: 1000, missing_workers: [] });
}

function samples(t: DialectTotals): Map<string, number> {
  const w = new PromWriter();
  t.write(w);
  const out = new Map<string, number>();
  for (const line of w.text().split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

describe('DialectTotals', () => {
  it('an event or check dropped by maxKeys is still counted as its kind, not as a metric line', () => {
    const r = flush(['_e{1,1}:a|b\n_e{1,1}:c|d']);
    expect(r.events).toHaveLength(2);
    const limited = flush(['_e{1,1}:a|b\n_e{1,1}:c|d'], 1);
    expect(limited.events).toHaveLength(1);
    expect(limited.keys_over_limit).toBe(1);
    const t = new DialectTotals();
    t.add(limited);
    const s = samples(t);
    expect(s.get('shardgram_statsd_lines_total{kind="event"}')).toBe(2);
    expect(s.get('shardgram_statsd_lines_total{kind="metric"}')).toBe(0);
    expect(s.get('shardgram_statsd_events_total{alert_type="info"}')).toBe(1);
  });

  it('checks dropped at the merge (two workers, maxKeys 1) are counted as checks', () => {
    const r = flush(['_sc|a|0\nm:1|c'], 1, 2);
    expect(r.service_checks).toHaveLength(1);
    const t = new DialectTotals();
    t.add(r);
    const s = samples(t);
    expect(s.get('shardgram_statsd_lines_total{kind="service_check"}')).toBe(2);
    expect(s.get('shardgram_statsd_lines_total{kind="metric"}')).toBe(2);
  });

  it('bad lines by reason, adding up to the bad lines, in text and protobuf', () => {
    const r = flush(['nocolon\nx:1|zz\nx:a|c\nx:1|c|@0\nx:1|c|TABC\nx,a=b:1|c|#c:d\n_e{9,9}:a|b\n_sc|x|9\n:1|c\nx:1|c\n_foo:1|c \t']);
    expect(r.bad_lines_seen).toBe(9);
    expect(r.bad_lines_by_reason).toMatchObject({
      syntax: 1,
      type: 1,
      value: 1,
      rate: 1,
      timestamp: 1,
      mixed_tags: 1,
      event: 1,
      service_check: 1,
      name: 1,
      tags: 0,
    });
    const t = new DialectTotals();
    t.add(r);
    t.add(r);
    const s = samples(t);
    expect(s.get('shardgram_statsd_bad_lines_total{reason="syntax"}')).toBe(2);
    expect(s.get('shardgram_statsd_bad_lines_total{reason="name_length"}')).toBe(0);
    let sum = 0;
    for (const [k, v] of s) if (k.startsWith('shardgram_statsd_bad_lines_total{')) sum += v;
    expect(sum).toBe(s.get('shardgram_statsd_lines_total{kind="bad"}'));
    expect(sum).toBe(18);
    const w = new PromWriter();
    t.write(w);
    const fam = decodeFamilies(encodeFamilies(w.families())).find((f) => f.name === 'shardgram_statsd_bad_lines_total');
    const metric = (fam?.metric ?? []) as { label: { name: string; value: string }[]; counter: { value: number } }[];
    const byReason = Object.fromEntries(metric.map((m) => [m.label[0]!.value, m.counter.value]));
    expect(byReason).toMatchObject({ syntax: 2, type: 2, event: 2, service_check: 2 });
  });
});
