/**
 * The control socket: how the owner changes a running service (resize, reload,
 * the upgrade hand-over). A unix stream socket, mode 0600 in a 0700 directory, and
 * every connection's peer checked with SO_PEERCRED: only this user (and root) may
 * talk to it. Another user's connection is told why, logged, and closed.
 */
import { chmodSync, renameSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { ShardgramError } from '../errors.js';
import { peerCred, type PeerCred } from '../ffi/unix.js';
import { ensurePrivateDir } from './paths.js';
import { MAX_REQUEST_BYTES, type ControlRequest, type ControlResponse } from './protocol.js';

/** What a control request can do; an op without a handler answers "not supported". */
export interface ControlHandlers {
  status(): Record<string, unknown>;
  resize?(workers: number): Promise<Record<string, unknown>>;
  reload?(): Promise<Record<string, unknown>>;
  /** A new service is starting up to take over: raise the buffers now (see Supervisor.brace). */
  prepareTakeover?(): Record<string, unknown>;
  /**
   * A new supervisor asks for the group (upgrade hand-over). The handler owns the
   * connection from then on: it passes the fds on `fd` and reads the rest itself.
   */
  takeover?(conn: net.Socket, peer: PeerCred, request: Extract<ControlRequest, { op: 'takeover' }>): void;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

const MAX_CONNECTIONS = 16;
const IDLE_TIMEOUT_MS = 30_000;

/** The fd under a net.Socket of a unix connection (libuv's pipe handle). */
export function socketFd(conn: net.Socket): number {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', 'the control connection has no file descriptor');
  return fd;
}

function reply(conn: net.Socket, r: ControlResponse): void {
  if (!conn.destroyed) conn.write(JSON.stringify(r) + '\n');
}

function parseRequest(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || typeof (v as { op?: unknown }).op !== 'string') return 'a request is a JSON object with an "op"';
  const r = v as Record<string, unknown>;
  switch (r.op) {
    case 'status':
    case 'reload':
    case 'takeover-ready':
    case 'takeover-prepare':
      return { op: r.op };
    case 'resize':
      return Number.isInteger(r.workers) ? { op: 'resize', workers: r.workers as number } : '"workers" must be a whole number';
    case 'takeover':
      return Number.isInteger(r.pid) ? { op: 'takeover', pid: r.pid as number } : '"pid" must be a whole number';
    case 'takeover-abort':
      return { op: 'takeover-abort', reason: String(r.reason ?? '') };
    default:
      return `unknown op "${String(r.op)}"`;
  }
}

/**
 * Listens on `path`. A live socket already there (another service) is an error; a
 * stale one is replaced. With `replace`, the socket is first made at a temporary
 * name and renamed over `path` (a hand-over: the old service keeps its socket
 * open until it exits, and new clients reach the new one from the rename on).
 */
export async function startControlServer(handlers: ControlHandlers, path: string, log: (line: string) => void, opts: { replace?: boolean } = {}): Promise<ControlServer> {
  ensurePrivateDir(dirname(path));
  const me = process.geteuid?.() ?? 0;
  const conns = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: false }, (conn) => {
    conns.add(conn);
    conn.once('close', () => conns.delete(conn));
    conn.on('error', () => undefined);
    let peer: PeerCred;
    try {
      peer = peerCred(socketFd(conn));
    } catch (err) {
      log(`control: cannot read a connection's credentials (${(err as Error).message}); closing it`);
      conn.destroy();
      return;
    }
    if (peer.uid !== me && peer.uid !== 0) {
      log(`control: refused a connection from uid ${peer.uid} (pid ${peer.pid}): only uid ${me} may control this service`);
      conn.end(JSON.stringify({ ok: false, code: 'ERR_SHARDGRAM_PERMISSION', error: `permission denied: this service is controlled by uid ${me} only; you are uid ${peer.uid}` } satisfies ControlResponse) + '\n');
      return;
    }
    // Idle connections are cut; one waiting for a long operation (a reload) is not.
    let inFlight = 0;
    conn.setTimeout(IDLE_TIMEOUT_MS, () => {
      if (inFlight === 0) conn.destroy();
    });
    let buf = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      if (buf.length > MAX_REQUEST_BYTES) {
        reply(conn, { ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes` });
        conn.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const req = parseRequest(line);
        if (typeof req === 'string') {
          reply(conn, { ok: false, error: req });
          continue;
        }
        if (req.op === 'takeover') {
          if (!handlers.takeover) {
            reply(conn, { ok: false, error: 'this service does not support takeover' });
            continue;
          }
          conn.off('data', onData);
          conn.setTimeout(0);
          // The hand-over owns this connection now; closing the server leaves it alone.
          conns.delete(conn);
          handlers.takeover(conn, peer, req);
          return;
        }
        inFlight++;
        void handle(req).then((r) => {
          inFlight--;
          reply(conn, r);
        });
      }
    };
    conn.on('data', onData);
  });
  server.maxConnections = MAX_CONNECTIONS;

  async function handle(req: ControlRequest): Promise<ControlResponse> {
    try {
      switch (req.op) {
        case 'status':
          return { ok: true, ...handlers.status() };
        case 'resize':
          if (!handlers.resize) return { ok: false, error: 'resize is not supported here' };
          return { ok: true, ...(await handlers.resize(req.workers)) };
        case 'reload':
          if (!handlers.reload) return { ok: false, error: 'reload is not supported here' };
          return { ok: true, ...(await handlers.reload()) };
        case 'takeover-prepare':
          if (!handlers.prepareTakeover) return { ok: false, error: 'this service does not support takeover' };
          return { ok: true, ...handlers.prepareTakeover() };
        default:
          return { ok: false, error: `"${req.op}" is only valid during a takeover` };
      }
    } catch (err) {
      const e = err as Error & { code?: string };
      return { ok: false, error: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) };
    }
  }

  const listenPath = opts.replace ? `${path}.${process.pid}.new` : path;
  await new Promise<void>((resolve, reject) => {
    const tryListen = (retried: boolean): void => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE' && !retried) {
          // Someone's socket file: live (another service) or stale (one that died)?
          const probe = net.connect(listenPath);
          probe.once('connect', () => {
            probe.destroy();
            reject(new ShardgramError('ERR_SHARDGRAM_PORT_HELD', `the control socket ${listenPath} belongs to a running service. Stop it, or use --takeover to replace it, or give another --control path.`));
          });
          probe.once('error', () => {
            try {
              unlinkSync(listenPath);
            } catch {
              // gone meanwhile
            }
            tryListen(true);
          });
          return;
        }
        reject(new ShardgramError('ERR_SHARDGRAM_SYSCALL', `cannot listen on the control socket ${listenPath}: ${err.message}`));
      });
      server.listen(listenPath, () => resolve());
    };
    tryListen(false);
  });
  chmodSync(listenPath, 0o600);
  if (opts.replace) renameSync(listenPath, path);
  let closed = false;
  return {
    path,
    close: async () => {
      if (closed) return;
      closed = true;
      // The listening socket (and its file) goes at once; whatever a client holds
      // open is cut: a stop is never held by a connection.
      server.close();
      for (const c of conns) c.destroy();
    },
  };
}
