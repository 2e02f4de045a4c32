/**
 * The dialect vector tables (test/fixtures/statsd-vectors.ts, syslog-vectors.ts): cases
 * from the public test suites of the tools that define each dialect (datadog-agent,
 * statsd_exporter, syslog-ng, go-syslog), each run through shardgram's parsers and
 * held to the fields the reference expects. Every case must pass.
 */
import { describe, expect, it } from 'vitest';
import { parseDatagram, type MetricSink, parseSyslog } from '@shardgram/examples';
import { STATSD_VECTORS, type SinkCall } from './fixtures/statsd-vectors.js';
import { NOW, SYSLOG_VECTORS } from './fixtures/syslog-vectors.js';

function record(line: string): { calls: SinkCall[]; bad: number } {
  const calls: SinkCall[] = [];
  let bad = 0;
  const sink: MetricSink = {
    counter: (k, v, r) => void calls.push(['c', k, v, r]),
    gauge: (k, v, rel) => void calls.push(['g', k, v, rel]),
    timer: (k, v, r) => void calls.push(['t', k, v, r]),
    set: (k, m) => void calls.push(['s', k, m]),
    event: (e) => void calls.push(['e', e]),
    serviceCheck: (c) => void calls.push(['sc', c]),
    ignoredFields: (n) => void calls.push(['ignored', n]),
    bad: () => void bad++,
  };
  expect(parseDatagram(line, sink)).toBe(1);
  return { calls, bad };
}

describe('StatsD / DogStatsD vectors', () => {
  it.each(STATSD_VECTORS.map((v) => [`${v.line}  (${v.source})`, v] as const))('%s', (_, v) => {
    const r = record(v.line);
    if (v.bad) {
      expect(r).toEqual({ calls: [], bad: 1 });
    } else {
      expect(r.bad).toBe(0);
      expect(r.calls).toEqual(v.calls);
    }
  });

  it('the table covers every source the issue names', () => {
    const sources = new Set(STATSD_VECTORS.map((v) => v.source.split(' ')[0]));
    expect([...sources].sort()).toEqual(['DataDog/datadog-agent', 'prometheus/statsd_exporter']);
  });
});

describe('syslog vectors', () => {
  it.each(SYSLOG_VECTORS.map((v) => [`${v.message.slice(0, 70)}  (${v.source})`, v] as const))('%s', (_, v) => {
    const p = parseSyslog(Buffer.from(v.message), NOW);
    const got: Record<string, unknown> = {
      timestamp: p.timestamp,
      hostname: p.hostname,
      appName: p.appName,
      procId: p.procId,
      message: p.message,
    };
    if ('version' in v.expect) got.version = p.version;
    if ('structuredData' in v.expect) got.structuredData = p.structuredData;
    expect(p.error).toBeNull();
    expect(got).toEqual(v.expect);
  });
});
