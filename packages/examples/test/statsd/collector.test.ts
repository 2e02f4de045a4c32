/**
 * The supervisor side without processes: flush rounds with fake workers (replies,
 * timeouts, late and final partials, a replaced worker) on a manual clock (no real
 * timers), the output formats, Graphite over a local TCP server, and the options.
 */
import { once } from 'node:events';
import { resolve } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PartialAggregate } from '../../src/statsd/aggregate.js';
import { FlushCollector } from '../../src/statsd/collector.js';
import { formatGraphite, formatPrometheus, sendGraphite } from '../../src/statsd/flush.js';
import type { FlushResult } from '../../src/statsd/merge.js';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import type { FlushRequest } from '../../src/statsd/protocol.js';
import { zeroBadReasons } from '../../src/statsd/tallies.js';
import { relativeError } from '../../src/statsd/native-histogram.js';
import { ManualClock, until } from './manual-clock.js';

/** A collector wired to fake workers: each answers flush requests unless muted. */
function harness(opts: Record<string, string>) {
  const flushes: FlushResult[] = [];
  const logs: string[] = [];
  const workers = new Map<number, { index: number; agg: PartialAggregate; mute: boolean; held: FlushRequest[] }>();
  const clock = new ManualClock();
  const c = new FlushCollector({
    clock,
    options: parseStatsdOptions(opts),
    log: (l) => logs.push(l),
    broadcast: (m) => {
      // Like IPC: asynchronous, in order.
      for (const [pid, w] of workers) {
        setImmediate(() => {
          if (w.mute) w.held.push(m);
          else c.message(w.index, { t: 'statsd.partial', index: w.index, pid, id: m.id, final: false, partial: w.agg.take() });
        });
      }
    },
    outputs: [{ name: 'test', write: async (r) => void flushes.push(r) }],
  });
  const hello = (index: number, pid: number): PartialAggregate => {
    const agg = new PartialAggregate();
    workers.set(pid, { index, agg, mute: false, held: [] });
    c.message(index, { t: 'statsd.hello', index, pid });
    return agg;
  };
  return { c, clock, flushes, logs, workers, hello };
}

let stopMe: ReturnType<typeof harness> | undefined;
afterEach(async () => {
  const h = stopMe;
  stopMe = undefined;
  if (!h) return;
  const stopped = h.c.stop();
  await h.clock.advance(1000); // the stop hook's bounded wait for final partials
  await stopped;
});

