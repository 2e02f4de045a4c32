/**
 * Receive buffers for tests that queue datagrams on purpose. As root the tests ask
 * for SO_RCVBUFFORCE, which passes net.core.rmem_max; as any other user the kernel
 * caps the request at net.core.rmem_max (a stock 212992 gives a 425984-byte buffer,
 * about 500 small datagrams on loopback), and every test that uses these helpers is
 * sized to pass with that.
 *
 * SHARDGRAM_TEST_RMEM_MAX=<bytes> makes the helpers behave as a non-root user on a
 * host with that rmem_max (no SO_RCVBUFFORCE, the request capped at it), so the stock
 * case can be checked on any machine, as root or not: `SHARDGRAM_TEST_RMEM_MAX=212992 npm test`.
 */
import { readFileSync } from 'node:fs';

const emulated = process.env.SHARDGRAM_TEST_RMEM_MAX ? Number(process.env.SHARDGRAM_TEST_RMEM_MAX) : undefined;
if (emulated !== undefined && !(Number.isInteger(emulated) && emulated > 0)) {
  throw new Error(`SHARDGRAM_TEST_RMEM_MAX must be a number of bytes; got "${process.env.SHARDGRAM_TEST_RMEM_MAX}"`);
}

/** Whether the tests may use SO_RCVBUFFORCE (root, and no stock host emulated). */
export const CAN_FORCE_RCVBUF = process.getuid?.() === 0 && emulated === undefined;

/** This host's net.core.rmem_max, read from /proc (not SHARDGRAM_TEST_RMEM_MAX's emulated one); 212992 when unreadable. */
export function rmemMax(): number {
  try {
    return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
  } catch {
    return 212992;
  }
}

/** `4m`, `1m`, `512k` or bytes. */
function bytesOf(size: string | number): number {
  if (typeof size === 'number') return size;
  const m = /^(\d+)([km]?)$/i.exec(size);
  if (!m) throw new Error(`bad size ${size}`);
  return Number(m[1]) * (m[2]?.toLowerCase() === 'm' ? 1 << 20 : m[2]?.toLowerCase() === 'k' ? 1 << 10 : 1);
}

/** The request as this user on this host can make it: forced as root, else capped at rmem_max. */
export function bigRcvbufOptions(size: string | number): { rcvbuf: number; rcvbufForce: boolean } {
  const want = bytesOf(size);
  if (CAN_FORCE_RCVBUF) return { rcvbuf: want, rcvbufForce: true };
  // What a non-root request of `want` gets from the kernel: capped at rmem_max (then doubled).
  return { rcvbuf: Math.min(want, emulated ?? rmemMax()), rcvbufForce: false };
}

/** The same as `serve` flags. */
export function bigRcvbufArgs(size: string | number = '1m'): string[] {
  const o = bigRcvbufOptions(size);
  return ['--rcvbuf', String(o.rcvbuf), ...(o.rcvbufForce ? ['--rcvbuf-force'] : [])];
}

/**
 * Why a test that needs a `size` receive buffer to stay lossless (a full-speed burst
 * with every datagram counted) cannot have it here, or undefined when it can: as root
 * SO_RCVBUFFORCE gets any size; otherwise net.core.rmem_max must allow it. Tests pass
 * the reason to `it.skipIf` and print it (`skipNote`).
 */
export function rcvbufShortfall(size: string | number): string | undefined {
  const want = bytesOf(size);
  if (CAN_FORCE_RCVBUF) return undefined;
  const max = emulated ?? rmemMax();
  if (max >= want) return undefined;
  return (
    `needs a ${want}-byte receive buffer: not root (SO_RCVBUFFORCE needs CAP_NET_ADMIN) and net.core.rmem_max is ${max}` +
    `${emulated !== undefined ? ' (SHARDGRAM_TEST_RMEM_MAX)' : ''}; run as root or raise net.core.rmem_max to run it`
  );
}

/** Prints why the named tests are skipped, once per file (vitest shows a skip without a reason). */
export function skipNote(reason: string | undefined, what: string): string | undefined {
  if (reason) console.log(`skipping ${what}: ${reason}`);
  return reason;
}
