/**
 * The statsd Graphite output (outputs.ts, ../outputs/graphite.ts) against loopback TCP
 * servers this test runs, in process:
 *
 * - a Graphite that reads slowly but steadily (25 KB/s, well below what one attempt
 *   carries in 5 s): every line is delivered exactly once, nothing dropped, no attempt
 *   given up on (an attempt is limited on inactivity, not on its total time);
 * - a flush bigger than the backlog, to a Graphite that keeps up: delivered whole;
 * - an attempt with progress (the kernels holding less: an injected send queue) goes on
 *   past idleMs, one without fails after it; procSendQueue sees a loopback connection's
 *   unread data and its being read;
 * - a Graphite that never reads, at stop: the stop gives up after outputStopTimeout and
 *   resets the connection at once (no socket nor timer outlives it, and the lines
 *   counted as dropped at stop are not sent after it).
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { procSendQueue, sendGraphite } from '../../src/outputs/graphite.js';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import { counterFlush } from '../fixtures/counter-flush.js';
import { FlushOutputs } from '../../src/statsd/outputs.js';
import { waitFor } from '@shardgram/test-kit/wait';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Stand {
  port: number;
  lines: string[];
  /** Connections accepted, and how many of them are closed. */
  conns: Socket[];
  closed(): number;
}

/** A Graphite stand-in reading at most `bytesPerTick` every 50 ms from each connection (Infinity: all; 0: nothing), and closing its side once the client's is closed and all is read. */
async function graphite(bytesPerTick: number): Promise<Stand> {
  const lines: string[] = [];
  const conns: Socket[] = [];
  let closed = 0;
  const server: Server = createServer({ pauseOnConnect: true }, (sock) => {
    conns.push(sock);
    let partial = '';
    const take = (b: Buffer): void => {
      const parts = (partial + b.toString('utf8')).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
    };
    sock.on('close', () => void closed++);
    sock.on('error', () => undefined);
    sock.on('end', () => sock.end());
    if (bytesPerTick === Infinity) {
      sock.on('data', take);
      sock.resume();
      return;
    }
    const tick = setInterval(() => {
      const n = Math.min(bytesPerTick, sock.readableLength);
      if (n > 0) take(sock.read(n) as Buffer);
      else if (bytesPerTick > 0) sock.read(0); // let 'end' come once all is read
    }, 50);
    sock.on('close', () => clearInterval(tick));
    cleanups.push(() => clearInterval(tick));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  cleanups.push(() => {
    for (const c of conns) c.destroy();
  });
  return { port: (server.address() as AddressInfo).port, lines, conns, closed: () => closed };
}

function outputs(port: number, more: Record<string, string> = {}): { out: FlushOutputs; logs: string[] } {
  const logs: string[] = [];
  const out = new FlushOutputs(parseStatsdOptions({ graphite: `127.0.0.1:${port}`, flushInterval: '1000', ...more }), (l) => logs.push(l));
  cleanups.push(() => out.close(() => undefined, 100));
  return { out, logs };
}

describe('statsd Graphite output: slow, small backlog, stop', () => {
  it('a Graphite reading slowly but steadily (25 KB/s; one flush takes ~7 s to read): every line delivered exactly once, nothing dropped', async () => {
    const g = await graphite(1250);
    const { out, logs } = outputs(g.port);
    // 2000 counters: 4003 lines, ~180 KB.
    await out.list[0]!.write(counterFlush('slow.a', 2000));
    const accepted = out.counts('graphite')!.accepted;
    expect(accepted).toBe(4003);
    expect(await waitFor(() => out.counts('graphite')!.queued === 0, 20_000, 50)).toBe(true);
    expect(out.counts('graphite')).toMatchObject({ accepted, delivered: accepted, dropped: 0, failedAttempts: 0 });
    expect(logs).toEqual([]);
    expect(g.lines).toHaveLength(accepted);
    expect(new Set(g.lines).size).toBe(accepted);
  }, 30_000);

  it('a flush bigger than graphiteBacklog, to a Graphite that keeps up: delivered whole, in parts within the backlog', async () => {
    const g = await graphite(Infinity);
    const { out } = outputs(g.port, { graphiteBacklog: '1000' });
    await out.list[0]!.write(counterFlush('slow.b', 750)); // 1503 lines
    expect(await waitFor(() => out.counts('graphite')!.queued === 0, 10_000, 20)).toBe(true);
    expect(out.counts('graphite')).toMatchObject({ accepted: 1503, delivered: 1503, dropped: 0 });
    expect(new Set(g.lines).size).toBe(1503);
  });

  it('at stop, after outputStopTimeout, the attempt to a Graphite that never reads is abandoned and its connection closed at once', async () => {
    const g = await graphite(0);
    const { out } = outputs(g.port, { outputStopTimeout: '200' });
    await out.list[0]!.write(counterFlush('slow.c', 10_000)); // ~1 MB: more than the buffers take
    expect(await waitFor(() => g.conns.length === 1, 5000, 10)).toBe(true);
    const stops: string[] = [];
    const t0 = performance.now();
    await out.close((l) => stops.push(l));
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(stops.join('\n')).toMatch(/graphite 127\.0\.0\.1:\d+: 0 of 20003 lines delivered, 0 dropped \(backlog full\), 20003 dropped at stop/);
    // Reset now: once the stand-in reads again, it finds the reset after what its own
    // kernel had already received (at most its receive buffer), not the rest of the batch.
    for (const c of g.conns) c.on('data', (b: Buffer) => g.lines.push(...b.toString().split('\n'))).resume();
    expect(await waitFor(() => g.closed() === 1, 2000, 10)).toBe(true);
    expect(g.lines.length).toBeLessThan(10_000);
  });

  it('an attempt is limited on inactivity: progress (the kernels holding less) keeps it going; none ends it after idleMs', async () => {
    // A server that reads nothing and closes 1.5 s after the connection.
    const accepted: Socket[] = [];
    const server = createServer({ pauseOnConnect: true }, (c) => {
      accepted.push(c);
      setTimeout(() => c.end(), 1500).unref();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    cleanups.push(() => {
      for (const c of accepted) c.destroy();
    });
    const target = { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
    let held = 1_000_000;
    await expect(sendGraphite(target, 'a 1 1\n', { idleMs: 300, sendQueue: () => (held -= 10) })).resolves.toBeUndefined();
    const t0 = performance.now();
    await expect(sendGraphite(target, 'a 1 1\n', { idleMs: 300, sendQueue: () => 5 })).rejects.toThrow(/no progress for 300 ms/);
    expect(performance.now() - t0).toBeLessThan(1400);
  });

  it("procSendQueue: what the kernels hold of a loopback connection's data, less as the server reads", async () => {
    let server!: Socket;
    const srv = createServer({ pauseOnConnect: true }, (c) => void (server = c));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
    const sock = connect((srv.address() as AddressInfo).port, '127.0.0.1');
    cleanups.push(() => void sock.destroy());
    await once(sock, 'connect');
    expect(await waitFor(() => server !== undefined, 5000, 5)).toBe(true);
    sock.write(Buffer.alloc(100_000, 'a'));
    expect(await waitFor(() => procSendQueue(sock) === 100_000, 5000, 10)).toBe(true);
    server.resume();
    expect(await waitFor(() => procSendQueue(sock) === 0, 5000, 10)).toBe(true);
    server.destroy();
  });
});
