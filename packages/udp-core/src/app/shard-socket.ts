/**
 * The surface an app sees, whichever engine reads the socket: a dgram-like
 * EventEmitter with `message` events and `send`.
 */
import type { EventEmitter } from 'node:events';
import type { SteeringPolicy } from '../steering/policies.js';
import type { SampledLog, SampledLogOptions } from './log-sampler.js';
import type { AppOptionSchema } from './app-options.js';
import type { PromFamily } from '../stats/prom-text.js';

export type EngineName = 'dgram' | 'native';

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  /** Payload length in bytes. */
  size: number;
  /**
   * When the kernel received the datagram: nanoseconds since the Unix epoch
   * (CLOCK_REALTIME, SO_TIMESTAMPNS). Native engine only, for an app whose hooks ask for
   * it (`AppHooks.timestamps`), and computed when read (a getter, so it is not in
   * JSON.stringify or a spread); undefined otherwise: on the dgram engine, which cannot
   * get it from Node's UDP socket, and for a datagram whose control messages were
   * truncated.
   */
  readonly timestamp?: bigint | undefined;
}

export type SendData = string | Uint8Array | readonly (string | Uint8Array)[];
export type SendCallback = (error: Error | null, bytes?: number) => void;

export interface ShardSocketEvents {
  message: [msg: Buffer, rinfo: RemoteInfo];
  /**
   * After the `message` events of one read: a recvmmsg batch (native engine), one
   * datagram (dgram engine). An app that buffers what its handler makes (one write(2)
   * per batch instead of one per datagram) flushes here: nothing is left for later.
   */
  batchEnd: [];
  error: [error: Error];
  close: [];
}

/** What a worker's app gets: its own socket of the group. */
export interface ShardSocket extends EventEmitter<ShardSocketEvents> {
  /** Slot of this socket in the group (0-based). */
  readonly index: number;
  readonly engine: EngineName;
  /** Sends one datagram from this socket (so the reply leaves from the service's port). */
  send(data: SendData, port: number, address: string, callback?: SendCallback): void;
  /** The service's local address and port. */
  address(): { address: string; family: 'IPv4' | 'IPv6'; port: number };
}

export interface AppContext {
  /** Slot of this worker's socket (0-based). */
  index: number;
  /** Number of workers the service was started with. */
  workers: number;
  pid: number;
  /** `--app-option key=value` pairs from the command line, or `appOptions` of the API. */
  options: Readonly<Record<string, string>>;
  /** Writes one line to the supervisor's log, prefixed with this worker's name. */
  log(message: string): void;
  /**
   * A log for events that can flood (bad input, handler errors): the first few with
   * their detail, then one line per `every` with the count (see log-sampler.ts).
   */
  sampledLog(what: string, options?: SampledLogOptions): SampledLog;
  /** Sends a structured-cloneable message to the app's supervisor side (its `message` hook). */
  send(message: unknown): void;
  /** Receives what the app's supervisor side broadcasts. */
  onSupervisorMessage(handler: (message: unknown) => void): void;
}

export interface AppHooks {
  /** Called once on a graceful stop, after the socket has been drained. */
  close?(): void | Promise<void>;
  /**
   * Warm start: sample datagrams the worker runs through this app's message handlers
   * (through the engine's own delivery path) before it reads the socket and reports
   * ready, so that the first burst meets compiled code, not the interpreter. During the
   * warm-up nothing is counted, handler errors are ignored, sends are discarded, and
   * rinfo is 127.0.0.1 port 9; `done` then runs (e.g. to drop what the samples did).
   */
  warmup?: AppWarmup;
  /**
   * Ask for `rinfo.timestamp` (the kernel's receive time; native engine only). Off by
   * default: the kernel's control message costs ~0.2–0.3 µs per datagram.
   */
  timestamps?: boolean;
}

