/**
 * /metrics in Prometheus's protobuf format: the Accept header Prometheus sends with
 * native histograms enabled gets delimited `MetricFamily` messages (encoded from
 * Prometheus's own metrics.proto), holding the same figures as the text; any other
 * Accept gets text.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PromWriter, decodeFamilies, encodeFamilies, prefersProtobuf, PROTOBUF_CONTENT_TYPE } from '@shardgram/udp-core/prom';
import { startServe } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

/** What Prometheus 2.42 sends with --enable-feature=native-histograms (scrape/scrape.go, scrapeAcceptHeaderWithProtobuf). */
const PROMETHEUS_PROTOBUF_ACCEPT =
  'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1';
/** What Prometheus 2.42 sends without it. */
const PROMETHEUS_TEXT_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

describe('content negotiation', () => {
  it('protobuf only when the Accept header prefers it', () => {
    expect(prefersProtobuf(PROMETHEUS_PROTOBUF_ACCEPT)).toBe(true);
    expect(prefersProtobuf(PROMETHEUS_TEXT_ACCEPT)).toBe(false);
    expect(prefersProtobuf(undefined)).toBe(false);
    expect(prefersProtobuf('*/*')).toBe(false);
    expect(prefersProtobuf('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited')).toBe(true);
    expect(prefersProtobuf('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text')).toBe(false);
    expect(prefersProtobuf('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.2,text/plain;q=0.5')).toBe(false);
  });
});

describe('encoding', () => {
  it('counters, gauges, summaries and histograms (classic and native) round-trip through metrics.proto', () => {
    const w = new PromWriter()
      .family('a_total', 'counter', 'A.')
      .sample('a_total', { x: 'y"z' }, 3)
      .family('g', 'gauge', 'G.')
      .sample('g', {}, -1.5)
      .family('s', 'summary', 'S.')
      .summary(
        's',
        { k: 'v' },
        {
          count: 4,
          sum: 2.5,
          quantiles: [
            [0.5, 0.4],
            [0.99, 1.2],
          ],
        },
      )
      .family('h', 'histogram', 'H.')
      .histogram(
        'h',
        {},
        {
          count: 5,
          sum: 7,
          buckets: [
            [1, 2],
            [5, 4],
          ],
          native: {
            schema: 3,
            zeroThreshold: 2 ** -128,
            zeroCount: 1,
            positiveSpans: [
              { offset: -2, length: 2 },
              { offset: 3, length: 1 },
            ],
            positiveDeltas: [1, 1, -1],
            negativeSpans: [],
            negativeDeltas: [],
          },
        },
      );
    const decoded = decodeFamilies(encodeFamilies(w.families()));
    expect(decoded).toEqual(
      [
        { name: 'a_total', help: 'A.', type: 'COUNTER', metric: [{ label: [{ name: 'x', value: 'y"z' }], counter: { value: 3 } }] },
        { name: 'g', help: 'G.', type: 'GAUGE', metric: [{ label: [], gauge: { value: -1.5 } }] },
        {
          name: 's',
          help: 'S.',
          type: 'SUMMARY',
          metric: [
            {
              label: [{ name: 'k', value: 'v' }],
              summary: {
                sampleCount: 4,
                sampleSum: 2.5,
                quantile: [
                  { quantile: 0.5, value: 0.4 },
                  { quantile: 0.99, value: 1.2 },
                ],
              },
            },
          ],
        },
        {
          name: 'h',
          help: 'H.',
          type: 'HISTOGRAM',
          metric: [
            {
              label: [],
              histogram: {
                sampleCount: 5,
                sampleSum: 7,
                bucket: [
                  { upperBound: 1, cumulativeCount: 2 },
                  { upperBound: 5, cumulativeCount: 4 },
                ],
                schema: 3,
                zeroThreshold: 2 ** -128,
                zeroCount: 1,
                positiveSpan: [
                  { offset: -2, length: 2 },
                  { offset: 3, length: 1 },
                ],
                positiveDelta: [1, 1, -1],
              },
            },
          ],
        },
      ]
        .map((f) => ({ ...f, metric: f.metric.map((m) => (m.label.length ? m : { ...m, label: undefined })) }))
        .map((f) => JSON.parse(JSON.stringify(f)) as unknown),
    );
    // The text format of the same writer: classic buckets with +Inf, summary quantiles.
    expect(w.text()).toContain('h_bucket{le="+Inf"} 5\nh_sum 7\nh_count 5\n');
    expect(w.text()).toContain('s{k="v",quantile="0.99"} 1.2\n');
  });
});