describe('flush rounds', () => {
  it('merges every worker’s partial each interval, and the last partial interval on stop', async () => {
    const h = harness({ flushInterval: '60', flushTimeout: '50' });
    stopMe = h;
    const a = h.hello(0, 100);
    const b = h.hello(1, 101);
    h.c.start();
    a.datagram('x:1|c\nt:5|ms');
    b.datagram('x:2|c\nt:1|ms\ns:u1|s');
    await h.clock.advance(59);
    expect(h.flushes).toHaveLength(0); // not before the interval
    await h.clock.advance(1);
    await until(() => h.flushes.length >= 1);
    expect(h.flushes[0]).toMatchObject({ flush: 1, final: false, counters: { x: 3 }, sets: { s: 1 }, missing_workers: [] });
    expect(h.flushes[0]!.timers.t).toMatchObject({ count: 2, min: 1, max: 5, sum: 6 });
    expect(h.flushes[0]!.interval_ms).toBe(60);
    expect(h.flushes[0]!.timestamp).toBe(Math.round(h.clock.now() / 1000));
    // Stop: each worker's close hook sends its final partial first.
    a.datagram('x:10|c');
    for (const [pid, w] of h.workers) h.c.message(w.index, { t: 'statsd.partial', index: w.index, pid, id: null, final: true, partial: w.agg.take() });
    await h.c.stop(); // no member left to wait for: resolves without the clock moving
    const last = h.flushes.at(-1)!;
    expect(last.final).toBe(true);
    expect(h.flushes.reduce((s, f) => s + (f.counters.x ?? 0), 0)).toBe(13);
    expect(h.logs).toEqual([]);
  });

  it('a worker that does not answer in time is logged and counted; its late partial goes into the next flush', async () => {
    const h = harness({ flushInterval: '80', flushTimeout: '30' });
    stopMe = h;
    h.hello(0, 200).datagram('x:1|c');
    const slow = h.hello(1, 201);
    slow.datagram('x:100|c');
    h.workers.get(201)!.mute = true;
    h.c.start();
    await h.clock.advance(80 + 29);
    expect(h.flushes).toHaveLength(0); // the round waits for worker 1 until flushTimeout
    await h.clock.advance(1);
    await until(() => h.flushes.length >= 1);
    expect(h.flushes[0]).toMatchObject({ counters: { x: 1 }, missing_workers: [1] });
    expect(h.logs.join('\n')).toMatch(/flush round 1: no partial from worker 1 \(pid 201\) within 30 ms; flushing without it/);
    expect(h.c.metrics()).toMatch(/^shardgram_statsd_missing_partials_total 1$/m);
    // The slow worker answers now (late): merged into the next flush, nothing lost.
    const w = h.workers.get(201)!;
    w.mute = false;
    h.c.message(1, { t: 'statsd.partial', index: 1, pid: 201, id: w.held[0]!.id, final: false, partial: slow.take() });
    await h.clock.advance(50); // the next interval; both answer now
    await until(() => h.flushes.length >= 2);
    expect(h.flushes[1]).toMatchObject({ counters: { x: 100 }, missing_workers: [] });
    expect(h.logs.join('\n')).toMatch(/late partial #1: from worker 1 \(pid 201\) for flush round 1: merged into the next flush/);
  });

  it('a crashed worker replaced on its slot stops being waited for', async () => {
    const h = harness({ flushInterval: '60', flushTimeout: '20' });
    stopMe = h;
    h.hello(0, 300);
    h.hello(1, 301);
    h.workers.get(301)!.mute = true; // dead
    h.workers.delete(301);
    h.hello(1, 302); // its replacement
    h.c.start();
    await h.clock.advance(60 + 20); // round 1: pid 301 never answers
    await until(() => h.flushes.length >= 1);
    await h.clock.advance(40); // round 2, at 120: nobody missing
    await until(() => h.flushes.length >= 2);
    expect(h.flushes[0]!.missing_workers).toEqual([1]);
    expect(h.flushes[1]!.missing_workers).toEqual([]);
    expect(h.logs.join('\n')).toMatch(/worker 1 \(pid 301\) .* it was replaced by pid 302/);
  });

  it('/metrics (statsd_exporter layout, the default): names escaped, tags as labels, counters, gauges, timers as summaries in seconds', async () => {
    const h = harness({ flushInterval: '40', flushTimeout: '20' });
    stopMe = h;
    h.hello(0, 400).datagram('api.req:2|c|#env:prod,metric:x,9lives:"q"\nlat:3|ms\nlat:5|ms\ng.x:7|g\nu:a|s\n1st-x:1|c');
    h.c.start();
    await h.clock.advance(40);
    await until(() => h.flushes.length >= 1);
    const text = h.c.metrics();
    expect(text).toMatch(/^# TYPE api_req counter\napi_req\{_9lives="\\"q\\"",env="prod",metric="x"\} 2$/m);
    expect(text).toMatch(/^# TYPE g_x gauge\ng_x 7$/m);
    expect(text).toMatch(/^_1st_x 1$/m);
    expect(text).toMatch(/^# TYPE lat summary$/m);
    expect(text).toMatch(/^lat_sum 0.008$/m);
    expect(text).toMatch(/^lat_count 2$/m);
    const q = (x: string): number => Number(new RegExp(`^lat\\{quantile="${x}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(Math.abs(q('0.5') - 0.003) / 0.003).toBeLessThanOrEqual(relativeError(5));
    expect(Math.abs(q('0.99') - 0.005) / 0.005).toBeLessThanOrEqual(relativeError(5));
    expect(text).toMatch(/^shardgram_statsd_prometheus_dropped_total\{reason="set"\} 1$/m);
    expect(text).not.toMatch(/shardgram_statsd_(counter|gauge|timer|set_unique)\b/);
  });

  it('negative counter increments: the Prometheus counter adds only the positive ones and counts each negative one (statsd_exporter); the flush outputs keep the net sum (Etsy)', async () => {
    const h = harness({ flushInterval: '40', flushTimeout: '20' });
    stopMe = h;
    // One key over two workers: a worker with only positive increments of it, one with both signs.
    h.hello(0, 500).datagram('c:5|c\nc:-3|c\nc:-1|c|@0.5\nonly.neg:-4|c\npos:2|c');
    h.hello(1, 501).datagram('c:10|c\npos:3|c');
    h.c.start();
    await h.clock.advance(40);
    await until(() => h.flushes.length >= 1);
    expect(h.flushes[0]!.counters).toEqual({ c: 10, 'only.neg': -4, pos: 5 });
    const text = h.c.metrics();
    expect(text).toMatch(/^c 15$/m);
    expect(text).toMatch(/^pos 5$/m);
    // Only negative increments: no series, as in statsd_exporter.
    expect(text).not.toMatch(/^only_neg /m);
    expect(text).toMatch(/^shardgram_statsd_prometheus_dropped_total\{reason="illegal_negative_counter"\} 3$/m);
  });

  it('/metrics (promLayout=labels, the layout before): Prometheus text with tags as labels, escaped', async () => {
    const h = harness({ flushInterval: '40', flushTimeout: '20', percentiles: '90,99.9', promLayout: 'labels', timerMode: 'exact' });
    stopMe = h;
    h.hello(0, 400).datagram('req:2|c|#env:prod,metric:x,9lives:"q"\nlat:3|ms\nlat:5|ms\ng:7|g\nu:a|s');
    h.c.start();
    await h.clock.advance(40);
    await until(() => h.flushes.length >= 1);
    const text = h.c.metrics();
    expect(text).toContain('shardgram_statsd_counter_total{metric="req",_9lives="\\"q\\"",env="prod",tag_metric="x"} 2');
    expect(text).toContain('shardgram_statsd_gauge{metric="g"} 7');
    expect(text).toContain('shardgram_statsd_set_unique{metric="u"} 1');
    expect(text).toContain('shardgram_statsd_timer{metric="lat",stat="p99_9"} 5');
    expect(text).toContain('shardgram_statsd_timer{metric="lat",stat="median"} 4');
    expect(text).toMatch(/^# TYPE shardgram_statsd_counter_total counter$/m);
    expect(
      formatPrometheus({
        last: undefined,
        counterTotals: new Map([['a;k=x"y\\z', 1]]),
        badLines: 0,
        metrics: 0,
        packets: 0,
        flushes: 0,
        missingPartials: 0,
        outputErrors: 0,
        namesTooLong: 0,
        keysOverLimit: 0,
        overflows: 0,
        gaugesExpired: 0,
      }),
    ).toContain('shardgram_statsd_counter_total{metric="a",k="x\\"y\\\\z"} 1');
  });
});

describe('Graphite plaintext', () => {
  const r: FlushResult = {
    timestamp: 1700000000,
    flush: 1,
    final: false,
    interval_ms: 10_000,
    bad_lines_seen: 2,
    metrics_received: 9,
    packets_received: 4,
    missing_workers: [],
    names_too_long: 0,
    keys_over_limit: 0,
    overflows: 0,
    gauges_expired: 0,
    counters: { 'api.hits;env=prod': 30 },
    gauges: { temp: -3.5 },
    sets: { users: 4 },
    timers: { lat: { count: 2, sum: 8, mean: 4, min: 3, max: 5, median: 4, p90: 5 } },
    events: [],
    service_checks: [],
    ignored_fields: 0,
    bad_lines_by_reason: { ...zeroBadReasons(), syntax: 2 },
    events_seen: 0,
    service_checks_seen: 0,
  };

  it('uses Etsy statsd’s namespace with Graphite tags', () => {
    expect(formatGraphite(r, 'stats', 10_000).split('\n')).toEqual([
      'stats.counters.api.hits.count;env=prod 30 1700000000',
      'stats.counters.api.hits.rate;env=prod 3 1700000000',
      'stats.gauges.temp -3.5 1700000000',
      'stats.sets.users.count 4 1700000000',
      'stats.timers.lat.count 2 1700000000',
      'stats.timers.lat.sum 8 1700000000',
      'stats.timers.lat.mean 4 1700000000',
      'stats.timers.lat.min 3 1700000000',
      'stats.timers.lat.max 5 1700000000',
      'stats.timers.lat.median 4 1700000000',
      'stats.timers.lat.p90 5 1700000000',
      'stats.statsd.bad_lines_seen 2 1700000000',
      'stats.statsd.metrics_received 9 1700000000',
      'stats.statsd.packets_received 4 1700000000',
      '',
    ]);
  });

  let server: Server | undefined;
  afterEach(() => {
    server?.close();
    server = undefined;
  });

  it('is delivered over TCP to a local server', async () => {
    let delivered!: (text: string) => void;
    const received = new Promise<string>((r) => (delivered = r));
    server = createServer((s) => {
      let buf = '';
      s.on('data', (d) => (buf += d.toString()));
      s.on('end', () => delivered(buf));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await sendGraphite({ host: '127.0.0.1', port }, formatGraphite(r, 'stats', 10_000));
    expect(await received).toContain('stats.counters.api.hits.count;env=prod 30 1700000000\n');
  });

  it('reports a refused connection as an error (no throw past the promise)', async () => {
    const s = createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    s.close();
    await expect(sendGraphite({ host: '127.0.0.1', port }, 'x 1 1\n')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('options', () => {
  it('defaults', () => {
    expect(parseStatsdOptions({})).toEqual({
      graphiteBacklog: 1_000_000,
      graphiteReplayMs: 20_000,
      jsonBacklog: 100,
      outputRetryMaxMs: 10_000,
      outputStopTimeoutMs: 5000,
      remoteWrite: undefined,
      remoteWriteBacklog: 1_000_000,
      remoteWriteBacklogBytes: 256 * 1024 * 1024,
      flushIntervalMs: 10_000,
      percentiles: [90],
      jsonOut: undefined,
      graphite: undefined,
      graphitePrefix: 'stats',
      flushTimeoutMs: 2000,
      maxNameLength: 512,
      maxKeys: 50_000,
      gaugeExpiry: 360,
      tagStyles: { influxdbTags: true, libratoTags: true, signalfxTags: true },
      timerBucketsMs: [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000],
      timerMode: 'histogram',
      timerSchema: 5,
      timerMaxBuckets: 2048,
      mappingConfig: undefined,
      promLayout: 'exporter',
    });
  });

  it('parses every option', () => {
    expect(
      parseStatsdOptions({
        graphiteBacklog: '20',
        graphiteReplay: '750',
        jsonBacklog: '3',
        outputRetryMax: '500',
        outputStopTimeout: '1500',
        flushInterval: '500',
        percentiles: '90,95,99.9',
        jsonOut: 'f.jsonl',
        graphite: '[::1]:2003',
        flushTimeout: '100',
        graphitePrefix: 'p',
        timerBuckets: '1,10,100',
        maxNameLength: '100',
        maxKeys: '10',
        gaugeExpiry: '0',
        timerMode: 'exact',
        timerSchema: '-2',
        timerMaxBuckets: '100',
        promLayout: 'labels',
      }),
    ).toEqual({
      graphiteBacklog: 20,
      graphiteReplayMs: 750,
      jsonBacklog: 3,
      outputRetryMaxMs: 500,
      outputStopTimeoutMs: 1500,
      remoteWrite: undefined,
      remoteWriteBacklog: 1_000_000,
      remoteWriteBacklogBytes: 256 * 1024 * 1024,
      flushIntervalMs: 500,
      percentiles: [90, 95, 99.9],
      jsonOut: resolve('f.jsonl'),
      graphite: { host: '::1', port: 2003 },
      graphitePrefix: 'p',
      flushTimeoutMs: 100,
      timerBucketsMs: [1, 10, 100],
      maxNameLength: 100,
      maxKeys: 10,
      gaugeExpiry: 0,
      tagStyles: { influxdbTags: true, libratoTags: true, signalfxTags: true },
      timerMode: 'exact',
      timerSchema: -2,
      timerMaxBuckets: 100,
      mappingConfig: undefined,
      promLayout: 'labels',
    });
    expect(parseStatsdOptions({ flushInterval: '500' }).flushTimeoutMs).toBe(500);
    // The replay window: 2 × flushInterval, at least 5 s; 0 turns it off.
    expect(parseStatsdOptions({ flushInterval: '1000' }).graphiteReplayMs).toBe(5000);
    expect(parseStatsdOptions({ flushInterval: '60000' }).graphiteReplayMs).toBe(120_000);
    expect(parseStatsdOptions({ graphiteReplay: '0' }).graphiteReplayMs).toBe(0);
  });

  it.each([
    [{ flushInterval: 'soon' }, /flushInterval/],
    [{ flushInterval: '5' }, /flushInterval/],
    [{ percentiles: '90,101' }, /percentiles/],
    [{ percentiles: '' }, /percentiles/],
    [{ graphite: 'localhost' }, /graphite/],
    [{ graphite: 'h:70000' }, /graphite/],
    [{ graphiteBacklog: '0' }, /graphiteBacklog/],
    [{ graphiteReplay: '-1' }, /graphiteReplay/],
    [{ outputRetryMax: '10' }, /outputRetryMax/],
    [{ jsonout: 'x' }, /unknown statsd option "jsonout"/],
    [{ timerMode: 'sketch' }, /timerMode.*histogram or exact/],
    [{ timerSchema: '9' }, /timerSchema.*-4 to 8/],
    [
      { jsonOut: '/nonexistent-dir/f.jsonl' },
      /^jsonOut must be a file in an existing directory; got "\/nonexistent-dir\/f.jsonl" \(directory \/nonexistent-dir does not exist\)$/,
    ],
  ])('rejects %j', (o, msg) => {
    expect(() => parseStatsdOptions(o as Record<string, string>)).toThrow(msg);
  });
});
