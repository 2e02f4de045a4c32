/**
 * Raw names and tag values in Prometheus, Etsy keys in Graphite and JSON, end to end
 * through `shardgram serve statsd`: the Prometheus side (/metrics, text and protobuf,
 * with a statsd_exporter mapping file) shows tag values as sent and metric names
 * escaped by statsd_exporter's EscapeMetricName, the mapping's globs match the raw
 * name; the JSON lines and the Graphite plaintext (a real TCP listener) keep Etsy
 * statsd's sanitized keys for the same lines.
 */
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { decodeFamilies, familiesToSeries, PromWriter, PROTOBUF_CONTENT_TYPE } from '@shardgram/udp-core/prom';
import { etsyFlush } from '../../src/statsd/etsy-view.js';
import { formatGraphite, formatJson } from '../../src/statsd/flush.js';
import { etsyKey, metricKey } from '../../src/statsd/keys.js';
import { Mapper } from '../../src/statsd/mapper.js';
import { record, type FlushResult } from '../../src/statsd/merge.js';
import { parseMappingConfig } from '../../src/statsd/mapping.js';
import { parseLine } from '../../src/statsd/parser.js';
import { ExporterRegistry } from '../../src/statsd/prom-registry.js';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

const dir = mkdtempSync(join(tmpdir(), 'shardgram-raw-labels-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let serving: Serving | undefined;
let graphite: Server | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  await new Promise<void>((r) => (graphite ? graphite.close(() => r()) : r()));
  graphite = undefined;
});

const LINES = ['tg.x:1|c|#route:/api/v1/users,msg:hello world,city:Zürich,url:http://h:80/p', 'tg.y,route=/a/b:1|c', 'nm.req(x)!:1|c', 'api.v1/users.get:1|c'];

async function sendLines(port: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  try {
    await new Promise<void>((r, j) => sock.send(Buffer.from(LINES.join('\n'), 'utf8'), port, '127.0.0.1', (err) => (err ? j(err) : r())));
  } finally {
    sock.close();
  }
}

