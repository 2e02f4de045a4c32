/** Raw HTTP over net.Socket: for requests fetch() refuses to send. */
import net from 'node:net';

export interface RawAnswer {
  /** Everything the server sent. */
  text: string;
  /** The status line's code, or undefined when the server closed without answering. */
  status: number | undefined;
  /** Whether the server closed the connection before `timeoutMs`. */
  closed: boolean;
  ms: number;
}

/**
 * Sends `data`, half-closes (unless `end` is false) and waits until the server closes
 * the connection or `timeoutMs` passes (then destroys it).
 */
export function rawRequest(port: number, data: string | Uint8Array, opts: { host?: string; end?: boolean; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, opts.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
      resolve({ text, status: m ? Number(m[1]) : undefined, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('connect', () => {
      sock.write(data);
      if (opts.end !== false) sock.end();
    });
  });
}

/** A connection kept open by the test; `closed` resolves when the server closes it. */
export interface HeldConnection {
  socket: net.Socket;
  closed: Promise<void>;
  isClosed(): boolean;
  /** What the server sent so far. */
  received(): string;
}

/** Connects to `host`:`port` (from `localAddress`, another loopback address for another client) and sends `data`. */
export function holdConnection(port: number, data: string, host = '127.0.0.1', localAddress?: string): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, ...(localAddress !== undefined ? { localAddress } : {}) });
    let isClosed = false;
    let text = '';
    const closed = new Promise<void>((r) =>
      socket.on('close', () => {
        isClosed = true;
        r();
      }),
    );
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.once('error', (err) => {
      if (!socket.remoteAddress) reject(err);
    });
    socket.on('connect', () => {
      if (data) socket.write(data);
      resolve({ socket, closed, isClosed: () => isClosed, received: () => text });
    });
  });
}