export interface AppWarmup {
  samples: readonly (string | Uint8Array)[];
  /** Deliveries to run, round-robin over the samples (default 10 000; at most 100 ms is spent). */
  count?: number;
  done?(): void;
}

/**
 * An app: a module whose default export is this function. It is called once per
 * worker process with that worker's socket.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: an app that sets up its handlers and returns nothing is typed void, as Node's own callbacks are
export type ShardApp = (socket: ShardSocket, context: AppContext) => void | AppHooks | Promise<void | AppHooks>;

/** What the supervisor side of an app gets (see `AppModule.supervisor`). */
export interface AppSupervisorContext {
  workers: number;
  options: Readonly<Record<string, string>>;
  log(message: string): void;
  /** Sends a message to every running worker (their `onSupervisorMessage` handlers). */
  broadcast(message: unknown): void;
}

export interface AppSupervisorHooks {
  /**
   * The options every worker started from now on gets (`context.options`), instead of
   * the command line's: e.g. a file's content read once here rather than its path, so
   * that a worker restarted after the file changed runs with what the service started
   * with. Read once, when the supervisor side has started.
   */
  workerOptions?: Readonly<Record<string, string>>;
  /** A message a worker sent with `context.send`. */
  message?(index: number, message: unknown): void;
  /** Called once on a graceful stop, after every worker has drained and exited. */
  stop?(): void | Promise<void>;
  /** Extra Prometheus text appended to GET /metrics. */
  metrics?(): string;
  /**
   * The same figures as families (a `PromWriter`'s `families()`), for a scraper that
   * asks for the protobuf format (native histograms). Without it, an app with a
   * `metrics` hook is always served as text.
   */
  metricFamilies?(): PromFamily[];
}

/**
 * Optional second export of an app module, run once in the supervisor process: the
 * place to merge what workers computed (e.g. StatsD aggregates).
 */
export type AppSupervisor = (context: AppSupervisorContext) => AppSupervisorHooks | Promise<AppSupervisorHooks>;

/**
 * Optional export `defaults` of an app module: what the app runs best with, used
 * where the command line (or the Supervisor's options) says nothing.
 */
export interface AppDefaults {
  /** Steering policy, e.g. `{ name: 'key', delimiter: 0x3a, maxLength: 64 }` for StatsD names. */
  policy?: SteeringPolicy;
  engine?: EngineName;
  /** SO_RCVBUF to request per socket, in bytes. */
  rcvbuf?: number;
  /**
   * The most latency the native engine may add under steady traffic (µs; default 500):
   * a one-way sink such as StatsD can let datagrams wait longer in the socket's queue,
   * so that each wake-up reads more of them for less CPU (docs/native-engine.md).
   */
  maxReadDelayUs?: number;
  /**
   * How often each worker sends its snapshot (CPU time, its heartbeat; default 200 ms).
   * Each one wakes the worker and the supervisor: an app whose traffic is thin for much
   * of the time (syslog) runs cheaper on fewer. Stall detection waits at least 3 of them.
   */
  snapshotIntervalMs?: number;
}

/**
 * What an app module exports: the app (default), and optionally its supervisor side,
 * its defaults, its option schema (app-options.ts: `serve <app>` builds its flags,
 * help and checks from it) and a one-line description for `serve --help`.
 */
export interface AppModule {
  default: ShardApp;
  supervisor?: AppSupervisor;
  defaults?: AppDefaults;
  options?: AppOptionSchema;
  description?: string;
}

/** Identity helper that gives an app's supervisor side its type. */
export function defineAppSupervisor(setup: AppSupervisor): AppSupervisor {
  return setup;
}

/** Identity helper that gives an app its type. */
export function defineApp(app: ShardApp): ShardApp {
  return app;
}

/** Counters every engine keeps (cumulative for the worker process): see counters.ts. */
export type { EngineCounters } from '../stats/counters.js';
export { zeroEngineCounters as newCounters } from '../stats/counters.js';
