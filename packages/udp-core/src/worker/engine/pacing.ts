/**
 * How long the native engine waits between reads under steady traffic (paced mode,
 * docs/native-engine.md): long enough that one wake-up reads many datagrams, since a
 * wake-up costs the same whatever it brings; never longer than the service allows
 * (`maxReadDelayUs`, the most latency pacing may add); and never so long that the
 * socket's queue would be expected to pass a quarter of its receive buffer.
 * `paceWaitUs` is the rule; a `Pacer` keeps what it needs about one socket.
 */
import { socketMemInfo, type SocketMemInfo } from '../../ffi/socket.js';
import { DEFAULTS, LIMITS } from '../../defaults.js';

/** The default `maxReadDelayUs`: the most latency pacing adds unless the app or the operator allows more. */
export const DEFAULT_MAX_READ_DELAY_US = DEFAULTS.maxReadDelayUs;
/** The largest `maxReadDelayUs` accepted (100 ms). */
export const MAX_READ_DELAY_US = LIMITS.maxReadDelayUs.max;
/** Batches to read per wake-up for each DEFAULT_MAX_READ_DELAY_US of allowed delay (half a batch at the default). */
export const PACE_FILL = 0.5;
/** Shortest paced wait (below this, a wake-up per batch costs little anyway). */
export const PACE_MIN_US = 20;
/**
 * Pace only when at least PACE_MIN_DATAGRAMS would arrive within PACE_ENGAGE_US (≥ 8 k/s)
 * or within the allowed delay if that is longer (2 ms: ≥ 2 k/s): thinner traffic is woken
 * per arrival.
 */
export const PACE_MIN_DATAGRAMS = 4;
export const PACE_ENGAGE_US = 500;
/** Share of the receive buffer the queue may be expected to hold when a paced wait ends. */
export const PACE_QUEUE_SHARE = 0.25;
/**
 * Kernel memory a queued datagram is charged beyond its payload (its sk_buff and
 * skb_shared_info, the skb's "truesize"; 832 bytes for a small datagram over loopback
 * on Linux 6.x). With the last datagram's length it is the floor of the figure the
 * Pacer measures (SO_MEMINFO's queued bytes over the datagrams a wake-up then read),
 * which runs low when datagrams arrive during the read.
 */
export const QUEUED_OVERHEAD_GUESS = 832;

export interface PaceInput {
  /** Arrival rate since the socket was last empty, datagrams per µs. */
  perUs: number;
  /** Datagrams per recvmmsg call. */
  batch: number;
  /** The most latency pacing may add, µs (0: never pace). */
  maxDelayUs: number;
  /** The socket's receive buffer limit as SO_MEMINFO reports it (0: unknown, no bound). */
  rcvbuf: number;
  /** Kernel memory per queued datagram (measured, or QUEUED_OVERHEAD_GUESS + payload). */
  bytesPerDatagram: number;
}

/** Whether a read delay of `maxDelayUs` lets the engine pace at all (under PACE_MIN_US it is woken per arrival). */
export function pacingAllowed(maxDelayUs: number): boolean {
  return maxDelayUs >= PACE_MIN_US;
}

/**
 * The next paced wait in µs, or 0 to wait for the socket's readable event instead
 * (traffic too thin to pace, pacing off, or a buffer too small to absorb even
 * PACE_MIN_US of this traffic).
 */
export function paceWaitUs(p: PaceInput): number {
  if (!(p.perUs > 0) || !pacingAllowed(p.maxDelayUs) || p.perUs * Math.max(PACE_ENGAGE_US, p.maxDelayUs) < PACE_MIN_DATAGRAMS) return 0;
  const target = p.batch * PACE_FILL * (p.maxDelayUs / DEFAULT_MAX_READ_DELAY_US);
  let wait = Math.min(p.maxDelayUs, Math.max(PACE_MIN_US, target / p.perUs));
  if (p.rcvbuf > 0 && p.bytesPerDatagram > 0) {
    // A rate measured over a quiet spell runs low (a burst may be starting): the bound assumes
    // at least the rate that paces at the default delay, 8 k/s.
    const boundRate = Math.max(p.perUs, PACE_MIN_DATAGRAMS / PACE_ENGAGE_US);
    const bufferUs = (PACE_QUEUE_SHARE * p.rcvbuf) / (boundRate * p.bytesPerDatagram);
    if (bufferUs < PACE_MIN_US) return 0;
    wait = Math.min(wait, bufferUs);
  }
  return wait;
}

