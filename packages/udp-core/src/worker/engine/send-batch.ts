/**
 * The native engine's send side: the datagrams an app sends are copied into a batch
 * (an arena of mmsghdr slots, ffi/arena.ts) and go out together with one sendmmsg,
 * at the end of the tick or of the read batch whose handlers sent them; each send's
 * callback runs after, on the next tick, as dgram's do. Destination addresses are
 * encoded once and cached.
 */
import { isIP } from 'node:net';
import { errnoName } from '../../errors.js';
import { EAGAIN, EINTR, MMSGHDR_SIZE, MMSG_LEN, MSG_DONTWAIT, SIN_PORT, SOCKADDR_IN6_SIZE, SOCKADDR_IN_SIZE } from '../../ffi/kernel.js';
import { libc } from '../../ffi/libc.js';
import { MsgArena } from '../../ffi/arena.js';
import { encodeSockaddr, type Family } from '../../ffi/sockaddr.js';
import type { EngineCounters, SendCallback, SendData } from '../../app/shard-socket.js';

/** Encoded destination addresses kept (the cache starts over when full). */
const ADDRESS_CACHE_MAX = 4096;

type Done = { cb: SendCallback; err: Error | null; bytes: number };

export class SendBatch {
  private readonly tx: MsgArena;
  private readonly callbacks: (SendCallback | undefined)[];
  private readonly names = new Map<string, Buffer>();
  private count = 0;

  constructor(
    private readonly fd: number,
    private readonly family: Family,
    private readonly batch: number,
    maxDatagram: number,
    private readonly counters: EngineCounters,
    private readonly onHandlerError: (error: unknown) => void,
  ) {
    this.tx = new MsgArena(batch, maxDatagram);
    this.callbacks = new Array<SendCallback | undefined>(batch);
  }

  /**
   * Copies one datagram into the batch (sending the batch first if it is full); true if
   * it was taken, false if it was refused (the error goes to its callback and is counted).
   */
  add(data: SendData, port: number, address: string, callback?: SendCallback): boolean {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return this.fail(Object.assign(new Error(`send: port must be an integer from 1 to 65535; got ${port}`), { code: 'ERR_SOCKET_BAD_PORT' }), callback);
    }
    const want = this.family === 'udp4' ? 4 : 6;
    if (!this.names.has(address) && isIP(address) !== want) {
      return this.fail(
        Object.assign(new Error(`send: ${JSON.stringify(address)} is not an IPv${want} address (this socket is ${this.family}; no name lookup here)`), {
          code: 'ERR_INVALID_ADDRESS',
        }),
        callback,
      );
    }
    if (this.count === this.batch) this.flush();
    const slot = this.count;
    const tx = this.tx;
    // Copy now: the caller's buffers (often views into the receive arena) are reused.
    let len = 0;
    const parts = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    const start = tx.dataOffset(slot);
    for (const p of parts) {
      const n = typeof p === 'string' ? Buffer.byteLength(p) : p.length;
      if (len + n > tx.slotSize) {
        return this.fail(Object.assign(new Error(`send: datagram of more than ${tx.slotSize} bytes (EMSGSIZE)`), { code: 'EMSGSIZE' }), callback);
      }
      if (typeof p === 'string') tx.memory.write(p, start + len);
      else tx.memory.set(p, start + len);
      len += n;
    }
    let name = this.names.get(address);
    if (!name) {
      name = encodeSockaddr(address, 0).buf;
      if (this.names.size >= ADDRESS_CACHE_MAX) this.names.clear();
      this.names.set(address, name);
    }
    const nameOff = tx.nameOffset(slot);
    name.copy(tx.memory, nameOff);
    tx.memory[nameOff + SIN_PORT] = port >> 8;
    tx.memory[nameOff + SIN_PORT + 1] = port & 0xff;
    tx.setForSend(slot, len, name.length === SOCKADDR_IN_SIZE ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
    this.callbacks[slot] = callback;
    this.count++;
    return true;
  }

  /** Counts a send that cannot go and hands its error to the callback, on the next tick as dgram does; false. */
  fail(err: Error, callback: SendCallback | undefined): false {
    this.counters.sendErrors++;
    if (callback) process.nextTick(callback, err);
    return false;
  }

  /** Datagrams in the batch, not sent yet. */
  get size(): number {
    return this.count;
  }

  /** Sends every datagram in the batch. */
  flush(): void {
    const count = this.count;
    if (count === 0) return;
    const c = libc();
    const mem = this.tx.memory;
    // Results first, callbacks after: a callback may send again, into a batch that
    // must already be empty.
    const done: Done[] = [];
    let off = 0;
    let spins = 0;
    while (off < count) {
      const n = c.sendmmsg(this.fd, off ? mem.subarray(off * MMSGHDR_SIZE) : mem, count - off, MSG_DONTWAIT);
      if (n > 0) {
        for (let i = off; i < off + n; i++) {
          this.counters.sends++;
          const cb = this.callbacks[i];
          if (cb) done.push({ cb, err: null, bytes: this.tx.headers.readUInt32LE(i * MMSGHDR_SIZE + MMSG_LEN) });
        }
        off += n;
        continue;
      }
      const e = c.errno();
      if ((e === EAGAIN || e === EINTR) && spins++ < 1000) continue;
      // The datagram at `off` failed: report it and go on with the rest.
      this.counters.sendErrors++;
      const cb = this.callbacks[off];
      if (cb) done.push({ cb, err: Object.assign(new Error(`sendmmsg failed: ${errnoName(e)} (errno ${e})`), { code: errnoName(e), errno: e }), bytes: 0 });
      off++;
    }
    this.callbacks.fill(undefined, 0, count);
    this.count = 0;
    // Like dgram's: callbacks run after the current work, never inside the send loop.
    if (done.length) process.nextTick(() => this.runCallbacks(done));
  }

  private runCallbacks(done: Done[]): void {
    for (const d of done) {
      try {
        d.cb(d.err, d.bytes);
      } catch (error) {
        this.counters.handlerErrors++;
        this.onHandlerError(error);
      }
    }
  }
}
