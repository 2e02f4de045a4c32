/**
 * The Graphite output's replay window (../../src/outputs/graphite-replay.ts) through the
 * statsd outputs (../../src/statsd/outputs.ts), against a loopback Graphite stand-in
 * this test runs, which goes down (stops listening: connection refused) after a
 * delivered flush and comes back on the same port, as a restarted carbon-cache does:
 *
 * - with a replay window, the lines delivered just before the failure arrive again
 *   after the recovery, before the flush that waited, and are counted as replayed (in
 *   /metrics and in the stop line);
 * - with graphiteReplay=0, they are not sent again;
 * - the window itself: only what was delivered within windowMs before the first
 *   failure of an outage, at most maxLines lines.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PromWriter } from '@shardgram/udp-core/prom';
import { waitFor } from '@shardgram/test-kit/wait';
import { ReplayWindow } from '../../src/outputs/graphite-replay.js';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import { counterFlush } from '../fixtures/counter-flush.js';
import { FlushOutputs } from '../../src/statsd/outputs.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A Graphite stand-in on a fixed port that can be stopped (refusing connections) and started again; `conns` holds each connection's lines. */
class Stand {
  port = 0;
  readonly conns: string[][] = [];
  private server: Server | undefined;
  private readonly socks: Socket[] = [];

  async start(): Promise<void> {
    const server = createServer((sock) => {
      this.socks.push(sock);
      const lines: string[] = [];
      this.conns.push(lines);
      let partial = '';
      sock.on('data', (b: Buffer) => {
        const parts = (partial + b.toString('utf8')).split('\n');
        partial = parts.pop()!;
        lines.push(...parts);
      });
      sock.on('error', () => undefined);
      sock.on('end', () => sock.end());
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.socks.splice(0)) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

/** A flush delivered, Graphite down for the next one (refused, retried), then up again: what each connection after the recovery carried. */
async function outage(more: Record<string, string>): Promise<{ out: FlushOutputs; after: string[]; stopLine: string }> {
  const g = new Stand();
  await g.start();
  cleanups.push(() => g.stop());
  const out = new FlushOutputs(parseStatsdOptions({ graphite: `127.0.0.1:${g.port}`, flushInterval: '1000', outputRetryMax: '200', ...more }), () => undefined);
  cleanups.push(() => out.close(() => undefined, 100));
  const write = out.list[0]!.write;

  await write(counterFlush('replay.a', 5, 1_700_000_000)); // 13 lines
  expect(await waitFor(() => out.counts('graphite')!.delivered === 13, 5000, 5)).toBe(true);
  expect(g.conns.flat().filter((l) => l.includes('.a.'))).toHaveLength(10);

  // Down, as a stopping server that had read flush a (and lost it) would be.
  await g.stop();
  await write(counterFlush('replay.b', 5, 1_700_000_001));
  expect(await waitFor(() => out.counts('graphite')!.failedAttempts >= 2, 5000, 5)).toBe(true);
  const before = g.conns.length;
  await g.start(); // the same port
  expect(await waitFor(() => out.counts('graphite')!.queued === 0, 5000, 5)).toBe(true);
  const after = g.conns.slice(before).flat();
  const stops: string[] = [];
  await out.close((l) => stops.push(l), 1000);
  return { out, after, stopLine: stops.join('\n') };
}

describe('statsd Graphite output: the replay window across a server restart', () => {
  it('the lines delivered just before the failure are sent again after it, first, and counted as replayed', async () => {
    const { out, after, stopLine } = await outage({ graphiteReplay: '10000' });
    const a = after.filter((l) => l.includes('.a.') || l.endsWith(' 1700000000'));
    const b = after.filter((l) => l.includes('.b.') || l.endsWith(' 1700000001'));
    expect(a).toHaveLength(13); // flush a again, whole
    expect(b).toHaveLength(13);
    expect(after).toEqual([...a, ...b]); // the replay first
    expect(out.counts('graphite')).toMatchObject({ accepted: 26, delivered: 26, dropped: 0, droppedAtClose: 0 });
    expect(out.replayed('graphite')).toBe(13);
    const w = new PromWriter();
    out.write(w);
    expect(w.text()).toContain('shardgram_statsd_output_replayed_total{output="graphite"} 13\n');
    expect(stopLine).toMatch(/26 of 26 lines delivered, .*failed attempts, 13 lines replayed/);
  });

  it('graphiteReplay=0: nothing is sent again', async () => {
    const { out, after, stopLine } = await outage({ graphiteReplay: '0' });
    expect(after.filter((l) => l.includes('.a.'))).toEqual([]);
    expect(after.filter((l) => l.includes('.b.'))).toHaveLength(10);
    expect(out.replayed('graphite')).toBe(0);
    expect(stopLine).toMatch(/, 0 lines replayed/);
  });
});

describe('ReplayWindow', () => {
  it('keeps what was delivered within windowMs before the first failure of an outage, at most maxLines, and counts it once sent', () => {
    let now = 0;
    const r = new ReplayWindow({ windowMs: 1000, maxLines: 5, now: () => now });
    r.delivered('old 1 0\n', 1);
    now = 1500;
    r.delivered('x 1 1\ny 1 1\n', 2);
    now = 2000;
    r.delivered('z 1 2\n', 1);
    now = 2400; // 'old' is 2.4 s old: out of the window; 'x y' 0.9 s: in
    r.failed();
    now = 9000;
    r.failed(); // the same outage: the window taken at its first failure stays
    expect(r.prefix()).toBe('x 1 1\ny 1 1\nz 1 2\n');
    expect(r.replayed).toBe(0);
    r.delivered('w 1 9\n', 1);
    expect(r.replayed).toBe(3);
    expect(r.prefix()).toBe('');
    // The replayed lines and the batch went back into the window (4 lines); more than maxLines drops the oldest.
    r.delivered('v 1 9\nu 1 9\n', 2);
    expect(r.held()).toBe(2);
    r.failed();
    expect(r.prefix()).toBe('v 1 9\nu 1 9\n');
  });

  it('windowMs 0 keeps nothing', () => {
    const r = new ReplayWindow({ windowMs: 0, maxLines: 100 });
    r.delivered('a 1 1\n', 1);
    r.failed();
    expect(r.prefix()).toBe('');
    expect(r.held()).toBe(0);
  });
});
