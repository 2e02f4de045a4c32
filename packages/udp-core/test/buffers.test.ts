/**
 * Receive buffers raised for a change: overlapping raises are counted per socket, and
 * a buffer goes back to its own size only when the last raise is let go and its queue
 * fits (lowering a buffer under a longer backlog would make the kernel drop what
 * arrives next). Real sockets on 127.0.0.1; sizes within a stock net.core.rmem_max, so
 * no root needed.
 */
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { closeFd, openReusePortSocket, socketMemInfo, type OpenedSocket } from '@shardgram/udp-core/sockets';
import { discardQueued } from '../src/ffi/discard.js';
import { F_DUPFD_CLOEXEC } from '../src/ffi/kernel.js';
import { libc } from '../src/ffi/libc.js';
import { BufferRaises } from '../src/supervisor/buffers.js';

/** One service's raises (its Group owns one), as the tests below raise and lower through it. */
const raises = new BufferRaises();
const raiseBuffers = raises.raise.bind(raises);
const lowerNow = raises.lowerNow.bind(raises);

async function sendMany(port: number, n: number, size: number): Promise<void> {
  const c = dgram.createSocket('udp4');
  const payload = Buffer.alloc(size, 0x61);
  try {
    for (let i = 0; i < n; i++) await new Promise<void>((r, j) => c.send(payload, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  } finally {
    c.close();
  }
}

/** A socket whose own buffer is 8192 bytes (16384 as the kernel reports it). */
function small(): OpenedSocket {
  return openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 8192 });
}

const rcvbuf = (s: OpenedSocket): number => socketMemInfo(s.fd).rcvbuf;

describe('raised receive buffers', () => {
  it("hold a backlog the socket's own buffer could not, and go back only once the queue fits it", async () => {
    const sock = small();
    try {
      expect(rcvbuf(sock)).toBe(16384);
      const letGo = raiseBuffers([sock], 100_000);
      expect(rcvbuf(sock)).toBe(200_000);
      // About 40 KB queued: more than the socket's own buffer holds.
      await sendMany(sock.port, 40, 500);
      expect(socketMemInfo(sock.fd)).toMatchObject({ drops: 0 });
      expect(socketMemInfo(sock.fd).queueBytes).toBeGreaterThan(16384);

      const done = letGo();
      // The queue is longer than the buffer it would go back to: it stays raised.
      expect(rcvbuf(sock)).toBe(200_000);
      expect(discardQueued(sock.fd)).toBe(40);
      await done;
      expect(rcvbuf(sock)).toBe(16384);
      expect(socketMemInfo(sock.fd).drops).toBe(0);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('stay raised while any raise of the socket is in force, whichever fd it came through', async () => {
    const sock = small();
    // The same socket (same inode) through another fd, as a takeover's own duplicates are.
    const dup = { ...sock, fd: libc().fcntl(sock.fd, F_DUPFD_CLOEXEC, 0) };
    try {
      const change = raiseBuffers([sock], 100_000);
      const start = raiseBuffers([dup], 100_000);
      await start();
      expect(rcvbuf(sock)).toBe(200_000); // the change still holds it
      await change();
      expect(rcvbuf(sock)).toBe(16384); // back to the size it had before the first raise
    } finally {
      closeFd(dup.fd);
      closeFd(sock.fd);
    }
  });

  it('raised again while waiting to go back: the wait ends, the new raise holds', async () => {
    const sock = small();
    try {
      const first = raiseBuffers([sock], 100_000);
      await sendMany(sock.port, 40, 500);
      const waiting = first();
      const second = raiseBuffers([sock], 100_000);
      discardQueued(sock.fd);
      await waiting;
      expect(rcvbuf(sock)).toBe(200_000);
      await second();
      expect(rcvbuf(sock)).toBe(16384);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('go back after the give-up time with a backlog; `keep` leaves them; a closed socket is never touched', async () => {
    const a = small();
    const b = small();
    try {
      const lowerB = raiseBuffers([b], 100_000);
      await sendMany(b.port, 40, 500);
      await lowerB({ giveUpMs: 50, ref: true }); // the backlog stays, but the give-up time has passed
      expect(rcvbuf(b)).toBe(16384);

      await raiseBuffers([a], 100_000)({ keep: true });
      expect(rcvbuf(a)).toBe(200_000); // another process puts it back

      let open = true;
      const c = small();
      const lowerC = raiseBuffers([{ ...c, stillOpen: () => open }], 100_000);
      await sendMany(c.port, 40, 500);
      open = false;
      await lowerC();
      expect(rcvbuf(c)).toBe(200_000); // left alone: its number may belong to another socket by now
      closeFd(c.fd);
    } finally {
      closeFd(a.fd);
      closeFd(b.fd);
    }
  });

  it('lowerNow ends every raise at once, backlog or not (sockets left to a service manager)', async () => {
    const sock = small();
    try {
      const change = raiseBuffers([sock], 100_000);
      await sendMany(sock.port, 40, 500);
      lowerNow([sock]);
      expect(rcvbuf(sock)).toBe(16384);
      await change(); // nothing left to do
      expect(rcvbuf(sock)).toBe(16384);
    } finally {
      closeFd(sock.fd);
    }
  });

  it("go back to the size given as the socket's own, even when it was raised already (a hand-over's sockets)", async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 100_000 });
    try {
      await raiseBuffers([{ ...sock, own: 8192 }], 100_000)();
      expect(rcvbuf(sock)).toBe(16384);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('raise nothing when asked for 0, or for less than a socket has', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 65536 });
    try {
      await raiseBuffers([sock], 0)();
      await raiseBuffers([sock], 32768)();
      expect(rcvbuf(sock)).toBe(131072);
    } finally {
      closeFd(sock.fd);
    }
  });
});
