/**
 * Receive buffers raised for a change go back only once their queue fits: lowering
 * a buffer under a longer backlog would make the kernel drop what arrives next.
 * Real sockets on 127.0.0.1; sizes within a stock net.core.rmem_max, so no root needed.
 */
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { discardQueued } from '../src/ffi/discard.js';
import { closeFd, openReusePortSocket, socketMemInfo } from '../src/ffi/socket.js';
import { raiseBuffers } from '../src/supervisor/buffers.js';

async function sendMany(port: number, n: number, size: number): Promise<void> {
  const c = dgram.createSocket('udp4');
  const payload = Buffer.alloc(size, 0x61);
  try {
    for (let i = 0; i < n; i++) await new Promise<void>((r, j) => c.send(payload, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  } finally {
    c.close();
  }
}

describe('raised receive buffers', () => {
  it('hold a backlog the socket\'s own buffer could not, and go back only once the queue fits it', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 8192 });
    try {
      const own = socketMemInfo(sock.fd).rcvbuf;
      expect(own).toBe(16384);
      const lower = raiseBuffers([{ fd: sock.fd }], 100_000);
      expect(socketMemInfo(sock.fd).rcvbuf).toBe(200_000);
      // About 40 KB queued: more than the socket's own buffer holds.
      await sendMany(sock.port, 40, 500);
      const before = socketMemInfo(sock.fd);
      expect(before.drops).toBe(0);
      expect(before.queueBytes).toBeGreaterThan(own);

      let lowered = false;
      const done = lower().then(() => void (lowered = true));
      // While the backlog is longer than the buffer it would go back to, it stays raised.
      await new Promise((r) => setTimeout(r, 100));
      expect(lowered).toBe(false);
      expect(socketMemInfo(sock.fd).rcvbuf).toBe(200_000);

      expect(discardQueued(sock.fd)).toBe(40);
      await done;
      expect(socketMemInfo(sock.fd).rcvbuf).toBe(own);
      expect(socketMemInfo(sock.fd).drops).toBe(0);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('go back at once when the queue already fits, after the give-up time otherwise, and never for a closed socket', async () => {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 8192 });
    const b = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 8192 });
    try {
      await raiseBuffers([{ fd: a.fd }], 100_000)();
      expect(socketMemInfo(a.fd).rcvbuf).toBe(16384);

      const lowerB = raiseBuffers([{ fd: b.fd }], 100_000);
      await sendMany(b.port, 40, 500);
      await lowerB(50); // the backlog stays, but the give-up time has passed
      expect(socketMemInfo(b.fd).rcvbuf).toBe(16384);

      let open = true;
      const lowerA = raiseBuffers([{ fd: a.fd, stillOpen: () => open }], 100_000);
      await sendMany(a.port, 40, 500);
      open = false;
      await lowerA();
      expect(socketMemInfo(a.fd).rcvbuf).toBe(200_000); // left alone: its number may belong to another socket by now
    } finally {
      closeFd(a.fd);
      closeFd(b.fd);
    }
  });

  it('go back to the size given as the socket\'s own, even when it was raised already (a hand-over\'s sockets)', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 100_000 });
    try {
      await raiseBuffers([{ fd: sock.fd, own: 8192 }], 100_000)();
      expect(socketMemInfo(sock.fd).rcvbuf).toBe(16384);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('raise nothing when asked for 0, or for less than a socket has', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 65536 });
    try {
      await raiseBuffers([{ fd: sock.fd }], 0)();
      await raiseBuffers([{ fd: sock.fd }], 32768)();
      expect(socketMemInfo(sock.fd).rcvbuf).toBe(131072);
    } finally {
      closeFd(sock.fd);
    }
  });
});