describe("the core's /metrics", () => {
  it('answers a protobuf Accept with the same figures as its text', async () => {
    const serving = await startServe(['echo', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    const clients = await openClients(4);
    try {
      for (let i = 0; i < 20; i++) await send(clients[i % 4]!, `x${i}`, serving.port);
      const url = `${serving.stats!}/metrics`;
      const line = /^shardgram_datagrams_total\{app="echo",port="\d+"\} (\d+)$/m;
      expect(await waitFor(async () => line.exec(await (await fetch(url)).text())?.[1] === '20', 10_000, 50)).toBe(true);
      const r = await fetch(url, { headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } });
      expect(r.headers.get('content-type')).toBe(PROTOBUF_CONTENT_TYPE);
      const families = decodeFamilies(new Uint8Array(await r.arrayBuffer())) as { name: string; type: string; metric: { counter?: { value: number } }[] }[];
      const total = families.find((f) => f.name === 'shardgram_datagrams_total')!;
      expect(total.type).toBe('COUNTER');
      expect(total.metric[0]!.counter!.value).toBe(20);
      const text = await (await fetch(url)).text();
      expect(families.map((f) => f.name).sort()).toEqual([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]).sort());
      expect((await fetch(url, { headers: { accept: 'text/plain' } })).headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    } finally {
      closeAll(clients);
      await serving.stop('SIGTERM');
    }
  });
});

describe("the statsd app's /metrics", () => {
  it('serves its timers as native histograms in the protobuf format (one histogram of every value, merged from the workers)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-protobuf-'));
    const mapping = join(dir, 'mapping.yml');
    writeFileSync(mapping, 'defaults:\n  observer_type: histogram\n');
    const serving = await startServe(
      ['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '--flush-interval', '100', '--mapping-config', mapping],
      2,
    );
    const clients = await openClients(4);
    try {
      const values = [1, 2, 2, 3, 40, 500]; // ms
      for (let i = 0; i < values.length; i++) await send(clients[i % 4]!, `api.lat:${values[i]}|ms\napi.req:1|c|#env:prod`, serving.port);
      const url = `${serving.stats!}/metrics`;
      expect(await waitFor(async () => /^api_lat_count 6$/m.test(await (await fetch(url)).text()), 10_000, 50)).toBe(true);
      const r = await fetch(url, { headers: { accept: PROMETHEUS_PROTOBUF_ACCEPT } });
      expect(r.headers.get('content-type')).toBe(PROTOBUF_CONTENT_TYPE);
      type H = {
        sampleCount: number;
        sampleSum: number;
        schema: number;
        zeroThreshold: number;
        positiveSpan: { offset: number; length?: number }[];
        positiveDelta: number[];
      };
      const families = decodeFamilies(new Uint8Array(await r.arrayBuffer())) as {
        name: string;
        type: string;
        metric: { label?: { name: string; value: string }[]; counter?: { value: number }; histogram?: H }[];
      }[];
      const req = families.find((f) => f.name === 'api_req')!;
      expect(req).toMatchObject({ type: 'COUNTER', metric: [{ label: [{ name: 'env', value: 'prod' }], counter: { value: 6 } }] });
      const h = families.find((f) => f.name === 'api_lat')!.metric[0]!.histogram!;
      expect(h.sampleCount).toBe(6);
      expect(h.sampleSum).toBeCloseTo(0.548, 12);
      expect(h.schema).toBe(3); // bucket factor 1.1, statsd_exporter's default
      // The native buckets: each value (in seconds) in the bucket client_golang would put it in.
      const counts = new Map<number, number>();
      let key = 0;
      let count = 0;
      let d = 0;
      h.positiveSpan.forEach((span, i) => {
        key = i === 0 ? span.offset : key + span.offset;
        for (let j = 0; j < (span.length ?? 0); j++, key++) {
          count += h.positiveDelta[d++]!;
          if (count) counts.set(key, count);
        }
      });
      const expected = new Map<number, number>();
      for (const v of values) {
        const k = Math.ceil(Math.log2(v / 1000) * 8);
        expected.set(k, (expected.get(k) ?? 0) + 1);
      }
      expect(counts).toEqual(expected);
    } finally {
      closeAll(clients);
      await serving.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
