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
  const where = `graphite ${target.host}:${target.port}`;
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(new Error(`${where}: abandoned at stop`));
      return;
    }
    const sock = connect({ host: target.host, port: target.port });
    new GraphiteAttempt(sock, where, text, o, (err) => (err ? reject(err) : resolve())).start();
  });
}

/** One delivery under way: its connection, its inactivity limit, and how much of the text the socket took. */
class GraphiteAttempt {
  private readonly sock: Socket;
  private readonly where: string;
  private readonly body: Buffer;
  private readonly idleMs: number;
  private readonly sendQueue: (sock: Socket) => number | undefined;
  private readonly signal: AbortSignal | undefined;
  /** Resolves (no error) or rejects the delivery's promise. */
  private readonly settle: (err?: Error) => void;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  /** Bytes of `body` handed to the socket. */
  private off = 0;
  private readonly onAbort = (): void => this.finish(new Error(`${this.where}: abandoned at stop`));

  constructor(sock: Socket, where: string, text: string, o: GraphiteSendOptions, settle: (err?: Error) => void) {
    this.sock = sock;
    this.where = where;
    this.idleMs = o.idleMs ?? 5000;
    this.sendQueue = o.sendQueue ?? procSendQueue;
    this.signal = o.signal;
    this.settle = settle;
    this.body = Buffer.from(text, 'utf8');
  }

  start(): void {
    const sock = this.sock;
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.progress();
    sock.on('error', (err) => this.finish(new Error(`${this.where}: ${err.message}`)));
    sock.on('connect', () => {
      this.progress();
      this.writeMore();
    });
    sock.on('close', () => this.finish());
  }

  private finish(err?: Error): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    clearInterval(this.poll);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (err) {
      // A reset, not a close: what is still in our send queue is thrown away, not delivered later.
      if (this.sock.connecting || this.sock.destroyed) this.sock.destroy();
      else this.sock.resetAndDestroy();
    }
    this.settle(err);
  }

  /** (Re)starts the inactivity limit. */
  private progress(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.finish(new Error(`${this.where}: no progress for ${this.idleMs} ms`)), this.idleMs);
    this.timer.unref();
  }

  private writeMore(): void {
    const { sock, body } = this;
    while (this.off < body.length) {
      const piece = body.subarray(this.off, this.off + PIECE_BYTES);
      this.off += piece.length;
      if (!sock.write(piece)) {
        sock.once('drain', () => {
          this.progress();
          this.writeMore();
        });
        return;
      }
    }
    sock.end();
    this.tail();
  }

  private tail(): void {
    // All of it is in the kernel, which may hold much of it (the server's receive
    // window): at least as long as reading that at TAIL_MIN_RATE takes; and progress
    // is what the kernels hold getting less, looked at from the first period on (a
    // Graphite that closes at once costs no read of /proc).
    const { sock, idleMs, sendQueue } = this;
    const allowance = idleMs + Math.round((this.body.length / TAIL_MIN_RATE) * 1000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.finish(new Error(`${this.where}: no progress for ${idleMs} ms`)), allowance);
    this.timer.unref();
    let last: number | undefined;
    this.poll = setInterval(
      () => {
        const now = sendQueue(sock);
        if (now === undefined) return void clearInterval(this.poll); // not readable here: the plain limit
        if (last !== undefined && now < last) this.progress();
        last = now;
      },
      Math.max(10, Math.min(250, idleMs / 4)),
    );
    this.poll.unref();
  }
}
