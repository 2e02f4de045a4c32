/**
 * The native engine: batched recvmmsg/sendmmsg through koffi on the worker's main
 * thread, woken through libuv (ffi/uv-poll.ts) so that the event loop is never
 * blocked waiting for datagrams.
 *
 * Waking up is what costs, not the syscall (see docs/native-engine.md): a readable
 * event per datagram or two costs more than reading them. So the engine reads in
 * one of three ways, chosen after every time it finds the socket empty:
 *
 * - poll:  the socket's readable event wakes it (idle, or a trickle of traffic);
 * - paced: traffic is steady, so it does not wait for "readable" but arms a
 *          timerfd (also polled by libuv) for the time the next batches take to
 *          arrive at the rate just measured (engine/pacing.ts: at most the service's
 *          maxReadDelayUs, and short enough that the queue stays under a quarter
 *          of the receive buffer); one wake-up then reads tens of datagrams. The
 *          socket's queue absorbs the wait;
 * - busy:  the last batch came back full, so more is queued: it goes on at once,
 *          yielding to the event loop (setImmediate) every BATCHES_PER_TURN
 *          batches, so timers, IPC and stats keep running under a sender that
 *          never pauses.
 *
 * Messages are views into the receive arena: valid while the handler runs, then
 * overwritten. Keep one with `Buffer.from(msg)` (a copy). What the app sends is
 * batched for sendmmsg in send-batch.ts.
 *
 * If the app asks (AppHooks.timestamps), the socket gets SO_TIMESTAMPNS: the kernel puts
 * each datagram's receive time in a control message (SCM_TIMESTAMPNS) in that slot's
 * control buffer, and the app gets it as `rinfo.timestamp` (bigint ns since the Unix
 * epoch, computed only when read).
 */
import { performance } from 'node:perf_hooks';
import { errnoName } from '../../errors.js';
import { DEFAULTS } from '../../defaults.js';
import {
  CLOCK_MONOTONIC,
  CMSG_SPACE_TIMESPEC,
  EAGAIN,
  EINTR,
  ITIMERSPEC_SIZE,
  IT_VALUE_NSEC,
  IT_VALUE_SEC,
  MMSGHDR_SIZE,
  MMSG_HDR,
  MMSG_LEN,
  MSG_CONTROLLEN,
  MSG_CTRUNC,
  MSG_DONTWAIT,
  MSG_FLAGS,
  MSG_TRUNC,
  SOL_SOCKET,
  SO_TIMESTAMPNS,
  TFD_CLOEXEC,
  TFD_NONBLOCK,
  UDP6_MAX_PAYLOAD,
  UDP_MAX_PAYLOAD,
} from '../../ffi/kernel.js';
import { libc } from '../../ffi/libc.js';
import { encodeSockaddr } from '../../ffi/sockaddr.js';
import { localAddress } from '../../ffi/socket.js';
import type { SendCallback, SendData } from '../../app/shard-socket.js';
import { MsgArena } from '../../ffi/arena.js';
import { pollReadable, type ReadablePoll } from '../../ffi/uv-poll.js';
import { isV4, remoteInfo, SenderNames, v4Key } from './remote-info.js';
import { EngineSocket, type EngineOptions } from './base.js';
import { Pacer } from './pacing.js';
import { SendBatch } from './send-batch.js';

/** Batches per event-loop turn before yielding (64 × 16 = 1024 datagrams at the default batch). */
const BATCHES_PER_TURN = 16;
// 32-bit word indexes into one mmsghdr of the arena (see MsgArena.headerWords).
const STRIDE_WORDS = MMSGHDR_SIZE >> 2;
const FLAGS_WORD = (MMSG_HDR + MSG_FLAGS) >> 2;
const LEN_WORD = MMSG_LEN >> 2;
const CONTROLLEN_WORD = (MMSG_HDR + MSG_CONTROLLEN) >> 2;
/** Control-message room per slot: SCM_TIMESTAMPNS, and as much again for anything else the socket is set to deliver. */
const RX_CONTROL = 2 * CMSG_SPACE_TIMESPEC;

