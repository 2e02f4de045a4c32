/**
 * Receive buffers raised for a while: during a change of the group (a hand-over, a
 * reload, a resize) and while a socket waits for a worker (a start, a restart), so
 * that a worker starting cold, or a machine busy starting processes, finds its queue
 * longer rather than full.
 *
 * Putting a buffer back is deferred until the socket's queue fits in it again: the
 * kernel admits a datagram only while the queue is within the buffer, so lowering it
 * under a longer backlog would drop every arrival until the backlog drained.
 */
import { SOL_SOCKET, SO_RCVBUF } from '../ffi/kernel.js';
import { getIntOption, setReceiveBuffer, socketMemInfo } from '../ffi/socket.js';

/** Receive buffer each socket gets for the length of a change. */
export const CHANGE_RCVBUF = 8 * 1024 * 1024;
/** How often a raised buffer's queue is looked at, until it fits the size to go back to. */
const LOWER_POLL_MS = 20;
/** A queue still longer than that after this long: the buffer goes back anyway (by default). */
const LOWER_GIVE_UP_MS = 60_000;

/** A socket whose buffer may be raised. */
export interface RaisedSocket {
  fd: number;
  /** The size to go back to (as asked: half what the kernel reports); default: its size now. */
  own?: number;
  /** Whether the fd is still this socket's (a closed one's number may be reused): default yes. */
  stillOpen?(): boolean;
}

/**
 * Raises the receive buffers of `socks` to at least `bytes` (SO_RCVBUFFORCE where
 * the process may, else capped by net.core.rmem_max; 0 raises nothing). Returns the
 * undo: each buffer goes back to its own size once its queue holds no more than half
 * of it, or after `giveUpMs` at the latest; it resolves when all have, or were closed.
 */
export function raiseBuffers(socks: readonly RaisedSocket[], bytes: number): (giveUpMs?: number) => Promise<void> {
  if (bytes <= 0) return () => Promise.resolve();
  const targets = socks.flatMap((s) => {
    const now = getIntOption(s.fd, SOL_SOCKET, SO_RCVBUF) / 2;
    if (now < bytes) setReceiveBuffer(s.fd, bytes);
    const own = s.own ?? now;
    return own < bytes ? [{ fd: s.fd, own, stillOpen: s.stillOpen ?? (() => true) }] : [];
  });
  let undo: Promise<void> | undefined;
  return (giveUpMs = LOWER_GIVE_UP_MS) => (undo ??= lowerWhenDrained(targets, giveUpMs));
}

function lowerWhenDrained(pending: { fd: number; own: number; stillOpen(): boolean }[], giveUpMs: number): Promise<void> {
  const giveUpAt = Date.now() + giveUpMs;
  return new Promise<void>((resolve) => {
    const tick = (): void => {
      const late = Date.now() >= giveUpAt;
      pending = pending.filter((t) => {
        if (!t.stillOpen()) return false;
        // The kernel's buffer is twice the size asked for; half of it leaves room for what arrives next.
        if (!late && socketMemInfo(t.fd).queueBytes > t.own) return true;
        setReceiveBuffer(t.fd, t.own);
        return false;
      });
      if (pending.length === 0) resolve();
      else setTimeout(tick, LOWER_POLL_MS).unref();
    };
    tick();
  });
}
