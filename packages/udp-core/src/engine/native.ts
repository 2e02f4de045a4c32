/**
 * The native engine: batched recvmmsg/sendmmsg through koffi on the worker's main
 * thread, woken by a libuv poll on the fd.
 *
 * Waking up is what costs (see docs/architecture.md): a readable event starts a
 * drain that calls recvmmsg(MSG_DONTWAIT) back to back while batches come back
 * full, and returns to the poll only when the socket runs dry. A drain yields to
 * the event loop (setImmediate) after a bounded number of batches, so timers, IPC
 * and stats keep running under a sender that never pauses.
 *
 * Messages are views into the receive arena: valid while the handler runs, then
 * overwritten. Keep one with `Buffer.from(msg)` (a copy).
 */
import koffi from 'koffi';
import { errnoName } from '../errors.js';
import {
  AF_INET, MMSGHDR_SIZE, MMSG_HDR, MMSG_LEN, MSG_DONTWAIT, MSG_FLAGS, MSG_TRUNC, SIN6_ADDR, SIN_ADDR, SIN_FAMILY, SIN_PORT,
  SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE, UDP_MAX_PAYLOAD,
} from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import { decodeSockaddr, encodeSockaddr } from '../ffi/sockaddr.js';
import { localAddress } from '../ffi/socket.js';
import type { RemoteInfo, SendCallback, SendData } from '../shard-socket.js';
import { MsgArena } from './arena.js';
import { EngineSocket, type EngineOptions } from './base.js';

const EAGAIN = 11;
const EINTR = 4;
/** Batches per event-loop turn before yielding (64 × 16 = 1024 datagrams at the default batch). */
const BATCHES_PER_TURN = 16;
const ADDRESS_CACHE_MAX = 4096;

interface PollHandle {
  start(opts: { readable: boolean }, cb: () => void): void;
  stop(): void;
  close(): void;
}

export class NativeEngineSocket extends EngineSocket {
  readonly engine = 'native' as const;
  private readonly batch: number;
  private readonly rx: MsgArena;
  private readonly tx: MsgArena;
  private readonly rxWords: Int32Array;
  private poll: PollHandle | undefined;
  private polling = false;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private draining = false;
  private txCount = 0;
  private txCallbacks: (SendCallback | undefined)[];
  private flushQueued = false;
  private readonly names = new Map<number | string, string>();
  private readonly sendNames = new Map<string, Buffer>();

  constructor(opts: EngineOptions) {
    super(opts);
    this.batch = opts.batch ?? 64;
    const max = opts.maxDatagram ?? UDP_MAX_PAYLOAD;
    this.rx = new MsgArena(this.batch, max);
    this.tx = new MsgArena(this.batch, UDP_MAX_PAYLOAD);
    // Aligned 32-bit view of the receive headers (the arena's memory has its own ArrayBuffer).
    this.rxWords = new Int32Array(this.rx.memory.buffer, this.rx.memory.byteOffset, this.rx.headers.length / 4);
    this.txCallbacks = new Array<SendCallback | undefined>(this.batch);
  }

  start(): Promise<void> {
    const poll = (koffi as unknown as { node: { poll(fd: number, opts: { readable: boolean }, cb: () => void): PollHandle } }).node.poll(
      this.fd, { readable: true }, this.onReadable,
    );
    this.poll = poll;
    this.polling = true;
    // Anything queued before we started (e.g. across a restart) is read at once.
    this.immediate = setImmediate(this.drainSocket);
    return Promise.resolve();
  }

  private readonly onReadable = (): void => {
    if (!this.draining) this.drainSocket();
  };

  private readonly drainSocket = (): void => {
    this.immediate = undefined;
    if (this.closed) return;
    this.draining = true;
    const c = libc();
    const rx = this.rx;
    const words = this.rxWords;
    const mem = rx.memory;
    const batch = this.batch;
    let budget = BATCHES_PER_TURN;
    let dry = false;
    try {
      while (budget-- > 0) {
        rx.resetForReceive(batch);
        const n = c.recvmmsg(this.fd, mem, batch, MSG_DONTWAIT, null);
        if (n < 0) {
          const e = c.errno();
          if (e === EINTR) continue;
          if (e !== EAGAIN) this.emit('error', new Error(`recvmmsg on fd ${this.fd} failed: ${errnoName(e)} (errno ${e})`));
          dry = true;
          break;
        }
        this.counters.batches++;
        for (let i = 0; i < n; i++) {
          const w = (i * MMSGHDR_SIZE) >> 2;
          if (words[w + ((MMSG_HDR + MSG_FLAGS) >> 2)]! & MSG_TRUNC) {
            this.counters.truncated++;
            continue;
          }
          const len = words[w + (MMSG_LEN >> 2)]!;
          const off = rx.dataOffset(i);
          this.deliver(Buffer.from(mem.buffer, mem.byteOffset + off, len), this.remote(rx.nameOffset(i), len));
        }
        if (this.txCount) this.flushSends();
        if (n < batch) {
          dry = true;
          break;
        }
      }
    } finally {
      this.draining = false;
    }
    if (this.closed) return;
    if (dry) {
      if (!this.polling) {
        this.poll?.start({ readable: true }, this.onReadable);
        this.polling = true;
      }
    } else {
      // Still full: yield one loop turn (timers, IPC) and go on without waiting for poll.
      if (this.polling) {
        this.poll?.stop();
        this.polling = false;
      }
      this.immediate = setImmediate(this.drainSocket);
    }
  };