export class NativeEngineSocket extends EngineSocket {
  readonly engine = 'native' as const;
  private readonly batch: number;
  private readonly rx: MsgArena;
  private readonly rxWords: Int32Array;
  /** Readable events of the socket (started in "poll" mode only). */
  private sockPoll: ReadablePoll | undefined;
  private sockPolling = false;
  /** The pacing timer: a timerfd whose readable event libuv delivers like any other. */
  private timerFd = -1;
  private timerPoll: ReadablePoll | undefined;
  private timerArmed = false;
  /** The itimerspec handed to timerfd_settime (own ArrayBuffer: never pooled), and its 32-bit words. */
  private readonly timerSpec = Buffer.from(new ArrayBuffer(ITIMERSPEC_SIZE));
  private readonly timerWords = new Int32Array(this.timerSpec.buffer, 0, ITIMERSPEC_SIZE >> 2);
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private draining = false;
  /** Headers the last recvmmsg wrote (to reset before the next call). */
  private lastReceived: number;
  /** When the socket was last found empty, and datagrams read since then. */
  private lastDryAt = 0;
  private sinceDry = 0;
  /** How long to wait between reads under steady traffic (pacing.ts). */
  private readonly pacer: Pacer;
  /** Length of the last datagram delivered (the pacer's per-datagram memory floor). */
  private lastLen = 0;
  /** The datagrams the app sends, batched for sendmmsg. */
  private readonly sends: SendBatch;
  private flushQueued = false;
  private readonly names = new SenderNames();
  /** Per receive slot: the Buffer view last handed to the app (reused for the same length). */
  private readonly views: (Buffer | undefined)[];
  /** Datagrams whose control messages did not fit (MSG_CTRUNC): delivered without a timestamp. */
  controlTruncated = 0;
  /** Whether the kernel agreed to timestamp this socket's datagrams (when the app asked: requestTimestamps). */
  timestamps = false;
  private wantTimestamps = false;

  constructor(opts: EngineOptions) {
    super(opts);
    this.batch = opts.batch ?? DEFAULTS.batch;
    this.pacer = new Pacer(opts.fd, { maxDelayUs: opts.maxReadDelayUs, ownRcvbuf: opts.ownRcvbuf });
    const familyMax = opts.family === 'udp6' ? UDP6_MAX_PAYLOAD : UDP_MAX_PAYLOAD;
    const max = Math.min(opts.maxDatagram ?? familyMax, familyMax);
    this.rx = new MsgArena(this.batch, max, RX_CONTROL);
    this.sends = new SendBatch(opts.fd, opts.family, this.batch, familyMax, this.counters, this.onHandlerError);
    this.rxWords = this.rx.headerWords;
    this.lastReceived = this.batch;
    this.views = new Array<Buffer | undefined>(this.batch).fill(undefined);
  }

