/** Encoding and decoding of struct sockaddr_in / sockaddr_in6 in Buffers. */
import { isIPv4, isIPv6 } from 'node:net';
import {
  AF_INET,
  AF_INET6,
  SIN6_ADDR,
  SIN6_FAMILY,
  SIN6_PORT,
  SIN6_SCOPE_ID,
  SIN_ADDR,
  SIN_FAMILY,
  SIN_PORT,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
} from './kernel.js';

export type Family = 'udp4' | 'udp6';

export function familyOf(address: string): Family | undefined {
  if (isIPv4(address)) return 'udp4';
  if (isIPv6(address)) return 'udp6';
  return undefined;
}

/**
 * `::ffff:127.0.0.1` and the like: an IPv4 address written as IPv6. Linux refuses to
 * bind one to an IPv6-only socket (EINVAL), and the group's IPv6 sockets are
 * IPv6-only, so such an address is refused up front with a message that says why.
 */
export function isIPv4Mapped(address: string): boolean {
  if (familyOf(address) !== 'udp6') return false;
  const b = ipv6Bytes(address);
  return b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/**
 * Where a client's source sockets bind to reach `address`: loopback for a loopback
 * destination (so traffic stays on lo), the wildcard of the family otherwise.
 */
export function sourceBindAddress(address: string): string {
  const v4 = familyOf(address) === 'udp4';
  const loopback = address.startsWith('127.') || address === '::1';
  if (loopback) return v4 ? '127.0.0.1' : '::1';
  return v4 ? '0.0.0.0' : '::';
}

/** The 16 bytes of an IPv6 address, expanding `::` and an embedded IPv4 tail. */
export function ipv6Bytes(address: string): Buffer {
  const zone = address.indexOf('%');
  let text = zone >= 0 ? address.slice(0, zone) : address;
  const out = Buffer.alloc(16);
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    tail = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => {
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[offset + i * 2]! << 8) | bytes[offset + i * 2 + 1]!);
  // Longest run of zero groups (length ≥ 2) becomes '::' (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === 0 && bestLen === 5 && groups[5] === 0xffff) {
    return `::ffff:${bytes[offset + 12]}.${bytes[offset + 13]}.${bytes[offset + 14]}.${bytes[offset + 15]}`;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Writes a sockaddr for (address, port) into `into` (or a new Buffer) and returns its length. */
export function encodeSockaddr(address: string, port: number, into?: Buffer): { buf: Buffer; len: number } {
  if (isIPv4(address)) {
    const buf = into ?? Buffer.alloc(SOCKADDR_IN_SIZE);
    buf.fill(0, 0, SOCKADDR_IN_SIZE);
    buf.writeUInt16LE(AF_INET, SIN_FAMILY);
    buf.writeUInt16BE(port, SIN_PORT);
    const parts = address.split('.');
    for (let i = 0; i < 4; i++) buf[SIN_ADDR + i] = Number(parts[i]);
    return { buf, len: SOCKADDR_IN_SIZE };
  }
  const buf = into ?? Buffer.alloc(SOCKADDR_IN6_SIZE);
  buf.fill(0, 0, SOCKADDR_IN6_SIZE);
  buf.writeUInt16LE(AF_INET6, SIN6_FAMILY);
  buf.writeUInt16BE(port, SIN6_PORT);
  ipv6Bytes(address).copy(buf, SIN6_ADDR);
  return { buf, len: SOCKADDR_IN6_SIZE };
}

export interface DecodedAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  scopeId?: number;
}

export function decodeSockaddr(buf: Buffer, offset = 0): DecodedAddress {
  const family = buf.readUInt16LE(offset + SIN_FAMILY);
  if (family === AF_INET) {
    const a = offset + SIN_ADDR;
    return {
      address: `${buf[a]}.${buf[a + 1]}.${buf[a + 2]}.${buf[a + 3]}`,
      family: 'IPv4',
      port: buf.readUInt16BE(offset + SIN_PORT),
    };
  }
  if (family === AF_INET6) {
    return {
      address: formatIPv6(buf, offset + SIN6_ADDR),
      family: 'IPv6',
      port: buf.readUInt16BE(offset + SIN6_PORT),
      scopeId: buf.readUInt32LE(offset + SIN6_SCOPE_ID),
    };
  }
  throw new Error(`unknown address family ${family}`);
}
