/**
 * How long the native engine waits between reads under steady traffic (paced mode,
 * docs/native-engine.md): long enough that one wake-up reads many datagrams, since a
 * wake-up costs the same whatever it brings; never longer than the service allows
 * (`maxReadDelayUs`, the most latency pacing may add); and never so long that the
 * socket's queue would be expected to pass a quarter of its receive buffer.
 */

/** The default `maxReadDelayUs`: the most latency pacing adds unless the app or the operator allows more. */
export const DEFAULT_MAX_READ_DELAY_US = 500;
/** The largest `maxReadDelayUs` accepted (100 ms). */
export const MAX_READ_DELAY_US = 100_000;
/** Batches to read per wake-up for each DEFAULT_MAX_READ_DELAY_US of allowed delay (half a batch at the default). */
export const PACE_FILL = 0.5;
/** Shortest paced wait (below this, a wake-up per batch costs little anyway). */
export const PACE_MIN_US = 20;
/** Pace only when at least this many datagrams would arrive within PACE_ENGAGE_US (≥ 8 k/s). */
export const PACE_MIN_DATAGRAMS = 4;
export const PACE_ENGAGE_US = 500;
/** Share of the receive buffer the queue may be expected to hold when a paced wait ends. */
export const PACE_QUEUE_SHARE = 0.25;
/**
 * Kernel memory a queued datagram is charged beyond its payload (its sk_buff and
 * skb_shared_info, the skb's "truesize"; 832 bytes for a small datagram over loopback
 * on Linux 6.x), used until the engine has measured the real figure
 * (SO_MEMINFO's queued bytes over the datagrams a wake-up then read).
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

/**
 * The next paced wait in µs, or 0 to wait for the socket's readable event instead
 * (traffic too thin to pace, pacing off, or a buffer too small to absorb even
 * PACE_MIN_US of this traffic).
 */
export function paceWaitUs(p: PaceInput): number {
  if (!(p.perUs > 0) || p.maxDelayUs < PACE_MIN_US || p.perUs * PACE_ENGAGE_US < PACE_MIN_DATAGRAMS) return 0;
  const target = p.batch * PACE_FILL * (p.maxDelayUs / DEFAULT_MAX_READ_DELAY_US);
  let wait = Math.min(p.maxDelayUs, Math.max(PACE_MIN_US, target / p.perUs));
  if (p.rcvbuf > 0 && p.bytesPerDatagram > 0) {
    const bufferUs = (PACE_QUEUE_SHARE * p.rcvbuf) / (p.perUs * p.bytesPerDatagram);
    if (bufferUs < PACE_MIN_US) return 0;
    wait = Math.min(wait, bufferUs);
  }
  return wait;
}
