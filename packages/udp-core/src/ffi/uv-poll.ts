/**
 * Readable events of an fd, from the process's own libuv loop: uv_poll_* called
 * through koffi (Node exports libuv's functions to addons) with a registered koffi
 * callback that passes nothing to JavaScript. koffi.node.poll does the same but builds
 * an object with three named properties for every event, which cost about 3% of a
 * native-engine worker's CPU at 400 k datagrams/s (docs/native-engine.md). Where the
 * uv_* symbols cannot be found (or off the main thread, whose loop is not
 * uv_default_loop), it is koffi.node.poll.
 *
 * The handle's memory is a Buffer that stays reachable until libuv's close callback
 * has run: libuv writes the handle until then.
 */
import { isMainThread } from 'node:worker_threads';
import koffi, { type TypeObject } from 'koffi';
import { UV_POLL, UV_READABLE } from './kernel.js';

/** A poll of one fd for readable events: started at creation; stop/start pause it; close ends it. */
export interface ReadablePoll {
  start(): void;
  stop(): void;
  close(): void;
  /** 'uv' when libuv is called directly, 'koffi' for koffi.node.poll. */
  readonly via: 'uv' | 'koffi';
}

interface Uv {
  loop: unknown;
  handleSize: number;
  pollInit(loop: unknown, handle: Buffer, fd: number): number;
  pollStart(handle: Buffer, events: number, cb: bigint): number;
  pollStop(handle: Buffer): number;
  close(handle: Buffer, cb: bigint): void;
  /** The one close callback, registered once; it lets go of the handle's memory. */
  closeCb: bigint;
  /** uv_poll_cb: void (uv_poll_t *handle, int status, int events). */
  pollCbType: TypeObject;
}

/** Handles closed but not yet released by libuv, by address. */
const closing = new Map<number, Buffer>();
let cached: Uv | null | undefined;

/** The libuv calls, or null when they cannot be bound here. */
function uv(): Uv | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (!isMainThread) return null;
  try {
    const self = koffi.load(null);
    // Anonymous prototypes: koffi's type names are global to the process.
    const pollCbType = koffi.pointer(koffi.proto('void', ['intptr_t', 'int', 'int']));
    const closeCbType = koffi.pointer(koffi.proto('void', ['intptr_t']));
    const handleSize = Number(self.func('uv_handle_size', 'size_t', ['int'])(UV_POLL));
    const closeCb = koffi.register((handle: number) => void closing.delete(Number(handle)), closeCbType);
    cached = {
      loop: self.func('uv_default_loop', 'void *', [])(),
      handleSize,
      pollInit: self.func('uv_poll_init', 'int', ['void *', 'void *', 'int']),
      pollStart: self.func('uv_poll_start', 'int', ['void *', 'int', pollCbType]),
      pollStop: self.func('uv_poll_stop', 'int', ['void *']),
      close: self.func('uv_close', 'void', ['void *', closeCbType]),
      closeCb,
      pollCbType,
    };
  } catch {
    cached = null;
  }
  return cached;
}

/**
 * Polls `fd` for readable events, calling `onReadable` (with no arguments) for each;
 * started at once. An exception out of `onReadable` is thrown again from a
 * setImmediate, as an uncaught exception: called from libuv through koffi, it would otherwise be lost,
 * and the reader with it (a worker that stops reading but stays alive). Uncaught, it
 * ends the worker, which the supervisor restarts on the same socket, queue and all.
 */
export function pollReadable(fd: number, onReadable: () => void): ReadablePoll {
  const u = uv();
  const cb = (): void => {
    try {
      onReadable();
    } catch (err) {
      // Out of the callback first (ticks would run inside its scope, where an exception
      // is fatal to koffi.node.poll's N-API callback), and the poll closed (a thread
      // that ends with a koffi poll open takes the process down with it).
      setImmediate(() => {
        poll.close();
        throw err;
      });
    }
  };
  const poll = u ? new UvPoll(u, fd, cb) : koffiPoll(fd, cb);
  return poll;
}

class UvPoll implements ReadablePoll {
  readonly via = 'uv' as const;
  private handle: Buffer | undefined;
  private cb: bigint | undefined;

  constructor(
    private readonly u: Uv,
    fd: number,
    onReadable: () => void,
  ) {
    const cb = koffi.register(() => onReadable(), u.pollCbType);
    const handle = Buffer.alloc(u.handleSize);
    // uv_poll_init fails before it registers the handle with the loop: nothing to close then.
    const rc = u.pollInit(u.loop, handle, fd);
    if (rc !== 0) {
      koffi.unregister(cb);
      throw new Error(`uv_poll_init on fd ${fd} failed (libuv error ${rc})`);
    }
    this.handle = handle;
    this.cb = cb;
    this.start();
  }

  start(): void {
    if (!this.handle || this.cb === undefined) return;
    const rc = this.u.pollStart(this.handle, UV_READABLE, this.cb);
    if (rc !== 0) throw new Error(`uv_poll_start failed (libuv error ${rc})`);
  }

  stop(): void {
    if (this.handle) this.u.pollStop(this.handle);
  }

  close(): void {
    const handle = this.handle;
    if (!handle) return;
    this.handle = undefined;
    // libuv stops the poll at once (its callback is never called again) and writes the
    // handle until the close callback, which lets go of it.
    closing.set(Number(koffi.address(handle)), handle);
    this.u.close(handle, this.u.closeCb);
    if (this.cb !== undefined) koffi.unregister(this.cb);
    this.cb = undefined;
  }
}

interface KoffiPollHandle {
  start(opts: { readable: boolean }, cb: () => void): void;
  stop(): void;
  close(): void;
}

function koffiPoll(fd: number, onReadable: () => void): ReadablePoll {
  const poll = (koffi as unknown as { node: { poll: (fd: number, opts: { readable: boolean }, cb: () => void) => KoffiPollHandle } }).node.poll;
  const cb = (): void => onReadable();
  const h = poll(fd, { readable: true }, cb);
  return {
    via: 'koffi',
    start: () => h.start({ readable: true }, cb),
    stop: () => h.stop(),
    close: () => h.close(),
  };
}
