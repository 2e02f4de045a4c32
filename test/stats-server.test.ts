/**
 * The stats port under hostile or careless clients: odd request lines, writes,
 * connection floods, slow requests, and clients that hold a stop.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStatsServer, type StatsReport, type StatsServer } from '@shardgram/udp-core';
import { STATS_SERVER_DEFAULTS } from '@shardgram/udp-core/stats';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { holdConnection, rawRequest, type HeldConnection } from '@shardgram/test-kit/http';
import { waitFor } from '@shardgram/test-kit/wait';

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
    for (const [method, path] of [
      ['POST', '/workers?count=1'],
      ['POST', '/stats'],
      ['PUT', '/metrics'],
      ['DELETE', '/stats'],
      ['PATCH', '/workers'],
    ]) {
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

  it(`holds at most ${STATS_SERVER_DEFAULTS.maxConnectionsPerAddress} connections per client address and ${STATS_SERVER_DEFAULTS.maxConnections} in all; a new one takes the place of the oldest silent one`, async () => {
    http = await startStatsServer(fakeSource(), 0);
    const { maxConnections, maxConnectionsPerAddress } = STATS_SERVER_DEFAULTS;
    // One address: the newest ones stay, the oldest are let go as the newer arrive.
    const one: HeldConnection[] = [];
    for (let i = 0; i < maxConnectionsPerAddress + 24; i++) one.push(await holdConnection(http.port, '', '127.0.0.1', '127.0.0.5'));
    held.push(...one);
    expect(await waitFor(() => one.filter((h) => h.isClosed()).length === 24, 3_000)).toBe(true);
    expect(one.slice(24).every((h) => !h.isClosed())).toBe(true);
    // Eight addresses of sixteen: 128 asked, 64 held, the newest.
    const many: HeldConnection[] = [];
    for (let a = 0; a < 8; a++)
      for (let i = 0; i < maxConnectionsPerAddress; i++) many.push(await holdConnection(http.port, '', '127.0.0.1', `127.0.1.${a + 1}`));
    held.push(...many);
    expect(await waitFor(() => [...one, ...many].filter((h) => !h.isClosed()).length === maxConnections, 3_000)).toBe(true);
    expect(many.slice(-maxConnections).every((h) => !h.isClosed())).toBe(true);
    // And an ordinary request is answered at once, while they all hold on.
    expect((await rawRequest(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', { timeoutMs: 2_000 })).status).toBe(200);
    for (const h of held) h.socket.destroy();
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

/** The soft limit on open files of this process (/proc/self/limits): the test opens no more than it allows. */
function openFileLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? 1_048_576 : Number(m[1]);
}

/** Opens `count` connections from `from` (each sending `data`), `batch` at a time; resolves once each has connected or been closed. */
async function openMany(port: number, count: number, from: (i: number) => string, data: string, batch = 250): Promise<net.Socket[]> {
  const all: net.Socket[] = [];
  for (let i = 0; i < count; i += batch) {
    const some = Array.from({ length: Math.min(batch, count - i) }, (_, j) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: from(i + j) });
      s.on('error', () => {});
      all.push(s);
      return new Promise<void>((r) => {
        s.once('connect', () => {
          if (data) s.write(data);
          r();
        });
        s.once('close', () => r());
      });
    });
    await Promise.all(some);
  }
  return all;
}

