/**
 * The native engine's delivery loop on a real socket: each datagram's message and
 * rinfo, and the top-senders sketch, which takes datagrams in a row from one IPv4
 * sender as one offer (engine/native.ts): its counts must be those of one offer per
 * datagram, for runs, interleavings and IPv6 senders alike.
 */
import { describe, expect, it } from 'vitest';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { openReusePortSocket } from '@shardgram/udp-core/sockets';
import { NativeEngineSocket } from '../src/worker/engine/native.js';

describe('native engine delivery', () => {
  for (const [family, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    it(`${family}: every datagram with its rinfo, in order, and the top senders' exact counts (runs and interleavings in one batch)`, async () => {
      const sock = openReusePortSocket({ address, port: 0 });
      const engine = new NativeEngineSocket({ fd: sock.fd, family, index: 0, onHandlerError: () => {} });
      const got: { text: string; rinfo: object; timestamp: unknown }[] = [];
      engine.on('message', (msg, rinfo) => void got.push({ text: msg.toString(), rinfo: { ...rinfo }, timestamp: rinfo.timestamp }));
      const clients = await openClients(3, family);
      try {
        // Runs of one sender, a sender coming back, single datagrams: queued before the
        // engine starts, so that they arrive in one batch.
        const pattern = [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 2, 1, 1, 1, 1, 0];
        for (const [i, c] of pattern.entries()) await send(clients[c]!, `d${i}`, sock.port, address);
        await engine.start();
        expect(await waitFor(() => got.length === pattern.length, 10_000)).toBe(true);
        const fam = family === 'udp4' ? 'IPv4' : 'IPv6';
        expect(got).toEqual(
          pattern.map((c, i) => ({
            text: `d${i}`,
            rinfo: { address, family: fam, port: clients[c]!.address().port, size: `d${i}`.length },
            timestamp: undefined,
          })),
        );
        expect(engine.counters).toMatchObject({ datagrams: pattern.length, bytes: got.reduce((a, g) => a + g.text.length, 0), batches: 1 });
        const name = (c: number): string => (family === 'udp4' ? `${address}:${clients[c]!.address().port}` : `[${address}]:${clients[c]!.address().port}`);
        const report = engine.topSenders!.report();
        expect(report).toMatchObject({ total: pattern.length, errorBound: 0 });
        expect(report.senders).toEqual([
          { sender: name(0), count: 8, error: 0 },
          { sender: name(1), count: 7, error: 0 },
          { sender: name(2), count: 1, error: 0 },
        ]);
      } finally {
        closeAll(clients);
        await engine.drain(0);
      }
    });
  }
});
