/**
 * The remote write output against a local HTTP receiver this test runs: the request as
 * the protocol wants it (headers, snappy, WriteRequest, sorted labels, external labels,
 * native histograms), auth, which answers are retried and which are refused for good,
 * strictly increasing timestamps, requests of bounded size; and the options' checks.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snappy from 'snappyjs';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeWriteRequest, encodeWriteRequest, familiesToSeries, PromWriter, type PromFamily } from '@shardgram/udp-core/prom';
import { retryAfterMs, RemoteWriteOutput, type RemoteWriteTarget } from '../../src/outputs/remote-write.js';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import { waitFor } from '@shardgram/test-kit/wait';

interface Received {
  headers: http.IncomingHttpHeaders;
  series: { labels: { name: string; value: string }[]; samples?: { value: number; timestamp: number }[]; histograms?: Record<string, unknown>[] }[];
}

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A receiver answering each request with `answer(n)` (n from 0, with optional headers); it records what it got, and when. */
async function receiver(
  answer: (n: number) => [number, string, Record<string, string>?] = () => [204, ''],
): Promise<{ url: string; got: Received[]; at: number[]; sizes: number[] }> {
  const got: Received[] = [];
  const at: number[] = [];
  const sizes: number[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = snappy.uncompress(Buffer.concat(parts));
      const [status, text, headers] = answer(got.length);
      at.push(performance.now());
      sizes.push(body.length);
      got.push({ headers: req.headers, series: (decodeWriteRequest(body).timeseries ?? []) as Received['series'] });
      res.writeHead(status, headers).end(text);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  cleanups.push(() => void server.closeAllConnections());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`, got, at, sizes };
}

function target(url: string, more: Partial<RemoteWriteTarget> = {}): RemoteWriteTarget {
  return { url: new URL(url), externalLabels: {}, auth: undefined, timeoutMs: 2000, caFile: undefined, nativeHistograms: true, ...more };
}

function output(
  t: RemoteWriteTarget,
  more: { capacity?: number; capacityBytes?: number; maxSamplesPerSend?: number; retryMaxMs?: number; now?: () => number } = {},
): { out: RemoteWriteOutput; logs: string[] } {
  const logs: string[] = [];
  const out = new RemoteWriteOutput({ target: t, capacity: more.capacity ?? 100_000, retryMinMs: 5, retryMaxMs: 20, log: (l) => logs.push(l), ...more });
  cleanups.push(() => out.close(100));
  return { out, logs };
}

function families(): PromFamily[] {
  const w = new PromWriter();
  w.family('app_hits', 'counter', 'h').sample('app_hits', { Zone: 'a', env: 'prod', empty: '' }, 42);
  w.family('app_latency', 'histogram', 'h').histogram(
    'app_latency',
    {},
    {
      count: 3,
      sum: 0.6,
      buckets: [[0.25, 2]],
      native: {
        schema: 3,
        zeroThreshold: 2 ** -128,
        zeroCount: 0,
        positiveSpans: [{ offset: -9, length: 2 }],
        positiveDeltas: [2, -1],
        negativeSpans: [],
        negativeDeltas: [],
      },
    },
  );
  return w.families();
}

const idle = (out: RemoteWriteOutput) => (): boolean => out.backlog.counts().queued === 0;

describe('remote write output', () => {
  it('posts a snappy WriteRequest with the protocol headers: the families as a scrape stores them, sorted labels, external labels', async () => {
    const r = await receiver();
    const { out } = output(target(r.url, { externalLabels: { job: 'statsd', env: 'ignored' } }), { now: () => 1_700_000_000_123 });
    out.push(families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(r.got).toHaveLength(1);
    const h = r.got[0]!.headers;
    expect([h['content-encoding'], h['content-type'], h['x-prometheus-remote-write-version']]).toEqual(['snappy', 'application/x-protobuf', '0.1.0']);
    const series = r.got[0]!.series;
    // The series' own env wins over the external one; an empty label is left out; byte order ("Zone" < "__name__").
    expect(series[0]).toEqual({
      labels: [
        { name: 'Zone', value: 'a' },
        { name: '__name__', value: 'app_hits' },
        { name: 'env', value: 'prod' },
        { name: 'job', value: 'statsd' },
      ],
      samples: [{ value: 42, timestamp: 1_700_000_000_123 }],
    });
    const names = series.map(
      (s) =>
        `${s.labels.find((l) => l.name === '__name__')!.value}${s.labels.find((l) => l.name === 'le') ? `{le=${s.labels.find((l) => l.name === 'le')!.value}}` : ''}`,
    );
    expect(names).toEqual(['app_hits', 'app_latency_bucket{le=0.25}', 'app_latency_bucket{le=+Inf}', 'app_latency_sum', 'app_latency_count', 'app_latency']);
    expect(series.at(-1)!.histograms).toEqual([
      {
        countInt: 3,
        sum: 0.6,
        schema: 3,
        zeroThreshold: 2 ** -128,
        zeroCountInt: 0,
        positiveSpans: [{ offset: -9, length: 2 }],
        positiveDeltas: [2, -1],
        timestamp: 1_700_000_000_123,
      },
    ]);
    expect(out.backlog.counts()).toMatchObject({ accepted: 6, delivered: 6 });
  });

  it('nativeHistograms off: the classic series only', async () => {
    const r = await receiver();
    const { out } = output(target(r.url, { nativeHistograms: false }));
    out.push(families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(r.got[0]!.series.some((s) => s.histograms)).toBe(false);
    expect(r.got[0]!.series).toHaveLength(5);
  });

  it('5xx, 429 and a dead receiver are retried until delivered; nothing twice, nothing lost', async () => {
    const r = await receiver((n) => (n === 0 ? [503, 'busy'] : n === 1 ? [429, 'slow down'] : [204, '']));
    const { out, logs } = output(target(r.url));
    out.push(families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(r.got).toHaveLength(3);
    expect(out.backlog.counts()).toMatchObject({ accepted: 6, delivered: 6, rejected: 0, failedAttempts: 2 });
    expect(logs[0]).toMatch(/^remote write http:\/\/127\.0\.0\.1:\d+\/api\/v1\/write: HTTP 503: busy; keeping up to 100000 samples/);

    const dead = output(target('http://127.0.0.1:1/api/v1/write'));
    dead.out.push(families());
    expect(await waitFor(() => dead.out.backlog.counts().failedAttempts >= 3, 5000, 5)).toBe(true);
    expect(dead.out.backlog.counts()).toMatchObject({ delivered: 0, rejected: 0, queued: 6 });
    expect(dead.logs[0]).toMatch(/ECONNREFUSED/);
  });

  it('a receiver that accepts and never answers: push never waits; each attempt ends at the timeout and is retried, nothing lost', async () => {
    const server = net.createServer(() => undefined); // reads nothing, answers nothing
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const held: net.Socket[] = [];
    server.on('connection', (c) => held.push(c));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    cleanups.push(() => {
      for (const c of held) c.destroy();
    });
    const { out, logs } = output(target(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`, { timeoutMs: 200 }));
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) out.push(families());
    expect(performance.now() - t0).toBeLessThan(1000); // queued, not sent: the flush clock does not wait
    expect(await waitFor(() => out.backlog.counts().failedAttempts >= 2, 5000, 10)).toBe(true);
    expect(out.backlog.counts()).toMatchObject({ accepted: 30, delivered: 0, dropped: 0, rejected: 0, queued: 30 });
    expect(logs[0]).toMatch(/no answer within 200 ms; keeping up to 100000 samples/);
  });

  it('another 4xx is refused for good: counted as rejected, not retried, its answer escaped in the log', async () => {
    const r = await receiver((n) => (n === 0 ? [400, 'out of order sample\u001b[31m\nsecond line'] : [204, '']));
    const { out, logs } = output(target(r.url));
    out.push(families());
    out.push(families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(r.got).toHaveLength(2);
    expect(out.backlog.counts()).toMatchObject({ accepted: 12, delivered: 6, rejected: 6, failedAttempts: 0 });
    expect(logs).toContain(
      'remote write ' +
        r.url +
        ': 6 samples refused, not retried (HTTP 400: out of order sample\\x1b[31m); every refused sample is counted (said again when the reason changes, or after a delivery)',
    );
  });

  it('basic auth, and a bearer token file read at each request (rotated between two)', async () => {
    const r = await receiver();
    const basic = output(target(r.url, { auth: { kind: 'basic', username: 'u', password: 'p:w' } }));
    basic.out.push(families());
    expect(await waitFor(idle(basic.out), 5000, 5)).toBe(true);
    expect(r.got[0]!.headers.authorization).toBe(`Basic ${Buffer.from('u:p:w').toString('base64')}`);

    const dir = mkdtempSync(join(tmpdir(), 'shardgram-rw-token-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'token');
    writeFileSync(file, 'first\n');
    const bearer = output(target(r.url, { auth: { kind: 'bearer', tokenFile: file } }));
    bearer.out.push(families());
    expect(await waitFor(idle(bearer.out), 5000, 5)).toBe(true);
    writeFileSync(file, 'second\n');
    bearer.out.push(families());
    expect(await waitFor(idle(bearer.out), 5000, 5)).toBe(true);
    expect(r.got.slice(1).map((g) => g.headers.authorization)).toEqual(['Bearer first', 'Bearer second']);
  });

  it('timestamps strictly increase even when the clock does not; a large flush goes in requests of at most maxSamplesPerSend', async () => {
    const r = await receiver();
    const { out } = output(target(r.url), { now: () => 5000, maxSamplesPerSend: 400 });
    const w = new PromWriter().family('many', 'gauge', 'h');
    for (let i = 0; i < 1000; i++) w.sample('many', { i }, i);
    out.push(w.families());
    out.push(w.families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    const sizes = r.got.map((g) => g.series.length);
    expect(sizes.every((n) => n <= 400)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2000);
    const stamps = r.got.flatMap((g) => g.series.map((s) => s.samples![0]!.timestamp));
    expect(new Set(stamps)).toEqual(new Set([5000, 5001]));
    expect(out.backlog.counts()).toMatchObject({ accepted: 2000, delivered: 2000 });
  });
});

describe('remote write limits', () => {
  it('a flush bigger than the backlog (1500 series, backlog 1000) to a receiver that keeps up: all delivered, none dropped', async () => {
    const r = await receiver();
    const { out } = output(target(r.url), { capacity: 1000 });
    const w = new PromWriter().family('wide', 'gauge', 'h');
    for (let i = 0; i < 1500; i++) w.sample('wide', { i }, i);
    out.push(w.families());
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(out.backlog.counts()).toMatchObject({ accepted: 1500, delivered: 1500, dropped: 0 });
    expect(r.got.reduce((a, g) => a + g.series.length, 0)).toBe(1500);
    expect(r.got.every((g) => g.series.length <= 1000)).toBe(true);
  });

  it('Retry-After on 429 (seconds) and 503 (an HTTP date) is waited for, capped by the longest backoff', async () => {
    const later = new Date(Date.now() + 3_600_000).toUTCString();
    const r = await receiver((n) => (n === 0 ? [429, 'slow down', { 'Retry-After': '1' }] : n === 1 ? [503, 'busy', { 'Retry-After': later }] : [204, '']));
    const { out, logs } = output(target(r.url), { retryMaxMs: 1500 });
    out.push(families());
    expect(await waitFor(idle(out), 10_000, 5)).toBe(true);
    expect(r.at).toHaveLength(3);
    expect(r.at[1]! - r.at[0]!).toBeGreaterThanOrEqual(950); // asked 1 s (the backoff alone: 5 ms)
    expect(r.at[2]! - r.at[1]!).toBeGreaterThanOrEqual(1450);
    expect(r.at[2]! - r.at[1]!).toBeLessThan(3000); // an hour asked, 1500 ms the cap
    expect(logs[0]).toMatch(/HTTP 429: slow down \(Retry-After 1000 ms\)/);
    expect(retryAfterMs('120')).toBe(120_000);
    expect(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:30 GMT'))).toBe(30_000);
    expect(retryAfterMs('soon')).toBe(0);
    expect(retryAfterMs(undefined)).toBe(0);
  });

  it('the byte cap: native histograms weigh by their encoding; a chunk heavier than the cap is split; the oldest are dropped past it, counted', async () => {
    /** `n` timers, each a native histogram of 300 buckets. */
    const heavy = (n: number): PromFamily[] => {
      const w = new PromWriter().family('heavy', 'histogram', 'h');
      for (let i = 0; i < n; i++) {
        w.histogram(
          'heavy',
          { i },
          {
            count: 300,
            sum: 1,
            buckets: [],
            native: {
              schema: 3,
              zeroThreshold: 0,
              zeroCount: 0,
              positiveSpans: [{ offset: 0, length: 300 }],
              positiveDeltas: Array.from({ length: 300 }, (_, k) => (k ? 0 : 1)),
              negativeSpans: [],
              negativeDeltas: [],
            },
          },
        );
      }
      return w.families();
    };
    const oneBytes = encodeWriteRequest(familiesToSeries(heavy(1), { externalLabels: {}, nativeHistograms: true }), 1_700_000_000_000).length;
    expect(oneBytes).toBeGreaterThan(300); // the buckets, not one sample's worth
    const cap = 4 * oneBytes + 10;
    // A receiver that keeps up: a 6-timer flush (heavier than the cap) goes in two requests within it, all delivered.
    const r = await receiver();
    const ok = output(target(r.url), { capacityBytes: cap, now: () => 1_700_000_000_000 });
    ok.out.push(heavy(6));
    expect(await waitFor(idle(ok.out), 5000, 5)).toBe(true);
    expect(r.got.flatMap((g) => g.series).filter((s) => s.histograms)).toHaveLength(6);
    expect(r.got).toHaveLength(2);
    expect(Math.max(...r.sizes)).toBeLessThanOrEqual(cap);
    expect(ok.out.backlog.counts()).toMatchObject({ accepted: 24, delivered: 24, dropped: 0 }); // 4 series a timer
    // A dead receiver: flushes of one timer (4 samples, oneBytes); 4 flushes wait (the cap), 1 in flight, the rest dropped and counted.
    const dead = output(target('http://127.0.0.1:1/api/v1/write'), { capacityBytes: cap, now: () => 1_700_000_000_000 });
    for (let i = 0; i < 10; i++) dead.out.push(heavy(1));
    expect(dead.out.backlog.counts()).toMatchObject({ accepted: 40, dropped: 20, queued: 20 });
    expect(dead.logs.some((l) => l.includes(`backlog full (${cap} bytes)`))).toBe(true);
  });

  it('a bearer token file rotated to a value no HTTP header can carry: the attempt fails with the reason (retried), it does not throw', async () => {
    const r = await receiver();
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-rw-token-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'token');
    writeFileSync(file, 'bad\u0001token\n');
    const { out, logs } = output(target(r.url, { auth: { kind: 'bearer', tokenFile: file } }));
    out.push(families());
    expect(await waitFor(() => out.backlog.counts().failedAttempts >= 1, 5000, 5)).toBe(true);
    expect(logs[0]).toContain(`the bearer token in ${file} is not usable: the character U+0001 cannot be in an HTTP header`);
    writeFileSync(file, 'good\n');
    expect(await waitFor(idle(out), 5000, 5)).toBe(true);
    expect(r.got.map((g) => g.headers.authorization)).toEqual(['Bearer good']);
  });
});

describe('remote write options', () => {
  const opts = (more: Record<string, string>): ReturnType<typeof parseStatsdOptions> => parseStatsdOptions(more);

  it('parsed into a target', () => {
    const o = opts({
      remoteWrite: 'https://mimir.example:443/api/v1/push',
      remoteWriteLabels: 'job=statsd, instance=h1',
      remoteWriteBearerToken: 't',
      remoteWriteBacklog: '5000',
    });
    expect(o.remoteWrite).toMatchObject({
      externalLabels: { job: 'statsd', instance: 'h1' },
      auth: { kind: 'bearer', token: 't' },
      timeoutMs: 30_000,
      nativeHistograms: true,
    });
    expect(o.remoteWrite!.url.href).toBe('https://mimir.example/api/v1/push');
    expect(o.remoteWriteBacklog).toBe(5000);
    expect(opts({}).remoteWrite).toBeUndefined();
  });

  it('refused with the option named', () => {
    const code = (more: Record<string, string>): [string, string] => {
      try {
        opts(more);
      } catch (err) {
        const e = err as { code: string; option: string; message: string };
        return [e.option, e.message];
      }
      return ['', 'accepted'];
    };
    expect(code({ remoteWrite: 'ftp://x/y' })).toEqual([
      'remoteWrite',
      'remoteWrite must be an http:// or https:// URL, e.g. http://127.0.0.1:9090/api/v1/write; got "ftp://x/y"',
    ]);
    expect(code({ remoteWrite: 'http://u:secret@x/y' })[1]).not.toContain('secret');
    expect(code({ remoteWrite: 'http://x/y', remoteWriteLabels: '__name__=x' })[0]).toBe('remoteWriteLabels');
    expect(code({ remoteWrite: 'http://x/y', remoteWriteUsername: 'u', remoteWriteBearerToken: 't' })[0]).toBe('remoteWriteBearerToken');
    expect(code({ remoteWrite: 'http://x/y', remoteWritePassword: 'p' })[0]).toBe('remoteWriteUsername');
    expect(code({ remoteWriteUsername: 'u' })).toEqual([
      'remoteWriteUsername',
      'remoteWriteUsername is a remote write option: give remoteWrite (--remote-write URL) too',
    ]);
    expect(code({ remoteWrite: 'http://x/y', remoteWritePasswordFile: '/nonexistent/pw', remoteWriteUsername: 'u' })[0]).toBe('remoteWritePasswordFile');
    // A token no HTTP header can carry: refused at start, not retried forever.
    expect(code({ remoteWrite: 'http://x/y', remoteWriteBearerToken: 'tok\u20acen' })).toEqual([
      'remoteWriteBearerToken',
      'remoteWriteBearerToken is not usable: the character U+20AC cannot be in an HTTP header; give the token as issued',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-rw-token-'));
    try {
      writeFileSync(join(dir, 'token'), 'a\nb\n');
      expect(code({ remoteWrite: 'http://x/y', remoteWriteBearerTokenFile: join(dir, 'token') })[0]).toBe('remoteWriteBearerTokenFile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(opts({ remoteWrite: 'http://x/y' }).remoteWriteBacklogBytes).toBe(256 * 1024 * 1024);
    expect(code({ remoteWrite: 'http://x/y', remoteWriteBacklogBytes: '1000' })[0]).toBe('remoteWriteBacklogBytes');
  });
});
