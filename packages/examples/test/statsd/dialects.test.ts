/**
 * Real DogStatsD clients end to end: the npm `hot-shots` client (DogStatsD mode) sends
 * tagged metrics, packed values, events and service checks into a running
 * `shardgram serve statsd`, next to a raw datagram with the other dialects
 * (InfluxDB/Librato/SignalFX tags, unknown fields, `|T`, a mixed-style line, a bad
 * timestamp). The flushes hold every metric under its tags, every event and check
 * apart from the metrics with the fields its sender set, and /metrics counts events
 * by alert type, checks by status, ignored fields, bad lines by reason and lines of
 * each kind. With a tag style switched off, its tags stay in the name.
 */
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatsD } from 'hot-shots';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FlushResult } from '../../src/statsd/merge.js';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

const dir = mkdtempSync(join(tmpdir(), 'shardgram-dialects-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let serving: Serving | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
});

const promValue = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
};

describe('hot-shots (DogStatsD) and raw dialect lines → shardgram serve statsd', () => {
  it('metrics under their tags, events and service checks whole and apart, every kind counted', async () => {
    const out = join(dir, 'flushes.jsonl');
    serving = await startServe(['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '-o', `jsonOut=${out}`, '-o', 'flushInterval=200'], 2);
    const s = serving;
    const client = new StatsD({
      host: '127.0.0.1',
      port: s.port,
      protocol: 'udp',
      globalTags: { env: 'prod' },
      errorHandler: (e) => {
        throw e;
      },
    });
    const sent = (fn: (cb: (err?: Error) => void) => void): Promise<void> => new Promise((res, rej) => fn((err) => (err ? rej(err) : res())));
    await sent((cb) => client.increment('dd.requests', 3, { route: 'home' }, cb));
    await sent((cb) => client.histogram('dd.latency', 12.5, ['az:b'], cb));
    await sent((cb) => client.gauge('dd.level', 7, cb));
    await sent((cb) =>
      client.event(
        'deploy done',
        'version 42\nall green',
        { alert_type: 'success', hostname: 'web1', aggregation_key: 'deploy', priority: 'low', source_type_name: 'ci' },
        ['team:core'],
        cb,
      ),
    );
    await sent((cb) => client.event('disk nearly full', 'on /var', { alert_type: 'warning' }, cb));
    await sent((cb) => client.check('redis.up', client.CHECKS.CRITICAL, { hostname: 'db1', message: 'timeout' }, ['role:cache'], cb));
    await sent((cb) => client.check('web.up', client.CHECKS.OK, {}, undefined, cb));
    await new Promise<void>((r) => client.close(() => r()));
    const raw = dgram.createSocket('udp4');
    const lines = [
      'raw.packed:1:2:3|c',
      'raw.h:4:5|h|#k:v',
      'raw.future:1|c|f:feature|x:1',
      'raw.ts:9|g|T1700000000',
      'raw.influx,host=a,dc=x:1|c',
      'raw.librato#host=b:1|c',
      'raw.[host=c]sfx:1|c',
      'raw.mixed,a=b:1|c|#c:d',
      'raw.badts:1|g|TABCD',
      '_sc|raw.check|3|m:no idea',
    ];
    await new Promise<void>((r, j) => raw.send(lines.join('\n'), s.port, '127.0.0.1', (err) => (err ? j(err) : r())));
    raw.close();

    // /metrics: every event, check and bad line is counted (flushes every 200 ms).
    let text = '';
    const ready = await waitFor(
      async () => {
        text = await (await fetch(`${s.stats!}/metrics`)).text();
        return (
          promValue(text, 'shardgram_statsd_lines_total{kind="bad"}') === 2 &&
          promValue(text, 'shardgram_statsd_service_checks_total{status="unknown"}') === 1 &&
          promValue(text, 'shardgram_statsd_events_total{alert_type="success"}') === 1 &&
          promValue(text, 'shardgram_statsd_events_total{alert_type="warning"}') === 1
        );
      },
      10_000,
      50,
    );
    expect(ready, text).toBe(true);
    expect(promValue(text, 'shardgram_statsd_service_checks_total{status="critical"}')).toBe(1);
    expect(promValue(text, 'shardgram_statsd_service_checks_total{status="ok"}')).toBe(1);
    expect(promValue(text, 'shardgram_statsd_ignored_fields_total')).toBe(2);
    expect(promValue(text, 'shardgram_statsd_lines_total{kind="event"}')).toBe(2);
    expect(promValue(text, 'shardgram_statsd_lines_total{kind="service_check"}')).toBe(3);
    expect(promValue(text, 'shardgram_statsd_lines_total{kind="metric"}')).toBe(3 + 7);
    expect(promValue(text, 'shardgram_statsd_bad_lines_total{reason="mixed_tags"}')).toBe(1);
    expect(promValue(text, 'shardgram_statsd_bad_lines_total{reason="timestamp"}')).toBe(1);
    expect(promValue(text, 'shardgram_statsd_bad_lines_total{reason="syntax"}')).toBe(0);

    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const flushes = readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FlushResult);
    const counters: Record<string, number> = {};
    const timers: Record<string, number[]> = {};
    const gauges: Record<string, number> = {};
    for (const f of flushes) {
      for (const [k, v] of Object.entries(f.counters)) counters[k] = (counters[k] ?? 0) + v;
      for (const [k, t] of Object.entries(f.timers)) (timers[k] ??= []).push(t.min, t.max);
      Object.assign(gauges, f.gauges);
    }
    expect(counters).toEqual({
      'dd.requests;env=prod;route=home': 3,
      'raw.packed': 6,
      'raw.future': 1,
      'raw.influx;dc=x;host=a': 1,
      'raw.librato;host=b': 1,
      'raw.sfx;host=c': 1,
    });
    expect(timers['dd.latency;az=b;env=prod']).toEqual([12.5, 12.5]);
    expect(timers['raw.h;k=v']).toEqual([4, 5]);
    expect(gauges).toMatchObject({ 'dd.level;env=prod': 7, 'raw.ts': 9 });
    // Events and checks: in the JSON output, apart from the metrics, with every field sent.
    const events = flushes.flatMap((f) => f.events);
    const checks = flushes.flatMap((f) => f.service_checks);
    expect(events).toHaveLength(2);
    expect(events).toContainEqual({
      title: 'deploy done',
      text: 'version 42\nall green',
      timestamp: null,
      hostname: 'web1',
      aggregation_key: 'deploy',
      priority: 'low',
      source_type: 'ci',
      alert_type: 'success',
      tags: ['env:prod', 'team:core'],
    });
    expect(events).toContainEqual(expect.objectContaining({ title: 'disk nearly full', text: 'on /var', alert_type: 'warning', tags: ['env:prod'] }));
    expect(checks).toHaveLength(3);
    expect(checks).toContainEqual({
      name: 'redis.up',
      status: 'critical',
      timestamp: null,
      hostname: 'db1',
      message: 'timeout',
      tags: ['env:prod', 'role:cache'],
    });
    expect(checks).toContainEqual(expect.objectContaining({ name: 'web.up', status: 'ok', tags: ['env:prod'] }));
    expect(checks).toContainEqual(expect.objectContaining({ name: 'raw.check', status: 'unknown', message: 'no idea' }));
    for (const f of flushes) for (const k of Object.keys(f.counters)) expect(k.startsWith('_')).toBe(false);
    expect(flushes.reduce((n, f) => n + f.bad_lines_seen, 0)).toBe(2);
    expect(flushes.reduce((n, f) => n + f.bad_lines_by_reason.mixed_tags + 10 * f.bad_lines_by_reason.timestamp, 0)).toBe(11);
  }, 30_000);

  it('a tag style switched off (influxdbTags=off) leaves its tags in the name; the others still read theirs', async () => {
    const out = join(dir, 'flushes-off.jsonl');
    serving = await startServe(['statsd', '--port', '0', '--workers', '1', '-o', `jsonOut=${out}`, '-o', 'flushInterval=200', '-o', 'influxdbTags=off'], 1);
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((r, j) => raw.send('off.influx,host=a:1|c\noff.librato#host=b:2|c', serving!.port, '127.0.0.1', (err) => (err ? j(err) : r())));
    raw.close();
    const counters: Record<string, number> = {};
    const read = (): number => {
      for (const k of Object.keys(counters)) delete counters[k];
      const all = existsSync(out) ? readFileSync(out, 'utf8') : '';
      const text = all.slice(0, all.lastIndexOf('\n') + 1); // whole lines only: a flush may be half written
      for (const l of text.split('\n').filter(Boolean)) {
        for (const [k, v] of Object.entries((JSON.parse(l) as FlushResult).counters)) counters[k] = (counters[k] ?? 0) + v;
      }
      return Object.keys(counters).length;
    };
    // Flushes every 200 ms: wait for both lines' counters to be written.
    expect(await waitFor(() => read() >= 2, 10_000, 50), JSON.stringify(counters)).toBe(true);
    expect(counters).toEqual({ 'off.influxhost=a': 1, 'off.librato;host=b': 2 });
    const r = await serving.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
  }, 30_000);
});
