/** The rinfo the native engine hands to apps, and the sender address cache behind it. */
import { AF_INET, SIN6_ADDR, SIN_ADDR, SIN_FAMILY, SIN_PORT } from '../../ffi/kernel.js';
import { decodeSockaddr } from '../../ffi/sockaddr.js';
import type { RemoteInfo } from '../../app/shard-socket.js';

const NAMES_MAX = 4096;

/**
 * The rinfo of a native-engine datagram. The kernel's receive time is kept as two
 * numbers and made a bigint only when `timestamp` is read (most apps never do); the
 * private fields stay out of JSON.stringify, spreads and equality checks.
 */
export class NativeRemoteInfo implements RemoteInfo {
  readonly #sec: number;
  readonly #nsec: number;
  constructor(
    readonly address: string,
    readonly family: 'IPv4' | 'IPv6',
    readonly port: number,
    readonly size: number,
    sec: number,
    nsec: number,
  ) {
    this.#sec = sec;
    this.#nsec = nsec;
  }

  /** Kernel receive time, ns since the Unix epoch (SO_TIMESTAMPNS); undefined if the kernel gave none. */
  get timestamp(): bigint | undefined {
    return this.#sec < 0 ? undefined : BigInt(this.#sec) * 1_000_000_000n + BigInt(this.#nsec);
  }
}

/**
 * Sender address strings by the raw address: the number of an IPv4 address's four
 * bytes, or the 16 bytes of an IPv6 address as latin1 text. The last one found is
 * kept aside (a datagram usually comes from the host the previous one came from: no
 * Map lookup then); the Map is cleared when it reaches 4096 entries.
 */
export class SenderNames {
  private readonly names = new Map<number | string, string>();
  private lastKey: number | string = -1;
  private lastName = '';

  /** The address string of the sockaddr at `nameOff` in `mem`, whose raw address is `key`. */
  get(mem: Buffer, nameOff: number, key: number | string): string {
    if (key === this.lastKey) return this.lastName;
    let address = this.names.get(key);
    if (address === undefined) {
      address = decodeSockaddr(mem, nameOff).address;
      if (this.names.size >= NAMES_MAX) this.names.clear();
      this.names.set(key, address);
    }
    this.lastKey = key;
    this.lastName = address;
    return address;
  }
}

/** Whether the sockaddr at `nameOff` is an IPv4 one (sin_family, host order: little-endian here). */
export function isV4(mem: Buffer, nameOff: number): boolean {
  return (mem[nameOff + SIN_FAMILY]! | (mem[nameOff + SIN_FAMILY + 1]! << 8)) === AF_INET;
}

/** An IPv4 sockaddr's address as the little-endian number of its four network-order bytes. */
export function v4Key(mem: Buffer, nameOff: number): number {
  const a = nameOff + SIN_ADDR;
  return (mem[a]! | (mem[a + 1]! << 8) | (mem[a + 2]! << 16)) + mem[a + 3]! * 0x100_0000;
}

/**
 * The rinfo of the sockaddr at `nameOff` in `mem`; `v4addr` is v4Key's number for an
 * IPv4 sockaddr, -1 for an IPv6 one. The address string comes from `names`.
 */
export function remoteInfo(mem: Buffer, nameOff: number, v4addr: number, size: number, names: SenderNames, sec: number, nsec: number): RemoteInfo {
  const port = (mem[nameOff + SIN_PORT]! << 8) | mem[nameOff + SIN_PORT + 1]!;
  if (v4addr >= 0) return new NativeRemoteInfo(names.get(mem, nameOff, v4addr), 'IPv4', port, size, sec, nsec);
  const key = mem.toString('latin1', nameOff + SIN6_ADDR, nameOff + SIN6_ADDR + 16);
  return new NativeRemoteInfo(names.get(mem, nameOff, key), 'IPv6', port, size, sec, nsec);
}