  private remote(nameOff: number, size: number): RemoteInfo {
    const mem = this.rx.memory;
    const port = (mem[nameOff + SIN_PORT]! << 8) | mem[nameOff + SIN_PORT + 1]!;
    if (mem.readUInt16LE(nameOff + SIN_FAMILY) === AF_INET) {
      const key = mem.readUInt32LE(nameOff + SIN_ADDR);
      let address = this.names.get(key);
      if (address === undefined) {
        address = decodeSockaddr(mem, nameOff).address;
        if (this.names.size >= ADDRESS_CACHE_MAX) this.names.clear();
        this.names.set(key, address);
      }
      return { address, family: 'IPv4', port, size };
    }
    const key = mem.toString('latin1', nameOff + SIN6_ADDR, nameOff + SIN6_ADDR + 16);
    let address = this.names.get(key);
    if (address === undefined) {
      address = decodeSockaddr(mem, nameOff).address;
      if (this.names.size >= ADDRESS_CACHE_MAX) this.names.clear();
      this.names.set(key, address);
    }
    return { address, family: 'IPv6', port, size };
  }

  send(data: SendData, port: number, address: string, callback?: SendCallback): void {
    if (this.closed) {
      this.counters.sendErrors++;
      const err = new Error('send on a closed shardgram socket');
      if (callback) process.nextTick(callback, err);
      return;
    }
    if (this.txCount === this.batch) this.flushSends();
    const slot = this.txCount;
    const tx = this.tx;
    // Copy now: the caller's buffers (often views into the receive arena) are reused.
    let len = 0;
    const parts = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    const start = tx.dataOffset(slot);
    for (const p of parts) {
      const n = typeof p === 'string' ? Buffer.byteLength(p) : p.length;
      if (len + n > tx.slotSize) {
        this.counters.sendErrors++;
        const err = Object.assign(new Error(`send: datagram of more than ${tx.slotSize} bytes (EMSGSIZE)`), { code: 'EMSGSIZE' });
        if (callback) process.nextTick(callback, err);
        return;
      }
      if (typeof p === 'string') tx.memory.write(p, start + len);
      else tx.memory.set(p, start + len);
      len += n;
    }
    let name = this.sendNames.get(address);
    if (!name) {
      name = encodeSockaddr(address, 0).buf;
      if (this.sendNames.size >= ADDRESS_CACHE_MAX) this.sendNames.clear();
      this.sendNames.set(address, name);
    }
    const nameOff = tx.nameOffset(slot);
    name.copy(tx.memory, nameOff);
    tx.memory[nameOff + SIN_PORT] = port >> 8;
    tx.memory[nameOff + SIN_PORT + 1] = port & 0xff;
    tx.setForSend(slot, len, name.length === SOCKADDR_IN_SIZE ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
    this.txCallbacks[slot] = callback;
    this.txCount++;
    this.pending++;
    // Inside a drain the batch is flushed after the handlers; otherwise at the end of this tick.
    if (!this.draining && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        if (this.txCount) this.flushSends();
      });
    }
  }

  private flushSends(): void {
    const c = libc();
    const count = this.txCount;
    const mem = this.tx.memory;
    let off = 0;
    let spins = 0;
    while (off < count) {
      const n = c.sendmmsg(this.fd, off ? mem.subarray(off * MMSGHDR_SIZE) : mem, count - off, MSG_DONTWAIT);
      if (n > 0) {
        for (let i = off; i < off + n; i++) {
          this.counters.sends++;
          this.finishSend(i, null, this.tx.headers.readUInt32LE(i * MMSGHDR_SIZE + MMSG_LEN));
        }
        off += n;
        continue;
      }
      const e = c.errno();
      if ((e === EAGAIN || e === EINTR) && spins++ < 1000) continue;
      // The datagram at `off` failed: report it and go on with the rest.
      this.counters.sendErrors++;
      this.finishSend(off, Object.assign(new Error(`sendmmsg failed: ${errnoName(e)} (errno ${e})`), { code: errnoName(e), errno: e }), 0);
      off++;
    }
    this.txCount = 0;
  }

  private finishSend(slot: number, err: Error | null, bytes: number): void {
    this.pending--;
    const cb = this.txCallbacks[slot];
    this.txCallbacks[slot] = undefined;
    if (!cb) return;
    try {
      cb(err, bytes);
    } catch (error) {
      this.counters.handlerErrors++;
      this.onHandlerError(error);
    }
  }

  protected localAddress(): { address: string; port: number } {
    return localAddress(this.fd);
  }

  protected stopReading(): void {
    if (this.txCount) this.flushSends();
    this.closed = true;
    if (this.immediate) clearImmediate(this.immediate);
    this.poll?.close();
    this.poll = undefined;
    libc().close(this.fd);
  }
}
