/** The rinfo the native engine hands to apps. */
import type { RemoteInfo } from '../shard-socket.js';

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
