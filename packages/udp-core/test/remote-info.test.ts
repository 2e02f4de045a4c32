/**
 * The native engine's rinfo from a raw sockaddr (engine/remote-info.ts): the address
 * number the top-senders sketch takes, and the sender-name cache with its last-entry
 * shortcut, for IPv4 and IPv6 senders interleaved.
 */
import { describe, expect, it } from 'vitest';
import { isV4, remoteInfo, SenderNames, v4Key } from '../src/worker/engine/remote-info.js';
import { encodeSockaddr } from '../src/ffi/sockaddr.js';

/** A sockaddr at offset 8 of a larger buffer (as in the arena). */
function at8(address: string, port: number): Buffer {
  const name = encodeSockaddr(address, port).buf;
  const mem = Buffer.alloc(8 + name.length + 8, 0xee);
  name.copy(mem, 8);
  return mem;
}

describe('native rinfo', () => {
  it('v4Key is readUInt32LE of sin_addr (also above 2^31), and isV4 tells the families apart', () => {
    for (const a of ['127.0.0.1', '10.0.0.200', '255.255.255.255', '0.0.0.0', '192.168.1.129']) {
      const mem = at8(a, 53);
      expect(isV4(mem, 8)).toBe(true);
      expect(v4Key(mem, 8)).toBe(mem.readUInt32LE(8 + 4));
    }
    expect(isV4(at8('::1', 53), 8)).toBe(false);
  });

  it('gives the address, family, port and size of each sender, however they interleave', () => {
    const names = new SenderNames();
    const senders: [string, 'IPv4' | 'IPv6', number][] = [
      ['127.0.0.1', 'IPv4', 1],
      ['127.0.0.1', 'IPv4', 65535],
      ['10.0.0.200', 'IPv4', 2],
      ['::1', 'IPv6', 3],
      ['::1', 'IPv6', 3],
      ['fe80::1:2', 'IPv6', 4],
      ['127.0.0.1', 'IPv4', 5],
      ['10.0.0.200', 'IPv4', 6],
      ['::ffff:127.0.0.1', 'IPv6', 7],
    ];
    for (const [address, family, port] of senders) {
      const mem = at8(address, port);
      const key = isV4(mem, 8) ? v4Key(mem, 8) : -1;
      const info = remoteInfo(mem, 8, key, 42, names, -1, 0);
      expect({ ...info }).toEqual({ address, family, port, size: 42 });
      expect(info.timestamp).toBeUndefined();
    }
  });

  it('keeps the kernel receive time as a bigint, made when read', () => {
    const mem = at8('127.0.0.1', 9);
    const info = remoteInfo(mem, 8, v4Key(mem, 8), 1, new SenderNames(), 1_700_000_000, 123_456_789);
    expect(info.timestamp).toBe(1_700_000_000_123_456_789n);
    expect(JSON.stringify(info)).not.toContain('1700000000');
  });
});