describe('the stats port under a slowloris and an idle flood', () => {
  it('answers every ordinary GET /stats while thousands of connections sit idle and 200 trickle their headers', async () => {
    const http = await startStatsServer(fakeSource(), 0);
    // The client side of every connection lives in this process (the server keeps a few
    // dozen): stay well below its limit, raising nothing.
    const limit = openFileLimit();
    const idle = Math.min(10_000, limit - 2_000);
    if (idle < 10_000) console.log(`open-file limit ${limit}: the idle flood is ${idle} connections, not 10,000`);
    const sockets: net.Socket[] = [];
    let trickle: NodeJS.Timeout | undefined;
    try {
      // The idle flood: connections that send nothing, from 40 addresses and the ordinary client's.
      const t0 = Date.now();
      sockets.push(...(await openMany(http.port, idle, (i) => (i % 41 === 0 ? '127.0.0.1' : `127.0.3.${1 + (i % 40)}`), '')));
      const floodMs = Date.now() - t0;
      // The slowloris: a request line and a header, then one more header line every 100 ms,
      // never the blank line; a quarter from the address the ordinary client uses.
      const slow = await openMany(http.port, 200, (i) => (i % 4 === 0 ? '127.0.0.1' : `127.0.2.${1 + (i % 50)}`), 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      sockets.push(...slow);
      let n = 0;
      trickle = setInterval(() => {
        n++;
        for (const s of slow) if (!s.destroyed) s.write(`X-Slow-${n}: ${'.'.repeat(10)}\r\n`);
      }, 100);
      // Ordinary GETs, one after another, each on a new connection, each within 2 s.
      const answered: number[] = [];
      const t1 = Date.now();
      for (let i = 0; i < 60; i++) {
        const a = await rawRequest(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', { timeoutMs: 2_000 });
        if (a.status === 200 && a.text.includes('"fake": true')) answered.push(a.ms);
      }
      const getsMs = Date.now() - t1;
      console.log(
        `idle flood of ${idle} opened in ${floodMs} ms; ${answered.length} of 60 GET /stats answered in ${getsMs} ms (slowest ${Math.max(0, ...answered)} ms)`,
      );
      expect(answered).toHaveLength(60);
      expect(getsMs).toBeLessThan(30_000);
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
      await http.close();
    }
  }, 120_000);
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
      const r = await Promise.race([serving.stop('SIGTERM'), new Promise<undefined>((res) => setTimeout(() => res(undefined), 5_000).unref())]);
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
      for (const h of [
        '127.0.0.1',
        `127.0.0.1:${http.port}`,
        'localhost',
        `localhost:${http.port}`,
        '[::1]',
        'metrics.example',
        `METRICS.example:${http.port}`,
      ]) {
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

  it('refuses a request with two Host headers with 400, whichever comes first', async () => {
    const http = await startStatsServer(fakeSource(), 0);
    try {
      for (const [a, b] of [
        ['127.0.0.1', 'evil.example'],
        ['evil.example', '127.0.0.1'],
        ['127.0.0.1', `127.0.0.1:${http.port}`],
      ]) {
        const r = await rawRequest(http.port, `GET /stats HTTP/1.1\r\nHost: ${a}\r\nHost: ${b}\r\n\r\n`);
        expect(r.status, `Host: ${a} and Host: ${b}`).toBe(400);
        expect(r.text).toContain('more than one Host header');
      }
      expect((await rawRequest(http.port, 'GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).status).toBe(200);
    } finally {
      await http.close();
    }
  });

  it('warns when bound beyond loopback: which address, what it exposes, how to keep it local', async () => {
    for (const address of ['127.0.0.1', '127.0.0.2', '::1']) {
      const local = await startStatsServer(fakeSource(), 0, { address });
      await local.close();
      expect(local.warning, address).toBeUndefined();
    }
    const wide = await startStatsServer(fakeSource(), 0, { address: '::' });
    await wide.close();
    expect(wide.warning).toMatch(
      new RegExp(`^--stats-address ::: the stats port \\(http://\\[::\\]:${wide.port}: .*\\) is open on every interface of this host`),
    );
    expect(wide.warning).toContain('use --stats-address 127.0.0.1 (the default) or ::1');

    const quiet = await startServe(['discard', '--port', '0', '--workers', '1', '--stats-port', '0'], 1);
    const loud = await startServe(['discard', '--port', '0', '--workers', '1', '--stats-port', '0', '--stats-address', '0.0.0.0'], 1);
    try {
      const port = portOf(statsUrlOf(loud));
      expect(await waitFor(() => loud.stderr().includes('shardgram: warning: --stats-address'), 5_000), loud.stderr()).toBe(true);
      expect(loud.stderr()).toContain(
        `shardgram: warning: --stats-address 0.0.0.0: the stats port (http://0.0.0.0:${port}: GET /stats, /metrics and the live page) is open on every interface of this host (0.0.0.0)`,
      );
      expect(loud.stderr()).toContain('To keep it local, use --stats-address 127.0.0.1');
      // Only loopback traffic here: the wildcard bind answers on 127.0.0.1.
      expect((await fetch(`http://127.0.0.1:${port}/stats`)).status).toBe(200);
    } finally {
      await loud.stop();
      await quiet.stop();
    }
    expect(quiet.stderr()).not.toContain('warning: --stats-address');
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
    await expect(startStatsServer(fakeSource(), 0, { address: 'localhost' })).rejects.toMatchObject({
      code: 'ERR_SHARDGRAM_INVALID_ARG',
      option: 'stats-address',
    });
  });
});