/** Longest a paced wake-up goes without reading SO_MEMINFO while the queue stays well within its bound. */
export const MEMINFO_EVERY_MS = 5;

export interface PacerOptions {
  /** The most latency pacing may add, µs (default DEFAULT_MAX_READ_DELAY_US). */
  maxDelayUs?: number | undefined;
  /**
   * The socket's own receive buffer as SO_MEMINFO counts it (0 or none: unknown): the
   * supervisor raises buffers above it only for a while, so waits are never sized for more.
   */
  ownRcvbuf?: number | undefined;
  /** Reads the socket's SO_MEMINFO (tests pass their own). */
  memInfo?: (fd: number) => SocketMemInfo;
}

/**
 * One socket's pacing: its receive buffer's limit and the kernel memory a queued
 * datagram takes, from SO_MEMINFO read at paced wake-ups (every MEMINFO_EVERY_MS, or at
 * every one while the waits come near the bound), and the next wait from them.
 */
export class Pacer {
  private maxDelayUs: number;
  private readonly ownRcvbuf: number;
  private readonly memInfo: (fd: number) => SocketMemInfo;
  /** The buffer's limit and kernel memory per queued datagram, as last measured (0: not yet). */
  private rcvbuf = 0;
  private bytesPerDatagram = 0;
  private memAt = -Infinity;
  /** The wait armed is near the bound: read SO_MEMINFO at every wake-up. */
  private nearBound = false;
  /** SO_MEMINFO failed: no bound from the buffer, so waits stay within the default delay. */
  private failed = false;

  constructor(
    private readonly fd: number,
    opts: PacerOptions = {},
  ) {
    this.maxDelayUs = opts.maxDelayUs ?? DEFAULT_MAX_READ_DELAY_US;
    this.ownRcvbuf = opts.ownRcvbuf ?? 0;
    this.memInfo = opts.memInfo ?? socketMemInfo;
  }

  /** The buffer limit the waits are sized for (0: unknown). */
  get limit(): number {
    return this.rcvbuf;
  }

  /** At a paced wake-up, before reading: the socket's queued bytes, or -1 when not read this time. */
  atWake(now: number): number {
    return this.nearBound ? this.read(now) : this.readIfDue(now);
  }

  /**
   * After a drain found the socket empty: the next wait in µs (0: wait for the readable
   * event). `readNow`: datagrams this drain read; `queued`: what atWake returned for it
   * (-1 when the drain was not a paced wake-up); `lastLen`: the last datagram's length.
   */
  nextWait(now: number, perUs: number, batch: number, readNow: number, queued: number, lastLen: number): number {
    // Bytes queued at the wake-up over the datagrams it read (some arrived while it read,
    // so this runs low; the guess from the last length is the floor).
    if (queued > 0 && readNow > 0) this.bytesPerDatagram = queued / readNow;
    // Not a paced wake-up (the first wait after a quiet spell, say): the buffer's size may be stale.
    else this.readIfDue(now);
    const bytesPerDatagram = Math.max(this.bytesPerDatagram, QUEUED_OVERHEAD_GUESS + lastLen);
    const wait = paceWaitUs({ perUs, batch, maxDelayUs: this.maxDelayUs, rcvbuf: this.rcvbuf, bytesPerDatagram });
    // Expected to fill more than half of what the bound allows: measure at every wake-up.
    this.nearBound = this.rcvbuf > 0 && wait * perUs * bytesPerDatagram > (PACE_QUEUE_SHARE / 2) * this.rcvbuf;
    return wait;
  }

  private readIfDue(now: number): number {
    return now - this.memAt >= MEMINFO_EVERY_MS ? this.read(now) : -1;
  }

  /**
   * Reads SO_MEMINFO: the buffer's limit (never above the socket's own size: a raised
   * buffer goes back down, perhaps during the wait sized from it); returns the queued
   * bytes, or -1. After a failure it is not tried again.
   */
  private read(now: number): number {
    if (this.failed) return -1;
    this.memAt = now;
    try {
      const m = this.memInfo(this.fd);
      this.rcvbuf = this.ownRcvbuf > 0 ? Math.min(m.rcvbuf, this.ownRcvbuf) : m.rcvbuf;
      return m.queueBytes;
    } catch {
      this.failed = true;
      this.rcvbuf = 0;
      this.maxDelayUs = Math.min(this.maxDelayUs, DEFAULT_MAX_READ_DELAY_US);
      return -1;
    }
  }
}
