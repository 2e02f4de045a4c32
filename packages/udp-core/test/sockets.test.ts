import { describe, expect, it } from 'vitest';
import type { ShardgramError } from '@shardgram/udp-core';
import { closeFd, openReusePortSocket, socketMemInfo } from '@shardgram/udp-core/sockets';
import { udpSnmpCounters } from '@shardgram/test-kit/procfs';
import { rmemMax as hostRmemMax } from '@shardgram/test-kit/rcvbuf';

const rmemMax = hostRmemMax();
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('not root: the SO_RCVBUFFORCE test is skipped (it needs CAP_NET_ADMIN)');

describe('FFI socket layer', () => {
  it('binds port 0, reports the port the kernel chose, and lets a second SO_REUSEPORT socket join it', () => {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const b = openReusePortSocket({ address: '127.0.0.1', port: a.port });
    try {
      expect(a.port).toBeGreaterThan(0);
      expect(b.port).toBe(a.port);
      expect(a.family).toBe('udp4');
      expect(a.inode).not.toBe(b.inode);
      expect(socketMemInfo(a.fd)).toMatchObject({ queueBytes: 0, drops: 0 });
    } finally {
      closeFd(a.fd);
      closeFd(b.fd);
    }
  });

  it('opens IPv6 sockets', () => {
    const a = openReusePortSocket({ address: '::1', port: 0 });
    try {
      expect(a).toMatchObject({ family: 'udp6', address: '::1' });
    } finally {
      closeFd(a.fd);
    }
  });

  it('reports the SO_RCVBUF the kernel granted, and warns naming net.core.rmem_max when capped', () => {
    const small = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 65536 });
    expect(small.rcvbuf).toBe(131072); // the kernel doubles the request
    expect(small.warnings).toEqual([]);
    closeFd(small.fd);
    const asked = rmemMax * 4;
    const big = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: asked });
    try {
      expect(big.rcvbuf).toBe(rmemMax * 2);
      expect(big.warnings).toHaveLength(1);
      expect(big.warnings[0]).toContain(`asked for ${asked} bytes, the kernel granted ${rmemMax}`);
      expect(big.warnings[0]).toContain(`net.core.rmem_max = ${rmemMax} caps it`);
      expect(big.warnings[0]).toContain('sysctl -w net.core.rmem_max=');
    } finally {
      closeFd(big.fd);
    }
  });

  it.skipIf(!isRoot)('goes past rmem_max with SO_RCVBUFFORCE as root', () => {
    const asked = rmemMax * 2;
    const s = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: asked, rcvbufForce: true });
    try {
      expect(s.rcvbuf).toBe(asked * 2);
      expect(s.warnings).toEqual([]);
    } finally {
      closeFd(s.fd);
    }
  });

  it('refuses bad arguments before any system call, with stable codes', () => {
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as ShardgramError).code;
      }
      return undefined;
    };
    expect(codeOf(() => openReusePortSocket({ address: 'localhost', port: 0 }))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(codeOf(() => openReusePortSocket({ address: '127.0.0.1', port: 65536 }))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(codeOf(() => openReusePortSocket({ address: '127.0.0.1', port: 1.5 }))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(codeOf(() => openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: -1 }))).toBe('ERR_SHARDGRAM_INVALID_ARG');
  });

  it('explains an address that is not on this host', () => {
    let err: ShardgramError | undefined;
    try {
      openReusePortSocket({ address: '192.0.2.1', port: 0 }); // TEST-NET-1: bind only, nothing is sent
    } catch (e) {
      err = e as ShardgramError;
    }
    expect(err?.code).toBe('ERR_SHARDGRAM_ADDRESS');
    expect(err?.errnoName).toBe('EADDRNOTAVAIL');
    expect(err?.message).toMatch(/192\.0\.2\.1 is not an address of this host/);
  });
});

describe('sealing a socket before its last read-out', () => {
  it('a sealed member of a group receives nothing more: what its peers send finds no socket, none is queued to be freed unread', async () => {
    const { sealSocket } = await import('../src/ffi/socket.js');
    const dgram = await import('node:dgram');
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
      const sendOne = (): Promise<void> => new Promise((r) => client.send('x', a.port, '127.0.0.1', () => r()));
      await sendOne();
      expect(socketMemInfo(a.fd).queueBytes).toBeGreaterThan(0);
      sealSocket(a.fd, '127.0.0.1', a.port);
      const queued = socketMemInfo(a.fd).queueBytes;
      const noPorts = (): number => udpSnmpCounters().NoPorts!;
      const before = noPorts();
      for (let i = 0; i < 20; i++) await sendOne();
      // Loopback delivers in the sender's own call: by the time a witness socket has its datagram, the 20 were handled.
      const witness = dgram.createSocket('udp4');
      await new Promise<void>((r) => witness.bind(0, '127.0.0.1', () => r()));
      const seen = new Promise<void>((r) => witness.once('message', () => r()));
      await new Promise<void>((r) => client.send('w', witness.address().port, '127.0.0.1', () => r()));
      await seen;
      witness.close();
      expect(socketMemInfo(a.fd).queueBytes).toBe(queued);
      expect(noPorts() - before).toBeGreaterThanOrEqual(20);
    } finally {
      client.close();
      closeFd(a.fd);
    }
  });
});
