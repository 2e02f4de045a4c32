/**
 * The native probe sender behind `shardgram load --sender native` and the
 * benchmark: K source sockets made through libc, each bound to loopback (or the
 * wildcard) port 0, sending batches of prebuilt probe datagrams with sendmmsg.
 *
 * Every datagram is the exact encoding `encodeProbe` gives for its (sender, seq,
 * sentAt, pad), so echo replies parse as usual (test/native-engine.test.ts checks it). Encoding each one with protobufjs
 * costs about as much as sending it, so the probes are built once per source
 * socket and per width of the sequence number's varint, and only the sequence
 * number and the send time are written into them before each batch.
 *
 * Sends use MSG_DONTWAIT: a full send buffer (EAGAIN, ENOBUFS) makes the sender
 * back off (one event-loop turn, then 1 ms sleeps) instead of blocking the event
 * loop, which also has to read the replies. A run is bounded by a count and a time.
 */
import { performance } from 'node:perf_hooks';
import { errnoName, invalidArg, ShardgramError } from '../errors.js';
import { DEFAULTS, LIMITS, LOAD_DEFAULTS, LOAD_LIMITS } from '../defaults.js';
import { MsgArena } from '../ffi/arena.js';
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  ENOBUFS,
  IPPROTO_UDP,
  MSG_DONTWAIT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_RCVBUF,
  UDP_MAX_PAYLOAD,
} from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import { encodeSockaddr, familyOf, sourceBindAddress, type Family } from '../ffi/sockaddr.js';
import { localAddress } from '../ffi/socket.js';
import { encodeProbe } from './probe.js';

export interface NativeSenderOptions {
  /** Destination address (IPv4 or IPv6 literal). */
  address: string;
  port: number;
  /** Source sockets (source ports). Default 64. */
  sources?: number;
  /** SO_RCVBUF to request for each source socket (for replies), in bytes. */
  rcvbuf?: number;
  /** Datagrams per sendmmsg call. Default 64. */
  batch?: number;
}

export interface SendProbesOptions {
  /** Datagrams to send in all. */
  count: number;
  /** Size of the largest probe of the run in bytes (smaller sequence numbers encode a byte or two shorter). */
  size: number;
  /** Datagrams per second; 0 = as fast as possible. */
  rate?: number;
  /** Stop sending after this many ms. */
  maxDurationMs?: number;
  /** Called at every turn of the event loop the sender yields (every few ms) with the number sent so far. */
  onProgress?: (sent: number) => void;
  /** Called after each successful sendmmsg: probes firstSeq … firstSeq + n - 1 left from source socket `sender`. */
  onSent?: (firstSeq: number, n: number, sender: number) => void;
}

export interface SendPayloadsOptions {
  /** The datagrams, sent in this order over and over (at most `batch` different ones). */
  payloads: readonly Uint8Array[];
  /** Datagrams to send in all. */
  count: number;
  /** Stop sending after this many ms. */
  maxDurationMs?: number;
}

export interface SendProbesResult {
  /** Datagrams handed to the kernel, including those whose send failed (`sendErrors`). */
  sent: number;
  sendErrors: number;
  /** sendmmsg calls that returned EAGAIN/ENOBUFS and made the sender back off. */
  backoffs: number;
  sendmmsgCalls: number;
  durationMs: number;
  timedOut: boolean;
}

/** The sender gives the event loop a turn at least this often (ms): replies, timers, progress. */
const YIELD_EVERY_MS = 2;
/** Per-run memory bound for the prebuilt probes of all source sockets. */
const ARENA_BUDGET_BYTES = 64 << 20;

interface Template {
  /** Varint width of the sequence numbers it serves. */
  width: number;
  /** The probe's bytes (for sender s, sequence number of this width, sentAt, pad). */
  bytes: Buffer;
  seqOffset: number;
  sentAtOffset: number;
}

function varintWidth(v: number): number {
  let w = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    w++;
  }
  return w;
}

/** Offsets of the bytes in which two equally long encodings differ: [first, last]. */
function diffRange(a: Uint8Array, b: Uint8Array): [number, number] {
  if (a.length !== b.length) throw new Error('probe templates differ in length');
  let first = -1;
  let last = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return [first, last];
}

// Two send times whose little-endian encodings differ in their first and last bytes.
const SENT_AT_A = 1.5; // 0x3ff8000000000000
const SENT_AT_B = -1.0000000000000002; // 0xbff0000000000001

