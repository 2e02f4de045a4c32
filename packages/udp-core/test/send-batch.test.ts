/**
 * The native engine's send side (engine/send-batch.ts) on a real socket: datagrams are
 * batched and go out together at a flush, a full batch goes out before the next one is
 * taken, each callback gets its byte count on a later tick, and a send that cannot go
 * (bad port, an address of the other family, too large) is refused with dgram's error
 * code and counted, while the rest of the batch still goes.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@shardgram/test-kit/wait';
import { closeFd, openReusePortSocket } from '@shardgram/udp-core/sockets';
import { newCounters } from '../src/app/shard-socket.js';
import { SendBatch } from '../src/worker/engine/send-batch.js';

const opened: { close: () => void }[] = [];
afterEach(() => {
  for (const o of opened.splice(0)) o.close();
});

async function setUp(batch: number) {
  const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
  const peer = dgram.createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
  const got: string[] = [];
  peer.on('message', (m) => got.push(m.toString()));
  opened.push({ close: () => closeFd(sock.fd) }, { close: () => peer.close() });
  const counters = newCounters();
  const errors: unknown[] = [];
  const sends = new SendBatch(sock.fd, 'udp4', batch, 1024, counters, (e) => errors.push(e));
  return { sends, peerPort: peer.address().port, got, counters, errors };
}

describe('native engine: the send batch', () => {
  it('holds datagrams until a flush, then sends them in order; callbacks get their bytes on a later tick', async () => {
    const { sends, peerPort, got, counters } = await setUp(8);
    const results: [Error | null, number | undefined][] = [];
    for (const text of ['a', 'bb', 'ccc']) expect(sends.add(text, peerPort, '127.0.0.1', (err, bytes) => results.push([err, bytes]))).toBe(true);
    sends.add([Buffer.from('d'), 'ee'], peerPort, '127.0.0.1');
    expect(sends.size).toBe(4);
    sends.flush();
    expect(sends.size).toBe(0);
    expect(results).toEqual([]); // not inside the flush
    expect(await waitFor(() => got.length === 4, 5_000)).toBe(true);
    expect(got).toEqual(['a', 'bb', 'ccc', 'dee']);
    expect(results).toEqual([
      [null, 1],
      [null, 2],
      [null, 3],
    ]);
    expect(counters.sends).toBe(4);
    expect(counters.sendErrors).toBe(0);
  });

  it('sends a full batch before it takes the next datagram', async () => {
    const { sends, peerPort, got } = await setUp(2);
    for (let i = 0; i < 5; i++) sends.add(`m${i}`, peerPort, '127.0.0.1');
    expect(sends.size).toBe(1);
    expect(await waitFor(() => got.length === 4, 5_000)).toBe(true);
    sends.flush();
    expect(await waitFor(() => got.length === 5, 5_000)).toBe(true);
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
  });

  it("refuses what cannot go with dgram's codes, counted, and the rest of the batch still goes", async () => {
    const { sends, peerPort, got, counters } = await setUp(8);
    const codes: (string | undefined)[] = [];
    const cb = (err: Error | null) => codes.push((err as NodeJS.ErrnoException | null)?.code);
    expect(sends.add('x', 0, '127.0.0.1', cb)).toBe(false);
    expect(sends.add('x', peerPort, '::1', cb)).toBe(false);
    expect(sends.add('x', peerPort, 'localhost', cb)).toBe(false);
    expect(sends.add(Buffer.alloc(2000), peerPort, '127.0.0.1', cb)).toBe(false);
    expect(sends.add('ok', peerPort, '127.0.0.1', cb)).toBe(true);
    sends.flush();
    expect(await waitFor(() => codes.length === 5, 5_000)).toBe(true);
    expect(codes).toEqual(['ERR_SOCKET_BAD_PORT', 'ERR_INVALID_ADDRESS', 'ERR_INVALID_ADDRESS', 'EMSGSIZE', undefined]);
    expect(await waitFor(() => got.length === 1, 5_000)).toBe(true);
    expect(got).toEqual(['ok']);
    expect(counters.sendErrors).toBe(4);
    expect(counters.sends).toBe(1);
  });

  it('a callback that throws is counted as a handler error and the others still run', async () => {
    const { sends, peerPort, counters, errors } = await setUp(8);
    let ran = 0;
    sends.add('a', peerPort, '127.0.0.1', () => {
      throw new Error('boom');
    });
    sends.add('b', peerPort, '127.0.0.1', () => void ran++);
    sends.flush();
    expect(await waitFor(() => ran === 1, 5_000)).toBe(true);
    expect(counters.handlerErrors).toBe(1);
    expect(String(errors[0])).toMatch(/boom/);
  });
});
