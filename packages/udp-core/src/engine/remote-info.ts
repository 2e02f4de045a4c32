/** The rinfo the native engine hands to apps, and the sender address cache behind it. */
import { AF_INET, SIN6_ADDR, SIN_ADDR, SIN_FAMILY, SIN_PORT } from '../ffi/kernel.js';
import { decodeSockaddr } from '../ffi/sockaddr.js';
import type { RemoteInfo } from '../shard-socket.js';

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
 * The rinfo of the sockaddr at `nameOff` in `mem`: the address string comes from
 * `names`, a cache keyed by the raw address bytes (cleared when it reaches 4096).
 */
export function remoteInfo(mem: Buffer, nameOff: number, size: number, names: Map<number | string, string>, sec: number, nsec: number): RemoteInfo {
  const port = (mem[nameOff + SIN_PORT]! << 8) | mem[nameOff + SIN_PORT + 1]!;
  const v4 = mem.readUInt16LE(nameOff + SIN_FAMILY) === AF_INET;
  const key = v4 ? mem.readUInt32LE(nameOff + SIN_ADDR) : mem.toString('latin1', nameOff + SIN6_ADDR, nameOff + SIN6_ADDR + 16);
  let address = names.get(key);
  if (address === undefined) {
    address = decodeSockaddr(mem, nameOff).address;
    if (names.size >= NAMES_MAX) names.clear();
    names.set(key, address);
  }
  return new NativeRemoteInfo(address, v4 ? 'IPv4' : 'IPv6', port, size, sec, nsec);
}