/**
 * The probe of `sender` with a sequence number of varint width `width`, and where
 * in it the sequence number and the send time are: found by encoding it twice with
 * values that differ in every byte, so no assumption about protobufjs' field order.
 */
function buildTemplate(sender: number, width: number, pad: Uint8Array): Template {
  const lo = width === 1 ? 1 : 2 ** (7 * (width - 1));
  const hi = 2 ** (7 * width) - 1;
  const a = Buffer.from(encodeProbe({ sender, seq: lo, sentAt: SENT_AT_A, pad }));
  const b = Buffer.from(encodeProbe({ sender, seq: hi, sentAt: SENT_AT_A, pad }));
  const c = Buffer.from(encodeProbe({ sender, seq: lo, sentAt: SENT_AT_B, pad }));
  const [s0, s1] = diffRange(a, b);
  const [t0, t1] = diffRange(a, c);
  if (s1 - s0 + 1 !== width || t1 - t0 + 1 !== 8) throw new Error(`unexpected probe layout (seq ${s0}-${s1}, sentAt ${t0}-${t1})`);
  return { width, bytes: a, seqOffset: s0, sentAtOffset: t0 };
}

function writeVarint(buf: Buffer, offset: number, v: number, width: number): void {
  for (let i = 0; i < width - 1; i++) {
    buf[offset + i] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[offset + width - 1] = v;
}

/** `v` when it is a whole number within the option's LOAD_LIMITS range, else ERR_SHARDGRAM_INVALID_ARG with the range: runLoad's check and the sender's. */
export function checkLoadOption(name: keyof typeof LOAD_LIMITS, v: number): number {
  const { min, max } = LOAD_LIMITS[name];
  if (!Number.isInteger(v) || v < min || v > max) throw invalidArg(name, v, `an integer from ${min} to ${max}`);
  return v;
}

/** Pads so that the largest probe of the run is `size` bytes (as `runLoad` always has). */
export function probePad(size: number, sources: number, count: number): Buffer {
  const bare = encodeProbe({ sender: sources - 1, seq: count - 1, sentAt: 1.5 }).length;
  let padLen = Math.max(0, size - bare - 2);
  if (padLen > 127) padLen = Math.max(0, size - bare - 3);
  if (padLen > 16383) padLen = Math.max(0, size - bare - 4);
  return Buffer.alloc(padLen, 0x2e);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export class NativeSender {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  /** The source sockets' fds, in sender order (probe.sender = index). */
  readonly fds: number[] = [];
  readonly batch: number;
  private readonly dest: Buffer;
  private owned = true;
  private closed = false;

  constructor(opts: NativeSenderOptions) {
    const family = familyOf(opts.address);
    if (!family) throw invalidArg('address', opts.address, 'an IPv4 or IPv6 literal');
    const { port: P, sources: S } = LOAD_LIMITS;
    const B = LIMITS.batch;
    if (!Number.isInteger(opts.port) || opts.port < P.min || opts.port > P.max) throw invalidArg('port', opts.port, `an integer from ${P.min} to ${P.max}`);
    const sources = opts.sources ?? LOAD_DEFAULTS.sources;
    if (!Number.isInteger(sources) || sources < S.min || sources > S.max) throw invalidArg('sources', sources, `an integer from ${S.min} to ${S.max}`);
    const batch = opts.batch ?? DEFAULTS.batch;
    if (!Number.isInteger(batch) || batch < B.min || batch > B.max) throw invalidArg('batch', batch, `an integer from ${B.min} to ${B.max}`);
    this.family = family;
    this.address = opts.address;
    this.port = opts.port;
    this.batch = batch;
    this.dest = encodeSockaddr(opts.address, opts.port).buf;
    const local = encodeSockaddr(sourceBindAddress(opts.address), 0);
    const c = libc();
    try {
      for (let i = 0; i < sources; i++) {
        const fd = c.socket(family === 'udp4' ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        if (fd < 0) throw this.syscallError('socket', c.errno());
        this.fds.push(fd);
        if (opts.rcvbuf !== undefined) {
          const v = Buffer.alloc(4);
          v.writeInt32LE(opts.rcvbuf);
          c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, v, 4); // best effort: capped by net.core.rmem_max
        }
        if (c.bind(fd, local.buf, local.len) !== 0) throw this.syscallError('bind', c.errno());
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private syscallError(syscall: string, e: number): ShardgramError {
    return new ShardgramError('ERR_SHARDGRAM_SYSCALL', `${syscall} for a load source socket failed: ${errnoName(e)} (errno ${e})`, { errno: e, syscall });
  }

  /** Local ports of the source sockets. */
  localPorts(): number[] {
    return this.fds.map((fd) => localAddress(fd).port);
  }

  /**
   * Hands the fds over (e.g. to dgram sockets that read the replies and close them):
   * `close()` then leaves them open.
   */
  releaseFds(): number[] {
    this.owned = false;
    return this.fds;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) for (const fd of this.fds) libc().close(fd);
  }

  /**
   * Sends `count` prebuilt datagrams (e.g. StatsD lines for a benchmark) in batches of
   * `payloads`, round-robin over the source sockets, as fast as allowed: the same
   * sendmmsg arena and back-off as `sendProbes`, without the probe encoding.
   */
  async sendPayloads(opts: SendPayloadsOptions): Promise<SendProbesResult> {
    const { payloads, count } = opts;
    if (!Number.isInteger(count) || count < 1 || count > 2 ** 32 - 1) throw invalidArg('count', count, 'a positive integer');
    if (payloads.length < 1 || payloads.length > this.batch) throw invalidArg('payloads', payloads.length, `1 to ${this.batch} datagrams`);
    const slotSize = Math.max(...payloads.map((p) => p.length));
    if (slotSize < 1 || slotSize > UDP_MAX_PAYLOAD) throw invalidArg('payload size', slotSize, `1 to ${UDP_MAX_PAYLOAD} bytes`);
    const maxDurationMs = checkLoadOption('maxDurationMs', opts.maxDurationMs ?? LOAD_DEFAULTS.maxDurationMs);
    const n = payloads.length;
    const arena = new MsgArena(n, slotSize);
    payloads.forEach((p, i) => {
      arena.memory.set(p, arena.dataOffset(i));
      this.dest.copy(arena.memory, arena.nameOffset(i));
      arena.setForSend(i, p.length, this.dest.length);
    });
    return this.drive(count, maxDurationMs, 0, (_sent, allowed) => ({ mem: arena.memory, n: Math.min(n, allowed) }), {});
  }

  /** Sends `count` probes round-robin over the source sockets, as fast as allowed. */
  async sendProbes(opts: SendProbesOptions): Promise<SendProbesResult> {
    const count = opts.count;
    if (!Number.isInteger(count) || count < 1 || count > 2 ** 32 - 1) throw invalidArg('count', count, 'a positive integer');
    // runLoad's range: at least a probe's header, so that every probe is the size asked.
    checkLoadOption('size', opts.size);
    const rate = opts.rate ?? LOAD_DEFAULTS.rate;
    const maxDurationMs = checkLoadOption('maxDurationMs', opts.maxDurationMs ?? LOAD_DEFAULTS.maxDurationMs);
    const sources = this.fds.length;
    const pad = probePad(opts.size, sources, count);
    const maxWidth = varintWidth(count - 1);
    // The largest probe of the run bounds the slot size.
    const slotSize = buildTemplate(sources - 1, maxWidth, pad).bytes.length;
    // One arena per source socket, so that the sender field never needs rewriting;
    // fewer slots per call when many large sources would take too much memory.
    if (sources * (slotSize + 128) > ARENA_BUDGET_BYTES) {
      throw invalidArg(
        'sources × size',
        `${sources} × ${opts.size} bytes`,
        `at most ${ARENA_BUDGET_BYTES / 1048576} MiB of send buffers (fewer sources or smaller datagrams)`,
      );
    }
    const batch = Math.max(1, Math.min(this.batch, count, Math.floor(ARENA_BUDGET_BYTES / (sources * (slotSize + 128)))));
    const arenas = this.fds.map(() => new MsgArena(batch, slotSize));
    const templates: (Template | undefined)[] = new Array<Template | undefined>(sources);
    let width = 0;
    const seqOffsets = new Int32Array(sources);
    const sentAtOffsets = new Int32Array(sources);
    const prepare = (w: number): void => {
      width = w;
      for (let s = 0; s < sources; s++) {
        const t = buildTemplate(s, w, pad);
        templates[s] = t;
        seqOffsets[s] = t.seqOffset;
        sentAtOffsets[s] = t.sentAtOffset;
        const a = arenas[s]!;
        for (let i = 0; i < batch; i++) {
          t.bytes.copy(a.memory, a.dataOffset(i));
          this.dest.copy(a.memory, a.nameOffset(i));
          a.setForSend(i, t.bytes.length, this.dest.length);
        }
      }
    };

    let nextWidthAt = 0; // first seq that needs a wider varint
    return this.drive(
      count,
      maxDurationMs,
      rate,
      (sent, allowed, now, source) => {
        if (sent >= nextWidthAt) {
          prepare(varintWidth(sent));
          nextWidthAt = width >= 5 ? Infinity : 2 ** (7 * width);
        }
        // A batch never straddles a change of varint width.
        const n = Math.min(allowed, batch, nextWidthAt - sent);
        const a = arenas[source]!;
        const mem = a.memory;
        if (sent === 0) {
          // Sequence number 0 is a default value that protobufjs leaves out: probe 0 goes
          // alone, encoded by encodeProbe itself, and the template is put back afterwards.
          const first = Buffer.from(encodeProbe({ sender: source, seq: 0, sentAt: now, pad }));
          first.copy(mem, a.dataOffset(0));
          a.setForSend(0, first.length, this.dest.length);
          return {
            mem,
            n: 1,
            after: () => {
              const t = templates[source]!;
              t.bytes.copy(mem, a.dataOffset(0));
              a.setForSend(0, t.bytes.length, this.dest.length);
            },
          };
        }
        const so = seqOffsets[source]!;
        const to = sentAtOffsets[source]!;
        for (let i = 0; i < n; i++) {
          const d = a.dataOffset(i);
          writeVarint(mem, d + so, sent + i, width);
          mem.writeDoubleLE(now, d + to);
        }
        return { mem, n };
      },
      opts,
    );
  }

  /**
   * The one send loop: turns of at most YIELD_EVERY_MS (replies, timers and progress run
   * between them), an optional rate, a back-off while the send buffer is full, and a
   * time bound. `batchOf` fills the next batch for `source` (at most `allowed` datagrams).
   */
  private async drive(
    count: number,
    maxDurationMs: number,
    rate: number,
    batchOf: (sent: number, allowed: number, now: number, source: number) => { mem: Buffer; n: number; after?: () => void },
    hooks: { onProgress?: (sent: number) => void; onSent?: (first: number, n: number, source: number) => void },
  ): Promise<SendProbesResult> {
    const c = libc();
    const fds = this.fds;
    const sources = fds.length;
    const start = performance.now();
    let sent = 0;
    let sendErrors = 0;
    let backoffs = 0;
    let calls = 0;
    let timedOut = false;
    let source = 0;
    let failStreak = 0;
    while (sent < count) {
      const turnStart = performance.now();
      if (turnStart - start > maxDurationMs) {
        timedOut = true;
        break;
      }
      hooks.onProgress?.(sent);
      let now = turnStart;
      let wait = 0;
      while (sent < count && now - turnStart < YIELD_EVERY_MS) {
        let allowed = count - sent;
        if (rate > 0) {
          allowed = Math.min(allowed, Math.floor(((now - start) / 1000) * rate) - sent + 1);
          if (allowed <= 0) {
            wait = Math.max(1, Math.ceil(((sent + 1) / rate) * 1000 - (now - start)));
            break;
          }
        }
        const b = batchOf(sent, allowed, now, source);
        calls++;
        const r = c.sendmmsg(fds[source]!, b.mem, b.n, MSG_DONTWAIT);
        b.after?.();
        if (r > 0) {
          hooks.onSent?.(sent, r, source);
          sent += r;
          failStreak = 0;
          if (r === b.n) source = source + 1 === sources ? 0 : source + 1;
        } else {
          const e = c.errno();
          if (e === EAGAIN || e === ENOBUFS || e === EINTR) {
            // The send buffer is full: let the kernel (and the receiver) catch up.
            backoffs++;
            failStreak++;
            wait = failStreak > 2 ? 1 : 0;
            if (failStreak > 1) break;
          } else {
            // This datagram cannot be sent (e.g. EPERM from a firewall): count it and go on.
            hooks.onSent?.(sent, 1, source);
            sendErrors++;
            sent++;
            source = source + 1 === sources ? 0 : source + 1;
          }
        }
        now = performance.now();
      }
      // Let replies, timers and progress run; with a rate limit or a full buffer, wait.
      // Report before yielding: replies handled in the pause must not outrun `sent`.
      hooks.onProgress?.(sent);
      if (wait > 0) await sleep(wait);
      else await turn();
    }
    hooks.onProgress?.(sent);
    return { sent, sendErrors, backoffs, sendmmsgCalls: calls, durationMs: performance.now() - start, timedOut };
  }
}
