/**
 * The dialect vector tables (test/fixtures/statsd-vectors.ts, syslog-vectors.ts): cases
 * from the public test suites of the tools that define each dialect (Datadog's agent,
 * statsd_exporter, gostatsd, Etsy statsd, syslog-ng, go-syslog), each run through
 * shardgram's parsers and held to the fields the reference expects. Every case must
 * pass, and every tool issue 20 names must be in the tables.
 */
import { describe, expect, it } from 'vitest';
import { parseDatagram, type MetricSink, parseSyslog } from '@shardgram/examples';
import { etsyKey } from '../src/statsd/keys.js';
import { STATSD_VECTORS, type SinkCall } from './fixtures/statsd-vectors.js';
import { NOW, SYSLOG_VECTORS } from './fixtures/syslog-vectors.js';

function record(line: string): { calls: SinkCall[]; bad: number } {
  const calls: SinkCall[] = [];
  let bad = 0;
  const sink: MetricSink = {
    // The tables hold each key as the Etsy key the JSON and Graphite outputs write (keys.ts).
    counter: (k, v, r) => void calls.push(['c', etsyKey(k), v, r]),
    gauge: (k, v, rel) => void calls.push(['g', etsyKey(k), v, rel]),
    timer: (k, v, r) => void calls.push(['t', etsyKey(k), v, r]),
    set: (k, m) => void calls.push(['s', etsyKey(k), m]),
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
});

/** The repositories of the tools issue 20 names, by the tool (go-syslog moved from leodido to influxdata). */
const NAMED: Record<string, string> = {
  'DataDog/datadog-agent': "Datadog's agent",
  'prometheus/statsd_exporter': 'statsd_exporter',
  'atlassian/gostatsd': 'gostatsd',
  'statsd/statsd': 'Etsy statsd',
  'leodido/go-syslog': 'go-syslog',
  'influxdata/go-syslog': 'go-syslog',
  'syslog-ng/syslog-ng': 'syslog-ng',
};

/** How many cases of each named tool a table has (cases of other sources, e.g. the issue itself, aside). */
function perTool(sources: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of sources) {
    const tool = NAMED[s.split(' ')[0]!];
    if (tool !== undefined) out[tool] = (out[tool] ?? 0) + 1;
  }
  return out;
}

describe('the tables cover every source the issue names', () => {
  it("StatsD: Datadog's agent, statsd_exporter, gostatsd and Etsy statsd, ten cases or more each", () => {
    const n = perTool(STATSD_VECTORS.map((v) => v.source));
    expect(Object.keys(n).sort()).toEqual(["Datadog's agent", 'Etsy statsd', 'gostatsd', 'statsd_exporter']);
    for (const [tool, count] of Object.entries(n)) expect(count, tool).toBeGreaterThanOrEqual(10);
  });

  it('syslog: go-syslog (its RFC 3164 and RFC 5424 tests) and syslog-ng, ten cases or more each', () => {
    const n = perTool(SYSLOG_VECTORS.map((v) => v.source));
    expect(Object.keys(n).sort()).toEqual(['go-syslog', 'syslog-ng']);
    for (const [tool, count] of Object.entries(n)) expect(count, tool).toBeGreaterThanOrEqual(10);
    const files = new Set(SYSLOG_VECTORS.map((v) => v.source));
    expect(files).toContain('influxdata/go-syslog rfc5424/machine_test.go');
    expect(SYSLOG_VECTORS.filter((v) => v.source.endsWith('rfc5424/machine_test.go')).length).toBeGreaterThanOrEqual(10);
  });

  it('every source is a file of a named tool, or the issue', () => {
    for (const v of [...STATSD_VECTORS, ...SYSLOG_VECTORS]) {
      const repo = v.source.split(' ')[0]!;
      expect(repo in NAMED || v.source.startsWith('shardgram issue #20'), v.source).toBe(true);
    }
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
    if ('format' in v.expect) got.format = p.format;
    if ('version' in v.expect) got.version = p.version;
    if ('msgId' in v.expect) got.msgId = p.msgId;
    if ('structuredData' in v.expect) got.structuredData = p.structuredData;
    expect(p.error).toBeNull();
    expect(got).toEqual(v.expect);
  });
});
