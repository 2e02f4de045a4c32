/**
 * Fuzz: random HTTP request lines and headers (raw, over TCP) at the stats port and
 * random datagrams at the UDP port of a running `serve echo`. After every case the
 * service still answers /stats, and its counters count exactly the datagrams sent.
 */
import type dgram from 'node:dgram';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsReport } from '@shardgram/udp-core';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { rawRequest } from '@shardgram/test-kit/http';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const RUNS = 80;

const pick = <T>(xs: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);
/** Characters that broke or might break request-target parsing. */
const urlChar = fc.oneof(
  { weight: 6, arbitrary: pick(['/', '/', '@', '%', '?', '#', ':', '[', ']', 'a', '.', '\\', '*', 's', '~', '=', '&', ';', '%2F', '%00', '..']) },
  { weight: 1, arbitrary: pick([' ', '\t', 'é', '\u0000', '\r', '\n']) },
);
const token = fc.string({ unit: pick(['a', 'Z', '-', '_', ':', ' ', '\u0000', '\r', 'é', '(', '0']), maxLength: 12 });

/** Mostly well-formed headers, so that most requests reach the handler. */
const header = fc.tuple(
  pick([
    'Accept',
    'Accept',
    'Connection',
    'Content-Length',
    'Transfer-Encoding',
    'Origin',
    'X-Forwarded-For',
    'Expect',
    'Upgrade',
    'Range',
    'Cookie',
    'User-Agent',
  ]),
  fc.oneof(
    pick(['close', 'keep-alive', '0', 'chunked', '100-continue', 'http://127.0.0.1', '-1', '99999999999', 'bytes=0-1']),
    fc.string({ unit: 'grapheme-ascii', maxLength: 20 }),
  ),
);
const structured = fc
  .record({
    method: fc.oneof(
      { weight: 4, arbitrary: pick(['GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PRI']) },
      { weight: 1, arbitrary: token },
    ),
    target: fc.oneof(
      { weight: 2, arbitrary: pick(['/stats', '/metrics', '//', '///', '//a b', '//@', '*', 'http://127.0.0.1/stats', '/workers?count=256', '/stats?x=//']) },
      { weight: 6, arbitrary: fc.string({ unit: urlChar, maxLength: 30 }).map((t) => `/${t}`) },
      { weight: 1, arbitrary: fc.string({ unit: urlChar, maxLength: 30 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    ),
    version: fc.oneof({ weight: 4, arbitrary: pick(['HTTP/1.1', 'HTTP/1.0']) }, { weight: 1, arbitrary: pick(['HTTP/2.0', 'HTTP/9.9', 'http/1.1', '']) }),
    host: fc.option(pick(['127.0.0.1', '127.0.0.1', 'localhost', '[::1]', 'evil.example', '', '[::1', '127.0.0.1:0', '\u0000']), { nil: undefined, freq: 8 }),
    headers: fc.array(fc.oneof({ weight: 8, arbitrary: header }, { weight: 1, arbitrary: fc.tuple(token, fc.string({ unit: 'binary', maxLength: 30 })) }), {
      maxLength: 4,
    }),
    terminated: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  })
  .map(({ method, target, version, host, headers, terminated }) => {
    const lines = [`${method} ${target} ${version}`.trimEnd()];
    if (host !== undefined) lines.push(`Host: ${host}`);
    for (const [k, v] of headers) lines.push(`${k}: ${v}`);
    return Buffer.from(lines.join('\r\n') + (terminated ? '\r\n\r\n' : '\r\n'), 'utf8');
  });
/** Requests the parser lets through, with odd targets and headers: these reach our handler. */
const wellFormed = fc
  .record({
    method: pick(['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS']),
    target: fc.oneof(
      { weight: 1, arbitrary: pick(['/stats', '/metrics', '//', '///', '//@', '//?x', '/workers?count=256', '/stats?x=//']) },
      {
        weight: 3,
        arbitrary: fc
          .string({ unit: pick(['/', '@', '%', '?', '#', ':', '[', ']', 'a', '.', '\\', '*', 's', '~', '=', '&', ';', '%2F', '%00', '..']), maxLength: 30 })
          .map((t) => `/${t}`),
      },
    ),
    host: pick(['127.0.0.1', '127.0.0.1', 'localhost', '[::1]', 'evil.example', '127.0.0.1:1', '[::1', 'a:b:c']),
    headers: fc.array(header, { maxLength: 4 }),
  })
  .map(({ method, target, host, headers }) =>
    Buffer.from(`${[`${method} ${target} HTTP/1.1`, `Host: ${host}`, ...headers.map(([k, v]) => `${k}: ${v}`)].join('\r\n')}\r\n\r\n`),
  );
const request = fc.oneof(
  { weight: 4, arbitrary: wellFormed },
  { weight: 2, arbitrary: structured },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1024 }).map((a) => Buffer.from(a)) },
);
const datagrams = fc.array(fc.uint8Array({ minLength: 0, maxLength: 1400 }), { maxLength: 6 });

describe('fuzz: random HTTP at the stats port, random bytes at the UDP port', () => {
  let serving: Serving;
  let statsUrl: string;
  let clients: dgram.Socket[];
  beforeAll(async () => {
    serving = await startServe(['echo', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    statsUrl = serving.stats!;
    clients = await openClients(8);
    for (const c of clients) c.on('message', () => {}); // echo replies: read and dropped
  });
  afterAll(async () => {
    closeAll(clients ?? []);
    await serving?.stop('SIGTERM');
  });

  it(`survives ${RUNS} cases and counts every datagram`, async () => {
    const statsPort = Number(/:(\d+)$/.exec(statsUrl)![1]);
    const total = async (): Promise<StatsReport['total'] | undefined> => {
      const res = await fetch(`${statsUrl}/stats`).catch(() => undefined);
      return res?.status === 200 ? ((await res.json()) as StatsReport).total : undefined;
    };
    let sent = 0;
    /** Cases whose request reached the request handler (not refused by the HTTP parser). */
    let handled = 0;
    await fc.assert(
      fc.asyncProperty(request, datagrams, fc.nat(), async (req, dgrams, who) => {
        for (let i = 0; i < dgrams.length; i++) await send(clients[(who + i) % clients.length]!, dgrams[i]!, serving.port);
        sent += dgrams.length;
        // Every request is answered or closed by the server: none hangs past the headers timeout.
        const a = await rawRequest(statsPort, req, { timeoutMs: 8_000 });
        expect(a.closed).toBe(true);
        if (a.status !== undefined) expect(a.status).toBeLessThan(500);
        if (a.status !== undefined && a.status !== 400) handled++;
        expect(serving.child.exitCode).toBeNull();
        let last: StatsReport['total'] | undefined;
        const counted = await waitFor(async () => {
          last = await total();
          return last !== undefined && last.datagrams + last.kernelDrops >= sent;
        }, 5_000);
        expect(counted, `stats answer and count ${sent}: ${JSON.stringify(last)}`).toBe(true);
        expect(last!.datagrams).toBe(sent);
        expect(last!.kernelDrops).toBe(0);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    expect(sent).toBeGreaterThan(0);
    // The fuzz has teeth only if many requests get past the parser to our code.
    expect(handled).toBeGreaterThan(RUNS / 4);
  }, 120_000);
});