describe('statsd keys: raw in Prometheus, Etsy in Graphite and JSON', () => {
  it('remote write series carry the raw tag values and statsd_exporter names; the Etsy key of each line is the old one', () => {
    const mapper = new Mapper(parseMappingConfig('mappings:\n- match: "api.*.get"\n  name: "api_get_total"\n  labels:\n    path: "$1"\n', 'm.yml'));
    const reg = new ExporterRegistry({ mapper, maxSeries: 100, schema: 5, maxBuckets: 160, now: () => 1_000 });
    const keys: string[] = [];
    for (const line of LINES) {
      const p = parseLine(line);
      if (!p.ok || p.type !== 'c') throw new Error(`not a counter: ${line}`);
      keys.push(p.key);
      reg.counter(p.key, p.value);
    }
    expect(keys.map(etsyKey)).toEqual([
      'tg.x;city=Zrich;msg=hello_world;route=-api-v1-users;url=http--h80-p',
      'tg.y;route=-a-b',
      'nm.reqx',
      'api.v1-users.get',
    ]);
    const w = new PromWriter();
    reg.write(w);
    const series = familiesToSeries(w.families());
    const byName = new Map(series.map((x) => [x.labels.find((l) => l.name === '__name__')!.value, Object.fromEntries(x.labels.map((l) => [l.name, l.value]))]));
    expect(byName.get('tg_x')).toEqual({ __name__: 'tg_x', city: 'Zürich', msg: 'hello world', route: '/api/v1/users', url: 'http://h:80/p' });
    expect(byName.get('tg_y')).toEqual({ __name__: 'tg_y', route: '/a/b' });
    expect(byName.get('nm_req_x__')).toEqual({ __name__: 'nm_req_x__' });
    expect(byName.get('api_get_total')).toEqual({ __name__: 'api_get_total', path: 'v1/users' });
  });

  it('/metrics (text and protobuf) shows raw tag values and statsd_exporter names; the mapping matches the raw name', async () => {
    const mapping = join(dir, 'mapping.yml');
    writeFileSync(mapping, ['mappings:', '- match: "api.*.get"', '  name: "api_get_total"', '  labels:', '    path: "$1"', ''].join('\n'));
    serving = await startServe(['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '--flush-interval', '100', '--mapping-config', mapping], 2);
    const s = serving;
    await sendLines(s.port);
    const metrics = async (): Promise<string> => (await fetch(`${s.stats!}/metrics`)).text();
    expect(await waitFor(async () => /^api_get_total\{/m.test(await metrics()), 10_000, 50)).toBe(true);
    const text = await metrics();
    expect.soft(text).toMatch(/^tg_x\{city="Zürich",msg="hello world",route="\/api\/v1\/users",url="http:\/\/h:80\/p"\} 1$/m);
    expect.soft(text).toMatch(/^tg_y\{route="\/a\/b"\} 1$/m);
    expect.soft(text).toMatch(/^nm_req_x__ 1$/m);
    expect.soft(text).toMatch(/^api_get_total\{path="v1\/users"\} 1$/m);

    const res = await fetch(`${s.stats!}/metrics`, { headers: { accept: PROTOBUF_CONTENT_TYPE } });
    const families = decodeFamilies(new Uint8Array(await res.arrayBuffer())) as { name: string; metric: { label?: { name: string; value: string }[] }[] }[];
    const labels = (name: string): Record<string, string> => {
      const f = families.find((x) => x.name === name);
      expect(f, name).toBeDefined();
      return Object.fromEntries((f!.metric[0]!.label ?? []).map((l) => [l.name, l.value]));
    };
    expect(labels('tg_x')).toEqual({ city: 'Zürich', msg: 'hello world', route: '/api/v1/users', url: 'http://h:80/p' });
    expect(labels('tg_y')).toEqual({ route: '/a/b' });
    expect(labels('nm_req_x__')).toEqual({});
    expect(labels('api_get_total')).toEqual({ path: 'v1/users' });
  });

  it('the JSON lines and Graphite keep the Etsy-sanitized keys for the same lines', async () => {
    const lines: string[] = [];
    graphite = createServer((c) => {
      let buf = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop()!;
        lines.push(...parts);
      });
    });
    await new Promise<void>((r) => graphite!.listen(0, '127.0.0.1', r));
    const gport = (graphite.address() as AddressInfo).port;
    const out = join(dir, 'flushes.jsonl');
    serving = await startServe(
      ['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '-o', `jsonOut=${out}`, '-o', `graphite=127.0.0.1:${gport}`, '-o', 'flushInterval=100'],
      2,
    );
    await sendLines(serving.port);
    const want = ['api.v1-users.get', 'nm.reqx', 'tg.x;city=Zrich;msg=hello_world;route=-api-v1-users;url=http--h80-p', 'tg.y;route=-a-b'];
    const counted = (): Set<string> => {
      const keys = new Set<string>();
      if (!existsSync(out)) return keys;
      for (const l of readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
        for (const k of Object.keys((JSON.parse(l) as { counters: Record<string, number> }).counters)) keys.add(k);
      }
      return keys;
    };
    expect(await waitFor(() => counted().size >= want.length, 10_000, 50)).toBe(true);
    expect([...counted()].sort()).toEqual(want);
    const paths = (): string[] => [...new Set(lines.filter((l) => / 1 \d+$/.test(l) && l.startsWith('stats.counters.')).map((l) => l.split(' ')[0]!))].sort();
    expect(await waitFor(() => paths().length >= want.length, 10_000, 50)).toBe(true);
    expect(paths()).toEqual([
      'stats.counters.api.v1-users.get.count',
      'stats.counters.nm.reqx.count',
      'stats.counters.tg.x.count;city=Zrich;msg=hello_world;route=-api-v1-users;url=http--h80-p',
      'stats.counters.tg.y.count;route=-a-b',
    ]);
  });

  it('two raw keys sharing one Etsy key: counters added in JSON and Graphite, other kinds written once and counted in key_collisions', () => {
    const a = metricKey('c', 'route:/a');
    const b = metricKey('c', 'route:-a');
    expect(a).not.toBe(b);
    const counters = record<number>();
    counters[a] = 2;
    counters[b] = 3;
    const gauges = record<number>();
    gauges[metricKey('g', 'k:x y')] = 1;
    gauges[metricKey('g', 'k:x_y')] = 2;
    const r = {
      timestamp: 100,
      counters,
      gauges,
      sets: record<number>(),
      timers: record(),
      bad_lines_seen: 0,
      metrics_received: 0,
      packets_received: 0,
    } as unknown as FlushResult;
    const e = etsyFlush(r);
    expect({ ...e.counters }).toEqual({ 'c;route=-a': 5 });
    expect({ ...e.gauges }).toEqual({ 'g;k=x_y': 1 });
    expect(e.key_collisions).toBe(1);
    expect(JSON.parse(formatJson(r))).toMatchObject({ counters: { 'c;route=-a': 5 }, gauges: { 'g;k=x_y': 1 }, key_collisions: 1 });
    const g = formatGraphite(r, 'stats', 1000).split('\n');
    expect(g).toContain('stats.counters.c.count;route=-a 5 100');
    expect(g).toContain('stats.gauges.g;k=x_y 1 100');
    expect(g).toContain('stats.statsd.key_collisions 1 100');
    // Without a collision there is no such field or line; clean keys leave the flush as it is.
    const clean = { ...r, counters: { x: 1 }, gauges: {} } as unknown as FlushResult;
    expect(etsyFlush(clean)).toBe(clean);
    expect(formatGraphite(clean, 'stats', 1000)).not.toContain('key_collisions');
  });
});
