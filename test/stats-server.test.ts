/**
 * The stats port under hostile or careless clients: odd request lines, writes,
 * connection floods, slow requests, and clients that hold a stop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATS_SERVER_DEFAULTS, startStatsServer, type StatsReport, type StatsServer } from '@shardgram/udp-core';
import { startServe, type Serving } from './helpers/cli.js';
import { holdConnection, rawRequest, type HeldConnection } from './helpers/http.js';
import { waitFor } from './helpers/udp.js';

function statsUrlOf(s: Serving): string {
  if (!s.stats) throw new Error(`serve has no stats URL:\n${s.output()}`);
  return s.stats;
}

const portOf = (url: string): number => Number(/:(\d+)$/.exec(url)![1]);

/** A stats server over a fixed report, for tests of the HTTP side alone. */
function fakeSource(): { stats(): StatsReport } {
  return { stats: () => ({ fake: true }) as unknown as StatsReport };
}

describe('the stats port survives any request line', () => {
  let serving: Serving;
  let url: string;
  beforeAll(async () => {
    serving = await startServe(['echo', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    url = statsUrlOf(serving);
  });
  afterAll(async () => {
    await serving?.stop('SIGTERM');
  });

  it.each(['//', '///', '//a b', '//@', '//?x', '/%', 'http://[::1', '*', '//stats'])('GET %s gets an answer and the service lives on', async (target) => {
    const a = await rawRequest(portOf(url), `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(a.closed).toBe(true);
    expect(a.status).toBeGreaterThanOrEqual(400);
    expect(a.status).toBeLessThan(500);
    expect(serving.child.exitCode).toBeNull();
    const res = await fetch(`${url}/stats`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as StatsReport).workers).toHaveLength(2);
  });

  it('is read-only: POST /workers (the old resize) and every other write get 405, and nothing changes', async () => {
    for (const [method, path] of [['POST', '/workers?count=1'], ['POST', '/stats'], ['PUT', '/metrics'], ['DELETE', '/stats'], ['PATCH', '/workers']]) {
      const res = await fetch(`${url}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    const head = await fetch(`${url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const s = (await (await fetch(`${url}/stats`)).json()) as StatsReport;
    expect(s.workers).toHaveLength(2);
    expect(serving.output()).not.toMatch(/resized/);
  });
});

describe('the stats port bounds what clients can hold', () => {
  let http: StatsServer | undefined;
  const held: HeldConnection[] = [];
  afterAll(async () => {
    for (const h of held) h.socket.destroy();
    await http?.close();
  });

  it(`holds at most ${STATS_SERVER_DEFAULTS.maxConnections} connections; the rest are closed as they arrive, and it answers once they leave`, async () => {
    http = await startStatsServer(fakeSource(), 0);
    const n = STATS_SERVER_DEFAULTS.maxConnections + 36;
    for (let i = 0; i < n; i++) held.push(await holdConnection(http.port, ''));
    // The surplus is closed at once, long before any timeout would close the others.
    expect(await waitFor(() => held.filter((h) => h.isClosed()).length >= n - STATS_SERVER_DEFAULTS.maxConnections, 3_000)).toBe(true);
    expect(held.filter((h) => !h.isClosed()).length).toBe(STATS_SERVER_DEFAULTS.maxConnections);
    for (const h of held) h.socket.destroy();
    expect(await waitFor(async () => (await fetch(`${http!.url}/stats`).then((r) => r.status, () => 0)) === 200, 3_000)).toBe(true);
  });

  it('cuts off a request whose headers never finish, with 408, within the headers timeout', async () => {
    http ??= await startStatsServer(fakeSource(), 0);
    const t0 = Date.now();
    const slow = await holdConnection(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    held.push(slow);
    const limit = STATS_SERVER_DEFAULTS.headersTimeoutMs + 2_000;
    expect(await waitFor(() => slow.isClosed(), limit)).toBe(true);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - t0).toBeLessThan(limit);
  });
});

describe('close() and SIGTERM are not held by HTTP clients', () => {
  it('close() returns within the bound while clients hold a half-sent request, an idle keep-alive and a silent connection', async () => {
    const http = await startStatsServer(fakeSource(), 0);
    const clients = [
      await holdConnection(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n'),
      await holdConnection(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
      await holdConnection(http.port, ''),
      await holdConnection(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n12345'),
    ];
    try {
      // The keep-alive one has its answer and stays open.
      expect(await waitFor(() => /^HTTP\/1\.1 200 /.test(clients[1]!.received()), 3_000)).toBe(true);
      const t0 = Date.now();
      await http.close();
      expect(Date.now() - t0).toBeLessThan(STATS_SERVER_DEFAULTS.closeTimeoutMs + 200);
      expect(await waitFor(() => clients.every((c) => c.isClosed()), 1_000)).toBe(true);
      expect(http.server.listening).toBe(false);
    } finally {
      for (const c of clients) c.socket.destroy();
    }
  });

  it('SIGTERM stops serve promptly while a client holds a half-sent request on the stats port', async () => {
    const serving = await startServe(['discard', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    const url = statsUrlOf(serving);
    const client = await holdConnection(portOf(url), 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    try {
      const t0 = Date.now();
      const r = await Promise.race([serving.stop('SIGTERM'), new Promise<undefined>((res) => setTimeout(res, 5_000).unref())]);
      expect(r, 'serve still running 5 s after SIGTERM').toBeDefined();
      expect(r!.code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(await waitFor(() => client.isClosed(), 1_000)).toBe(true);
    } finally {
      client.socket.destroy();
      serving.child.kill('SIGKILL');
    }
  });
});

describe('who the stats port answers', () => {
  it('accepts its own address, loopback names on a loopback bind, and --stats-host names; refuses other names and any Origin', async () => {
    const http = await startStatsServer(fakeSource(), 0, { address: '127.0.0.1', hosts: ['Metrics.Example'] });
    const ask = (host: string, extra = ''): Promise<number | undefined> =>
      rawRequest(http.port, `GET /stats HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`).then((a) => a.status);
    try {
      for (const h of ['127.0.0.1', `127.0.0.1:${http.port}`, 'localhost', `localhost:${http.port}`, '[::1]', 'metrics.example', `METRICS.example:${http.port}`]) {
        expect(await ask(h), h).toBe(200);
      }
      for (const h of ['evil.example', `evil.example:${http.port}`, '127.0.0.1.evil.example', '', '[::1', '10.0.0.1']) {
        expect(await ask(h), h).toBe(403);
      }
      expect(await ask('127.0.0.1', 'Origin: http://127.0.0.1\r\n')).toBe(403);
    } finally {
      await http.close();
    }
  });

  it('binds an IPv6 literal and accepts it as Host', async () => {
    const http = await startStatsServer(fakeSource(), 0, { address: '::1' });
    try {
      expect(http.url).toBe(`http://[::1]:${http.port}`);
      expect((await fetch(`${http.url}/stats`)).status).toBe(200);
      expect((await rawRequest(http.port, 'GET /stats HTTP/1.1\r\nHost: [0:0::1]\r\n\r\n', { host: '::1' })).status).toBe(200);
    } finally {
      await http.close();
    }
  });

  it('refuses an address that is not an IP literal, naming the flag', async () => {
    await expect(startStatsServer(fakeSource(), 0, { address: 'localhost' })).rejects.toMatchObject({ code: 'ERR_SHARDGRAM_INVALID_ARG', option: 'stats-address' });
  });
});
