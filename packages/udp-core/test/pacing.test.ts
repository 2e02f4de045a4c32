/**
 * The native engine's paced wait (engine/pacing.ts): as long as the allowed delay
 * lets one wake-up read more, never past the allowed delay, never so long that the
 * queue would be expected to pass a quarter of the receive buffer; and the service's
 * `maxReadDelayUs` is checked at the edge and taken from the app when not given.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_READ_DELAY_US, PACE_MIN_US, Pacer, paceWaitUs, type PaceInput } from '../src/worker/engine/pacing.js';
import { closeFd, openReusePortSocket, socketMemInfo } from '@shardgram/udp-core/sockets';
import { setReceiveBuffer } from '../src/ffi/socket.js';
import { resolveConfig, validateOptions } from '../src/supervisor/config.js';

const base: PaceInput = { perUs: 0.1, batch: 64, maxDelayUs: DEFAULT_MAX_READ_DELAY_US, rcvbuf: 0, bytesPerDatagram: 832 };
const wait = (p: Partial<PaceInput>): number => paceWaitUs({ ...base, ...p });

describe('paceWaitUs', () => {
  it('does not pace traffic thinner than 4 datagrams per 500 µs (8 k/s), nor when the delay allowed is 0', () => {
    expect(wait({ perUs: 0 })).toBe(0);
    expect(wait({ perUs: 0.0079 })).toBe(0);
    expect(wait({ perUs: 0.008 })).toBeGreaterThan(0);
    expect(wait({ maxDelayUs: 0 })).toBe(0);
    expect(wait({ maxDelayUs: PACE_MIN_US - 1 })).toBe(0);
  });

  it('a longer allowed delay paces thinner traffic: 4 datagrams within the delay (2 ms: 2 k/s; 10 ms: 400/s)', () => {
    expect(wait({ perUs: 0.0025, maxDelayUs: 2000 })).toBe(2000);
    expect(wait({ perUs: 0.0019, maxDelayUs: 2000 })).toBe(0);
    expect(wait({ perUs: 0.0005, maxDelayUs: 10_000 })).toBe(10_000);
    expect(wait({ perUs: 0.00039, maxDelayUs: 10_000 })).toBe(0);
    // The default delay keeps the 8 k/s threshold.
    expect(wait({ perUs: 0.0025 })).toBe(0);
  });

  it('a thin rate is bounded by the buffer as if it were 8 k/s: a rate measured over a quiet spell runs low', () => {
    // 100 ms allowed, 500/s measured, a 256 KiB buffer (524288 as SO_MEMINFO counts it): a quarter lasts 19.7 ms at 8 k/s.
    expect(wait({ perUs: 0.0005, maxDelayUs: 100_000, rcvbuf: 524_288 })).toBeCloseTo((0.25 * 524_288) / (0.008 * 832));
    // A big buffer does not bind.
    expect(wait({ perUs: 0.0005, maxDelayUs: 50_000, rcvbuf: 8 << 20 })).toBe(50_000);
  });

  it('at the default 500 µs: half a batch per wake-up, between 20 and 500 µs', () => {
    expect(wait({ perUs: 0.2 })).toBeCloseTo(160); // 32 datagrams at 200 k/s
    expect(wait({ perUs: 0.02 })).toBe(500); // 32 would take 1600 µs: the cap
    expect(wait({ perUs: 10 })).toBe(PACE_MIN_US);
  });

  it('a larger allowance reads proportionally more per wake-up: 2 ms is two batches', () => {
    expect(wait({ perUs: 0.1, maxDelayUs: 2000 })).toBeCloseTo(1280); // 128 datagrams at 100 k/s
    expect(wait({ perUs: 0.02, maxDelayUs: 2000 })).toBe(2000);
  });

  it('never lets the expected queue pass a quarter of the receive buffer', () => {
    // 212992 bytes (a default buffer), 832 bytes a datagram, 100 k/s: a quarter holds 64 datagrams, 640 µs.
    const w = wait({ perUs: 0.1, maxDelayUs: 2000, rcvbuf: 212992 });
    expect(w).toBeCloseTo(640);
    expect(w * 0.1 * 832).toBeLessThanOrEqual(212992 / 4 + 1e-6);
    // Bigger datagrams fill it sooner.
    expect(wait({ perUs: 0.1, maxDelayUs: 2000, rcvbuf: 212992, bytesPerDatagram: 2120 })).toBeCloseTo(251.2, 1);
    // A buffer that cannot hold even 20 µs of the traffic: wait for readable instead.
    expect(wait({ perUs: 1, rcvbuf: 4096 })).toBe(0);
    // A big buffer does not bind; an unknown one (0) does not either.
    expect(wait({ perUs: 0.1, maxDelayUs: 2000, rcvbuf: 8 << 20 })).toBeCloseTo(1280);
    expect(wait({ perUs: 0.1, maxDelayUs: 100_000, rcvbuf: 0 })).toBeCloseTo(64_000); // 6400 datagrams (half a batch × 100000/500) at 100 k/s
  });
});

describe('snapshotIntervalMs in the service config', () => {
  it("is the caller's, else the app's (within a third of the stall timeout), else 200", () => {
    const opts = validateOptions({ app: 'discard', port: 0, workers: 1 });
    expect(resolveConfig(opts, {}).snapshotIntervalMs).toBe(200);
    expect(resolveConfig(opts, { snapshotIntervalMs: 1000 }).snapshotIntervalMs).toBe(1000);
    expect(
      resolveConfig(validateOptions({ app: 'discard', port: 0, workers: 1, snapshotIntervalMs: 100 }), { snapshotIntervalMs: 1000 }).snapshotIntervalMs,
    ).toBe(100);
    // A caller's 2 s stall timeout wants a snapshot at least every 666 ms.
    expect(resolveConfig(validateOptions({ app: 'discard', port: 0, workers: 1, stallTimeoutMs: 2000 }), { snapshotIntervalMs: 1000 }).snapshotIntervalMs).toBe(
      666,
    );
    expect(resolveConfig(validateOptions({ app: 'discard', port: 0, workers: 1, stallTimeoutMs: 0 }), { snapshotIntervalMs: 1000 }).snapshotIntervalMs).toBe(
      1000,
    );
  });
});

describe('maxReadDelayUs in the service config', () => {
  it("is the caller's, else the app's, else 500", () => {
    const opts = validateOptions({ app: 'discard', port: 0, workers: 1 });
    expect(resolveConfig(opts, {}).maxReadDelayUs).toBe(500);
    expect(resolveConfig(opts, { maxReadDelayUs: 2000 }).maxReadDelayUs).toBe(2000);
    expect(resolveConfig(validateOptions({ app: 'discard', port: 0, workers: 1, maxReadDelayUs: 0 }), { maxReadDelayUs: 2000 }).maxReadDelayUs).toBe(0);
  });

  it('rejects a value that is not a whole number of µs from 0 to 100000, naming the option', () => {
    for (const bad of [-1, 1.5, 100_001, Number.NaN]) {
      expect(() => validateOptions({ app: 'discard', port: 0, workers: 1, maxReadDelayUs: bad })).toThrow(
        expect.objectContaining({ code: 'ERR_SHARDGRAM_INVALID_ARG', message: expect.stringMatching(/maxReadDelayUs/) }),
      );
    }
    // An app's default is held to the same range.
    expect(() => resolveConfig(validateOptions({ app: 'discard', port: 0, workers: 1 }), { maxReadDelayUs: 1e9 })).toThrow(/maxReadDelayUs/);
  });
});

describe('Pacer: the buffer the native engine sizes its waits for', () => {
  let clock = 0;
  const limitSeen = (pacer: Pacer): number => {
    pacer.atWake((clock += 10)); // a paced wake-up 10 ms after the last one: SO_MEMINFO is read
    return pacer.limit;
  };

  it("is the socket's own size while the supervisor has raised it (the raise goes back down, perhaps mid-wait)", () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 65536 });
    try {
      const own = socketMemInfo(sock.fd).rcvbuf; // 131072: the kernel counts twice the size asked
      const pacer = new Pacer(sock.fd, { ownRcvbuf: own, maxDelayUs: 100_000 });
      expect(limitSeen(pacer)).toBe(own);
      // Raised as for a change (within a stock net.core.rmem_max, so no root needed).
      setReceiveBuffer(sock.fd, 200_000);
      expect(socketMemInfo(sock.fd).rcvbuf).toBeGreaterThan(own);
      expect(limitSeen(pacer)).toBe(own);
      // Lowered below its own size by someone else: the lower one counts.
      setReceiveBuffer(sock.fd, 16384);
      expect(limitSeen(pacer)).toBe(socketMemInfo(sock.fd).rcvbuf);
      // A pacer not told the socket's own size takes what SO_MEMINFO says.
      setReceiveBuffer(sock.fd, 200_000);
      expect(limitSeen(new Pacer(sock.fd))).toBe(socketMemInfo(sock.fd).rcvbuf);
    } finally {
      closeFd(sock.fd);
    }
  });

  it('reads SO_MEMINFO at most every 5 ms unless the waits come near the bound, and never again after it failed', () => {
    let reads = 0;
    let fail = false;
    const memInfo = () => {
      reads++;
      if (fail) throw new Error('EBADF');
      return { queueBytes: 64 * 832, rcvbuf: 8 << 20, drops: 0 };
    };
    const pacer = new Pacer(3, { maxDelayUs: 2000, memInfo });
    expect(pacer.atWake(0)).toBe(64 * 832);
    expect(pacer.atWake(1)).toBe(-1); // 1 ms later: not read
    // 64 datagrams read for 64 × 832 bytes queued; 100 k/s: 1280 µs, far from the 8 MiB bound.
    expect(pacer.nextWait(2, 0.1, 64, 64, 64 * 832, 13)).toBeCloseTo(1280);
    expect(pacer.atWake(3)).toBe(-1);
    expect(pacer.atWake(5)).toBe(64 * 832);
    expect(reads).toBe(2);
    // A 64 KiB buffer: the waits come near the bound, so every wake-up reads.
    const small = new Pacer(3, {
      maxDelayUs: 2000,
      memInfo: () => {
        reads++;
        return { queueBytes: 10 * 832, rcvbuf: 65536, drops: 0 };
      },
    });
    small.atWake(0);
    const w = small.nextWait(0, 0.1, 64, 10, 10 * 832, 13);
    expect(w).toBeCloseTo((0.25 * 65536) / (0.1 * 845)); // 832 + 13 bytes a datagram is the floor
    reads = 0;
    small.atWake(0.1);
    small.atWake(0.2);
    expect(reads).toBe(2);
    // After a failure: no bound known, the default 500 µs, and no more attempts.
    fail = true;
    expect(pacer.atWake(100)).toBe(-1);
    expect(pacer.limit).toBe(0);
    expect(pacer.nextWait(200, 0.02, 64, 10, -1, 13)).toBe(500);
    const before = reads;
    pacer.atWake(300);
    expect(reads).toBe(before);
  });
});
