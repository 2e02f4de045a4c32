/**
 * One Graphite plaintext delivery: a new TCP connection (as Etsy's graphite backend
 * makes at each flush), the text written, our side closed; delivered when the server
 * closes its side after reading it all.
 *
 * The limit is on inactivity, not on the whole attempt, so that a Graphite that reads
 * slowly but steadily is never given up on (which would send the same lines again, and
 * again): the attempt fails when `idleMs` pass without progress. Progress is the kernel
 * taking more of the text (a write drained) and, once all of it is in the kernel, what
 * the kernels hold getting less: our send queue, and on loopback the server's receive
 * queue (read from /proc/net/tcp on Linux). Since the server's receive window may hold
 * much of a batch where we cannot see it (a remote server's), the last write is in any
 * case given `idleMs` plus the time to read the batch at 10 KB/s.
 *
 * A failed or abandoned attempt resets its connection (RST): what is still in the
 * kernel's send queue is discarded, not delivered later (only what Graphite's kernel
 * already received may still be read by it). `signal` abandons the attempt (the
 * backlog's stop gave up on it): the connection is reset at once, so no socket or timer
 * outlives the stop, and the lines counted as dropped at stop are not sent after it.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

export interface GraphiteAddress {
  host: string;
  port: number;
}

export interface GraphiteSendOptions {
  /** The attempt fails after this long without progress. Default 5000. */
  idleMs?: number;
  /** Aborted: the attempt is abandoned and its socket destroyed. */
  signal?: AbortSignal;
  /** Bytes in the kernel's send queue of `sock` (undefined when it cannot be read). Default: from /proc/net/tcp. */
  sendQueue?: (sock: Socket) => number | undefined;
}

/** What is handed to the socket at a time (progress is seen at each). */
const PIECE_BYTES = 64 * 1024;
/** Bytes a second a Graphite is given, at least, to read what the kernels hold once all is written. */
const TAIL_MIN_RATE = 10 * 1024;

/**
 * What the kernel still holds of what `sock` sent: its own send queue (`tx_queue`), plus,
 * when the peer is on this host (loopback), the peer's receive queue not yet read by
 * the server (`rx_queue`), from /proc/net/tcp{,6}; undefined when `sock` is not found.
 */
export function procSendQueue(sock: Socket): number | undefined {
  const local = sock.localPort;
  const remote = sock.remotePort;
  if (local === undefined || remote === undefined) return undefined;
  let ours: number | undefined;
  let peer = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // "  sl  local_address rem_address   st tx_queue:rx_queue ..."
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const lp = parseInt(f[1]!.slice(f[1]!.lastIndexOf(':') + 1), 16);
      const rp = parseInt(f[2]!.slice(f[2]!.lastIndexOf(':') + 1), 16);
      const [tx, rx] = f[4]!.split(':').map((h) => parseInt(h, 16)) as [number, number];
      if (lp === local && rp === remote) ours = tx;
      else if (lp === remote && rp === local) peer = rx;
    }
  }
  return ours === undefined ? undefined : ours + peer;
}

/** Sends `text` over a new TCP connection; resolves when the server closed its side, rejects on an error, `idleMs` without progress, or `signal`. */
export function sendGraphite(target: GraphiteAddress, text: string, o: GraphiteSendOptions = {}): Promise<void> {
  const idleMs = o.idleMs ?? 5000;
  const sendQueue = o.sendQueue ?? procSendQueue;
  const where = `graphite ${target.host}:${target.port}`;
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(new Error(`${where}: abandoned at stop`));
      return;
    }
    const sock = connect({ host: target.host, port: target.port });
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        // A reset, not a close: what is still in our send queue is thrown away, not delivered later.
        if (sock.connecting || sock.destroyed) sock.destroy();
        else sock.resetAndDestroy();
        reject(err);
      } else resolve();
    };
    /** (Re)starts the inactivity limit. */
    const progress = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`${where}: no progress for ${idleMs} ms`)), idleMs);
      timer.unref();
    };
    const onAbort = (): void => finish(new Error(`${where}: abandoned at stop`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    progress();
    const body = Buffer.from(text, 'utf8');
    let off = 0;
    const tail = (): void => {
      // All of it is in the kernel, which may hold much of it (the server's receive
      // window): at least as long as reading that at TAIL_MIN_RATE takes; and progress
      // is what the kernels hold getting less, looked at from the first period on (a
      // Graphite that closes at once costs no read of /proc).
      const allowance = idleMs + Math.round((body.length / TAIL_MIN_RATE) * 1000);
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`${where}: no progress for ${idleMs} ms`)), allowance);
      timer.unref();
      let last: number | undefined;
      poll = setInterval(
        () => {
          const now = sendQueue(sock);
          if (now === undefined) return void clearInterval(poll); // not readable here: the plain limit
          if (last !== undefined && now < last) progress();
          last = now;
        },
        Math.max(10, Math.min(250, idleMs / 4)),
      );
      poll.unref();
    };
    const writeMore = (): void => {
      while (off < body.length) {
        const piece = body.subarray(off, off + PIECE_BYTES);
        off += piece.length;
        if (!sock.write(piece)) {
          sock.once('drain', () => {
            progress();
            writeMore();
          });
          return;
        }
      }
      sock.end();
      tail();
    };
    sock.on('error', (err) => finish(new Error(`${where}: ${err.message}`)));
    sock.on('connect', () => {
      progress();
      writeMore();
    });
    sock.on('close', () => finish());
  });
}
