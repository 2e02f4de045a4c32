/**
 * Receive buffers raised for a while: during a change of the group (a hand-over, a
 * reload, a resize) and while a socket waits for a worker (a start, a restart), so
 * that a worker starting cold, or a machine busy starting processes, finds its queue
 * longer rather than full.
 *
 * Raises overlap (a worker restarting during a reload; a takeover's raise and its new
 * workers' starts), so each socket's raises are counted, by its inode (one socket may
 * have several fds here): the buffer goes back to its own size, the one it had before
 * the first raise, only when the last raise is let go. And only once the socket's queue
 * fits in half of it again: the kernel admits a datagram only while the queue is within
 * the buffer, so lowering it under a longer backlog would drop whatever arrives next.
 *
 * The count lives in a BufferRaises, which the service's Group owns: the group's own
 * raises (a change, a brace, a slot waiting for its worker) and the new side of a
 * takeover's (through the supervisor) all go through that one object.
 */
import { RCVBUF_DOUBLING, SOL_SOCKET, SO_RCVBUF } from '../ffi/kernel.js';
import { getIntOption, setReceiveBuffer, socketMemInfo } from '../ffi/socket.js';
import { DEFAULTS } from '../defaults.js';

/** Receive buffer each socket gets for the length of a change. */
export const CHANGE_RCVBUF = DEFAULTS.changeRcvbuf;
/** How often a raised buffer's queue is looked at, until it fits the size to go back to. */
const LOWER_POLL_MS = 20;
/** A queue still longer than that after this long: the buffer goes back anyway (by default). */
const LOWER_GIVE_UP_MS = 60_000;

/** A socket whose buffer may be raised. */
export interface RaisedSocket {
  fd: number;
  /** Tells sockets apart whatever fd they are reached through. */
  inode: number;
  /** Its own size (as asked: half what the kernel reports), when known better than from its size now (a hand-over's sockets come raised). */
  own?: number;
  /** Whether the fd is still this socket's (a closed one's number may be reused): default yes. */
  stillOpen?(): boolean;
}

/** How a raise is let go. */
export interface LetGo {
  /** Lower at once, queue or not, after this long (default 60 s). */
  giveUpMs?: number;
  /** Leave the buffer as it is (another process, which raised it too, puts it back). */
  keep?: boolean;
  /** Keep the process alive until it is done (by default the wait does not hold an exit). */
  ref?: boolean;
}

/** One socket's raises now in force. */
interface Held {
  holds: number;
  own: number;
}

/** The raises in force on a service's sockets, counted by socket inode. */
export class BufferRaises {
  private readonly held = new Map<number, Held>();

  /**
   * Raises the receive buffers of `socks` to at least `bytes` (SO_RCVBUFFORCE where the
   * process may, else capped by net.core.rmem_max; 0 raises nothing). Returns how to let
   * the raise go (once; see LetGo): a socket no other raise holds goes back to its own
   * size once its queue fits; the promise resolves when every socket is done.
   */
  raise(socks: readonly RaisedSocket[], bytes: number): (how?: LetGo) => Promise<void> {
    if (bytes <= 0) return () => Promise.resolve();
    const held = this.held;
    const mine = socks.map((s) => {
      const now = getIntOption(s.fd, SOL_SOCKET, SO_RCVBUF) / RCVBUF_DOUBLING;
      let h = held.get(s.inode);
      if (!h) held.set(s.inode, (h = { holds: 0, own: s.own ?? now }));
      else if (s.own !== undefined) h.own = s.own;
      h.holds++;
      if (now < bytes) setReceiveBuffer(s.fd, bytes);
      return { sock: s, h };
    });
    let done: Promise<void> | undefined;
    return (how = {}) => (done ??= this.letGo(mine, how));
  }

  /**
   * Ends every raise of `socks` at once, whoever holds it: each buffer goes back to its
   * own size now, queue or not (a stop that leaves the sockets to a service manager:
   * the next service would take a raised size for the socket's own).
   */
  lowerNow(socks: readonly RaisedSocket[]): void {
    for (const s of socks) {
      const h = this.held.get(s.inode);
      if (!h) continue;
      this.held.delete(s.inode);
      if (s.stillOpen?.() ?? true) setReceiveBuffer(s.fd, h.own);
    }
  }

  private letGo(mine: { sock: RaisedSocket; h: Held }[], how: LetGo): Promise<void> {
    const held = this.held;
    let pending = mine.filter(({ sock, h }) => {
      if (--h.holds > 0 || held.get(sock.inode) !== h) return false;
      if (how.keep || !(sock.stillOpen?.() ?? true)) {
        held.delete(sock.inode);
        return false;
      }
      return true;
    });
    const giveUpAt = Date.now() + (how.giveUpMs ?? LOWER_GIVE_UP_MS);
    return new Promise<void>((resolve) => {
      const tick = (): void => {
        const late = Date.now() >= giveUpAt;
        pending = pending.filter(({ sock, h }) => {
          // Raised again meanwhile, or forgotten (see lowerNow): no longer ours to lower.
          if (h.holds > 0 || held.get(sock.inode) !== h) return false;
          if (!(sock.stillOpen?.() ?? true)) {
            held.delete(sock.inode);
            return false;
          }
          // The kernel's buffer is twice the size asked for; half of it leaves room for what arrives next.
          if (!late && socketMemInfo(sock.fd).queueBytes > h.own) return true;
          setReceiveBuffer(sock.fd, h.own);
          held.delete(sock.inode);
          return false;
        });
        if (pending.length === 0) resolve();
        else {
          const t = setTimeout(tick, LOWER_POLL_MS);
          if (!how.ref) t.unref();
        }
      };
      tick();
    });
  }
}