  start(): Promise<void> {
    const c = libc();
    this.timerFd = c.timerfdCreate(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (this.timerFd < 0) {
      const e = c.errno();
      return Promise.reject(new Error(`timerfd_create failed: ${errnoName(e)} (errno ${e})`));
    }
    if (this.wantTimestamps) {
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      this.timestamps = c.setsockopt(this.fd, SOL_SOCKET, SO_TIMESTAMPNS, one, 4) === 0;
    }
    this.timerPoll = pollReadable(this.timerFd, this.onTimer);
    this.sockPoll = pollReadable(this.fd, this.onReadable);
    this.sockPolling = true;
    this.lastDryAt = performance.now();
    // Anything queued before we started (e.g. across a restart) is read at once.
    this.immediate = setImmediate(this.onImmediate);
    return Promise.resolve();
  }

  private readonly onReadable = (): void => {
    if (this.draining) return;
    this.counters.wakeups++;
    this.drainSocket(-1);
  };

  private readonly onTimer = (): void => {
    // The timer stays readable until re-armed or disarmed, which drainSocket does.
    if (this.draining || this.closed) return;
    this.counters.wakeups++;
    // What the wait let queue up: with what this wake-up reads, the pacer measures the
    // kernel memory per queued datagram, which bounds the next waits.
    this.drainSocket(this.pacer.atWake(performance.now()));
  };

  private readonly onImmediate = (): void => {
    this.immediate = undefined;
    this.drainSocket(-1);
  };

  /**
   * Reads up to BATCHES_PER_TURN batches, then decides how to wait for the next ones.
   * `queued`: the socket's queued bytes just before (a paced wake-up), else -1.
   */
  private drainSocket(queued: number): void {
    if (this.closed) return;
    const before = this.sinceDry;
    this.draining = true;
    const c = libc();
    const rx = this.rx;
    const mem = rx.memory;
    const batch = this.batch;
    const fd = this.fd;
    let budget = BATCHES_PER_TURN;
    let dry = false;
    try {
      while (budget-- > 0) {
        rx.resetForReceive(this.lastReceived);
        const n = c.recvmmsg(fd, mem, batch, MSG_DONTWAIT, null);
        if (n < 0) {
          // Nothing is known about what a failed call wrote: reset every header next time.
          this.lastReceived = batch;
          const e = c.errno();
          if (e === EINTR) continue;
          if (e !== EAGAIN) this.emit('error', new Error(`recvmmsg on fd ${fd} failed: ${errnoName(e)} (errno ${e})`));
          dry = true;
          break;
        }
        this.lastReceived = n;
        this.sinceDry += n;
        if (n > 0) {
          this.counters.batches++;
          this.deliverReceived(n);
          this.endBatch();
        }
        this.flushSends();
        if (this.closed) return;
        if (n < batch) {
          dry = true;
          break;
        }
      }
    } finally {
      this.draining = false;
    }
    if (this.closed) return;
    if (!dry) {
      // Still full: yield one loop turn (timers, IPC) and go on without waiting.
      this.stopSocketPoll();
      this.disarmTimer();
      this.immediate ??= setImmediate(this.onImmediate);
      return;
    }
    // Empty: measure the arrival rate since the last time it was empty, and wait accordingly.
    const now = performance.now();
    const elapsedUs = (now - this.lastDryAt) * 1000;
    const got = this.sinceDry;
    this.lastDryAt = now;
    this.sinceDry = 0;
    const perUs = elapsedUs > 0 ? got / elapsedUs : 0;
    const waitUs = this.pacer.nextWait(now, perUs, batch, got - before, queued, this.lastLen);
    if (waitUs > 0) {
      // Steady traffic: come back when the next batches have arrived (pacing.ts).
      this.stopSocketPoll();
      this.armTimer(waitUs);
    } else {
      this.disarmTimer();
      this.startSocketPoll();
    }
  }

  private startSocketPoll(): void {
    if (this.sockPolling || !this.sockPoll) return;
    this.sockPoll.start();
    this.sockPolling = true;
  }

  private stopSocketPoll(): void {
    if (!this.sockPolling) return;
    this.sockPoll?.stop();
    this.sockPolling = false;
  }

  private armTimer(us: number): void {
    const spec = this.timerSpec;
    // Waits are under a second: it_value.tv_sec stays 0; no BigInt per wake-up.
    this.timerWords[IT_VALUE_SEC >> 2] = 0;
    this.timerWords[IT_VALUE_NSEC >> 2] = Math.min(999_999_999, Math.round(us * 1000));
    if (libc().timerfdSettime(this.timerFd, 0, spec, null) === 0) {
      this.timerArmed = true;
      return;
    }
    // Cannot pace: fall back to the socket's readable event.
    this.timerArmed = false;
    this.startSocketPoll();
  }

  /** Disarms the timer and clears a pending expiry (so that its poll stops firing). */
  private disarmTimer(): void {
    if (!this.timerArmed) return;
    this.timerSpec.fill(0);
    libc().timerfdSettime(this.timerFd, 0, this.timerSpec, null);
    this.timerArmed = false;
  }

  override requestTimestamps(): boolean {
    this.wantTimestamps = true;
    return true;
  }

  /** Hands the first n messages of the receive arena to the app (their headers as recvmmsg left them). */
  private deliverReceived(n: number): void {
    const rx = this.rx;
    const words = this.rxWords;
    const mem = rx.memory;
    const views = this.views;
    const top = this.warming ? undefined : this.topSenders;
    // Datagrams in a row from one IPv4 sender (a burst, one sendmmsg batch) go to the
    // top-senders sketch as one offer of their number: the sketch's counts are the same.
    let runAddr = -1;
    let runPort = -1;
    let run = 0;
    try {
      for (let i = 0, w = 0; i < n; i++, w += STRIDE_WORDS) {
        const flags = words[w + FLAGS_WORD]!;
        if (flags & MSG_TRUNC) {
          this.counters.truncated++;
          continue;
        }
        if (flags & MSG_CTRUNC) this.controlTruncated++;
        // The receive time, or -1 seconds when there is none.
        rx.readTimestamp(i, words[w + CONTROLLEN_WORD]!);
        const len = words[w + LEN_WORD]!;
        // The slot's view from last time if the length is the same (a hot stream's usually
        // is): no Buffer is made per datagram. A view is only valid while its handler runs.
        let view = views[i];
        if (view === undefined || view.length !== len) views[i] = view = Buffer.from(mem.buffer, mem.byteOffset + rx.dataOffset(i), len);
        const nameOff = rx.nameOffset(i);
        // IPv4 by the address's number: no string per datagram for the sender's name or the top-senders sketch.
        const v4addr = isV4(mem, nameOff) ? v4Key(mem, nameOff) : -1;
        const info = remoteInfo(mem, nameOff, v4addr, len, this.names, rx.tsSec, rx.tsNsec);
        if (top) {
          if (v4addr >= 0 && v4addr === runAddr && info.port === runPort) run++;
          else {
            if (run > 0) top.offerV4(runAddr, runPort, run);
            run = 0;
            if (v4addr >= 0) {
              runAddr = v4addr;
              runPort = info.port;
              run = 1;
            } else top.offer(info.address, info.port, 'IPv6');
          }
        }
        this.deliver(view, info);
      }
    } finally {
      if (run > 0) top?.offerV4(runAddr, runPort, run);
    }
    if (n > 0) this.lastLen = words[(n - 1) * STRIDE_WORDS + LEN_WORD]!;
  }

  /**
   * Warm-up: the samples are laid out in the receive arena as recvmmsg would leave
   * them (length, 127.0.0.1:9, an SCM_TIMESTAMPNS of now) and go through the same
   * delivery loop as real datagrams. Only called before the socket is read.
   */
  protected override warmupBatch(samples: readonly Buffer[], from: number, k: number): number {
    const rx = this.rx;
    const n = Math.min(k, this.batch);
    const now = Date.now();
    const lo = encodeSockaddr('127.0.0.1', 9).buf;
    for (let i = 0; i < n; i++) rx.layOutReceived(i, samples[(from + i) % samples.length]!, lo, this.wantTimestamps ? now : undefined);
    this.deliverReceived(n);
    this.endBatch();
    // recvmmsg must find every header as the arena set it up.
    rx.resetForReceive(this.batch);
    this.lastReceived = this.batch;
    return n;
  }

  send(data: SendData, port: number, address: string, callback?: SendCallback): void {
    if (this.warming) return void (callback && process.nextTick(callback, null, 0)); // warm-up replies go nowhere
    if (this.closed) return void this.sends.fail(new Error('send on a closed shardgram socket'), callback);
    this.sends.add(data, port, address, callback);
    this.pending = this.sends.size;
    // Inside a drain the batch is flushed after the handlers; otherwise at the end of this tick.
    if (!this.draining && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flushSends();
      });
    }
  }

  /** Sends what is batched (sendmmsg); nothing is pending then. */
  private flushSends(): void {
    this.sends.flush();
    this.pending = 0;
  }

  protected localAddress(): { address: string; port: number } {
    return localAddress(this.fd);
  }

  protected stopReading(): void {
    this.closed = true;
    this.flushSends();
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.sockPoll?.close();
    this.sockPoll = undefined;
    this.sockPolling = false;
    this.timerPoll?.close();
    this.timerPoll = undefined;
    if (this.timerFd >= 0) libc().close(this.timerFd);
    this.timerFd = -1;
    this.timerArmed = false;
    libc().close(this.fd);
  }
}
