/**
 * One Graphite plaintext delivery: a new TCP connection (as Etsy's graphite backend
 * makes at each flush), the text written, our side closed; delivered when the server
 * closes its side after reading it all.
 *
 * The limit is on inactivity, not on the whole attempt, so that a Graphite that reads
 * slowly but steadily is never given up on (which would send the same lines again, and
 * again): the attempt fails when `idleMs` pass without progress. Progress is the kernel
 * taking more of the text (a write drained) and, once all of it is in the kernel's send
 * queue, that queue getting shorter (its length read from /proc/net/tcp on Linux; where
 * it cannot be read, the server must close within `idleMs` of the last write).
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

/** The `tx_queue` of the TCP socket from local port `local` to remote port `remote`, from /proc/net/tcp{,6}; undefined when not found. */
export function procSendQueue(sock: Socket): number | undefined {
  const local = sock.localPort;
  const remote = sock.remotePort;
  if (local === undefined || remote === undefined) return undefined;
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
      if (lp !== local || rp !== remote) continue;
      const tx = parseInt(f[4]!.split(':')[0]!, 16);
      return Number.isFinite(tx) ? tx : undefined;
    }
  }
  return undefined;
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
      // All of it is in the kernel: progress is its send queue getting shorter.
      let last = sendQueue(sock);
      if (last === undefined) return;
      poll = setInterval(
        () => {
          const now = sendQueue(sock);
          if (now !== undefined && now < last!) progress();
          if (now !== undefined) last = now;
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
