/**
 * Every default and every limit, once, frozen: the service's (the Supervisor's
 * options, `shardgram serve`'s and `scale`'s flags and their --help), the stats
 * server's, the load tool's and those of `shardgram demo` and `top`; the docs' tables (docs/defaults.md, checked against
 * this by a test) read them here too. Layer 0: it imports only kernel constants.
 */
import { UDP_MAX_PAYLOAD } from './ffi/kernel.js';

const defaults = {
  /** Where the group binds, and where the stats port listens. */
  address: '127.0.0.1',
  statsAddress: '127.0.0.1',
  /** Where an app declares none. */
  engine: 'dgram' as 'dgram' | 'native',
  policy: 'hash' as const,
  /** Workers' statistics snapshots (their heartbeat). */
  snapshotIntervalMs: 200,
  /** Longest a graceful stop waits for a worker's queue to empty. */
  drainTimeoutMs: 10_000,
  /** A worker that reads nothing while its queue fills, or sends no heartbeat, this long is replaced. */
  stallTimeoutMs: 5000,
  /** Datagrams per recvmmsg/sendmmsg call (native engine). */
  batch: 64,
  /** The most latency the native engine's pacing may add, where an app declares none. */
  maxReadDelayUs: 500,
  /** The receive buffer every socket gets while the group changes or waits for a reader. */
  changeRcvbuf: 8 * 1024 * 1024,
  /** How long either side of a hand-over waits for the other. */
  handoverTimeoutMs: 60_000,
  /** `--policy key`: the byte that ends the key, and the most key bytes hashed. */
  keyDelimiter: ':',
  keyMaxLength: 64,
  /** Imbalance detection under `hash` (the `imbalance` option): the sliding window, */
  imbalanceWindowMs: 10_000,
  /** the fewest datagrams in it worth judging, */
  imbalanceMinDatagrams: 1000,
  /** and how long an imbalance must last before it is reported. */
  imbalanceSustainMs: 5000,
};
export const DEFAULTS: Readonly<typeof defaults> = Object.freeze(defaults);

/** Inclusive ranges. */
export const LIMITS = Object.freeze({
  port: { min: 0, max: 65535 },
  workers: { min: 1, max: 256 },
  batch: { min: 1, max: 1024 },
  maxReadDelayUs: { min: 0, max: 100_000 },
  drainTimeoutMs: { min: 0, max: 3_600_000 },
  stallTimeoutMs: { min: 0, max: 3_600_000 },
  handoverTimeoutMs: { min: 1000, max: 3_600_000 },
  /** Receive buffers asked for (`rcvbuf`, `changeRcvbuf`), in bytes. */
  rcvbuf: { min: 1, max: 2 ** 30 },
  changeRcvbuf: { min: 0, max: 2 ** 30 },
  keyMaxLength: { min: 1, max: 256 },
  /** The `imbalance` option's fields (`imbalance.windowMs`, …): a window no shorter than the monitor's 1 s tick. */
  imbalanceWindowMs: { min: 1000, max: 3_600_000 },
  imbalanceMinDatagrams: { min: 1, max: 1_000_000_000 },
  imbalanceSustainMs: { min: 0, max: 3_600_000 },
} as const);

/** The stats server's (startStatsServer) defaults: where it listens, how many it holds, how long it waits. */
export const STATS_SERVER_DEFAULTS = Object.freeze({
  address: DEFAULTS.statsAddress,
  /** Connections held at once; a new one takes the place of the oldest silent one. */
  maxConnections: 64,
  /** The same, per client address (an IPv6 address counting by its /64). */
  maxConnectionsPerAddress: 16,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 2000,
  /** Bound on the server's close(). */
  closeTimeoutMs: 1000,
} as const);

/** The load tool's (runLoad, `shardgram load`) defaults. */
export const LOAD_DEFAULTS = Object.freeze({
  /** Source sockets (source ports). */
  sources: 64,
  count: 10_000,
  /** Probes per second; 0: as fast as it can. */
  rate: 0,
  /** Bytes per probe. */
  size: 64,
  replyTimeoutMs: 1000,
  maxDurationMs: 120_000,
  sender: 'native' as 'native' | 'dgram',
});

/** The load tool's ranges (inclusive). */
export const LOAD_LIMITS = Object.freeze({
  port: { min: 1, max: 65535 },
  sources: { min: 1, max: 4096 },
  count: { min: 1, max: 100_000_000 },
  rate: { min: 0, max: 100_000_000 },
  /** At least a probe's sequenced header (its id, sequence number and send time; smaller would not be what was asked). */
  size: { min: 24, max: UDP_MAX_PAYLOAD - 64 },
  replyTimeoutMs: { min: 0, max: 600_000 },
  maxDurationMs: { min: 100, max: 3_600_000 },
} as const);

/** `shardgram demo`'s defaults: its flags', and the service and the burst it runs. */
export const DEMO_DEFAULTS = Object.freeze({
  workers: 4,
  sources: 200,
  count: 20_000,
  /** Datagrams per second; 0: as fast as it can. */
  rate: 10_000,
  engine: 'native' as 'dgram' | 'native',
  /** Bytes per datagram of the burst. */
  size: 64,
  /** How long it waits for the last replies. */
  replyTimeoutMs: 500,
  /** Bound on the burst. */
  maxDurationMs: 45_000,
  /** Workers' snapshots: often, for the live bars. */
  snapshotIntervalMs: 100,
});

/** `shardgram demo`'s ranges (inclusive). */
export const DEMO_LIMITS = Object.freeze({
  workers: { min: 2, max: 32 },
  sources: { min: 1, max: 4096 },
  count: { min: 1, max: 1_000_000 },
  rate: { min: 0, max: 10_000_000 },
} as const);

/** `shardgram top`'s defaults. */
export const TOP_DEFAULTS = Object.freeze({
  /** How often it refreshes. */
  intervalMs: 1000,
  /** Longest wait for one reading of /stats (or the interval, if longer). */
  readTimeoutMs: 2000,
});

/** `shardgram top`'s ranges (inclusive). */
export const TOP_LIMITS = Object.freeze({
  intervalMs: { min: 100, max: 60_000 },
  /** Refreshes `--count` may ask for. */
  count: { min: 1, max: 1_000_000 },
} as const);
