/** What both engines share: counters, delivery to the app with error counting, drain. */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Family } from '../../ffi/sockaddr.js';
import { socketMemInfo } from '../../ffi/socket.js';
import {
  newCounters,
  type EngineCounters,
  type EngineName,
  type RemoteInfo,
  type SendCallback,
  type SendData,
  type ShardSocket,
  type ShardSocketEvents,
} from '../../app/shard-socket.js';
import { TOP_SENDERS_CAPACITY, TopSenders } from '../../stats/top-senders.js';

export interface EngineOptions {
  /** The inherited socket (a member of the group). */
  fd: number;
  family: Family;
  index: number;
  /** Largest datagram the engine accepts whole (native engine; dgram takes 64 KiB). */
  maxDatagram?: number;
  /** Datagrams per recvmmsg/sendmmsg call (native engine). */
  batch?: number;
  /** The most latency the native engine's pacing may add, µs (engine/pacing.ts; 0: never paced). Default 500. */
  maxReadDelayUs?: number;
  /**
   * The socket's own receive buffer as SO_MEMINFO counts it (twice the SO_RCVBUF asked; 0: unknown).
   * The supervisor raises buffers above it only for a while (start, restarts, changes):
   * the native engine sizes its waits for this one, never for a raised one.
   */
  ownRcvbuf?: number;
  /** Counters of the top-senders sketch (error bound: datagrams / this); 0 keeps none. Default 64. */
  topSenders?: number;
  /** Where to count (e.g. memory shared with the supervisor); default: a plain object. */
  counters?: EngineCounters;
  /** Called for each exception thrown by a message handler (after counting it). */
  onHandlerError: (error: unknown) => void;
}

export abstract class EngineSocket extends EventEmitter<ShardSocketEvents> implements ShardSocket {
  readonly counters: EngineCounters;
  readonly index: number;
  /** Who sent the most datagrams to this socket (undefined when turned off). */
  readonly topSenders: TopSenders | undefined;
  abstract readonly engine: EngineName;
  protected readonly fd: number;
  protected readonly family: Family;
  protected readonly onHandlerError: (error: unknown) => void;
  protected pending = 0;
  /** Running warm-up samples (warmup()): nothing is counted, sends are discarded. */
  protected warming = false;
  private local: { address: string; family: 'IPv4' | 'IPv6'; port: number } | undefined;

  constructor(opts: EngineOptions) {
    // An async handler's rejected promise comes back to Symbol.for('nodejs.rejection') below.
    super({ captureRejections: true });
    this.fd = opts.fd;
    this.family = opts.family;
    this.index = opts.index;
    this.onHandlerError = opts.onHandlerError;
    this.counters = opts.counters ?? newCounters();
    const k = opts.topSenders ?? TOP_SENDERS_CAPACITY;
    this.topSenders = k > 0 ? new TopSenders(k) : undefined;
  }

  /** Starts reading; resolves once the engine is receiving. */
  abstract start(): Promise<void>;
  /** Stops reading and releases the engine's handle on the socket. */
  protected abstract stopReading(): void;
  abstract send(data: SendData, port: number, address: string, callback?: SendCallback): void;
  protected abstract localAddress(): { address: string; port: number };

  address(): { address: string; family: 'IPv4' | 'IPv6'; port: number } {
    if (!this.local) {
      const a = this.localAddress();
      this.local = { address: a.address, port: a.port, family: this.family === 'udp4' ? 'IPv4' : 'IPv6' };
    }
    return this.local;
  }

  /** Hands one datagram to the app; counts it, and counts (never propagates) a handler's exception. */
  protected deliver(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.warming) {
      try {
        this.emit('message', msg, rinfo);
      } catch {
        // A sample the handler rejects teaches the JIT as much.
      }
      return;
    }
    const c = this.counters;
    c.datagrams++;
    c.bytes += msg.length;
    try {
      this.emit('message', msg, rinfo);
    } catch (error) {
      c.handlerErrors++;
      this.onHandlerError(error);
    }
  }

  /** The end of one read's deliveries: `batchEnd`, an exception in its listener counted like a handler's. */
  protected endBatch(): void {
    try {
      this.emit('batchEnd');
    } catch (error) {
      if (this.warming) return;
      this.counters.handlerErrors++;
      this.onHandlerError(error);
    }
  }

  /** Asks for rinfo.timestamp before start(); false when this engine cannot give it. */
  requestTimestamps(): boolean {
    return false;
  }

  /**
   * Runs `samples` through the message handlers `count` times in all (or for at most
   * `budgetMs`), uncounted, before the socket is read: the engine's delivery path and
   * the app's handlers are compiled by then. Returns the deliveries run.
   */
  warmup(samples: readonly Buffer[], count: number, budgetMs: number): number {
    if (samples.length === 0 || count <= 0) return 0;
    const end = performance.now() + budgetMs;
    this.warming = true;
    let done = 0;
    try {
      while (done < count && performance.now() < end) done += this.warmupBatch(samples, done, Math.min(64, count - done));
    } finally {
      this.warming = false;
    }
    return done;
  }

  /** Delivers `k` samples, starting at sample `from` (mod their number), as one batch. */
  protected warmupBatch(samples: readonly Buffer[], from: number, k: number): number {
    for (let i = 0; i < k; i++) {
      const msg = samples[(from + i) % samples.length]!;
      this.deliver(msg, { address: '127.0.0.1', family: 'IPv4', port: 9, size: msg.length });
    }
    this.endBatch();
    return k;
  }

  /** A promise returned by a handler rejected: counted like a throw (the worker lives on). */
  [Symbol.for('nodejs.rejection')](error: unknown): void {
    this.counters.handlerErrors++;
    this.onHandlerError(error);
  }

  /**
   * Graceful stop: keep reading until the kernel queue of this socket is empty and
   * every send has completed, then stop reading. Resolves with the bytes still
   * queued when it gave up (0 unless `timeoutMs` ran out under a sender that
   * never paused).
   */
  async drain(timeoutMs: number): Promise<{ leftBytes: number }> {
    const deadline = Date.now() + timeoutMs;
    let emptyChecks = 0;
    let left = socketMemInfo(this.fd).queueBytes;
    // Two consecutive empty readings on polls 5 ms apart: whatever the engine had
    // already taken from the kernel has been delivered by then.
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
      left = socketMemInfo(this.fd).queueBytes;
      emptyChecks = left === 0 && this.pending === 0 ? emptyChecks + 1 : 0;
      if (emptyChecks >= 2) break;
    }
    this.stopReading();
    this.emit('close');
    return { leftBytes: left };
  }
}
