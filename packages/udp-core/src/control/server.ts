/**
 * The control socket: how the owner changes a running service (resize, reload,
 * the upgrade hand-over). A unix stream socket, mode 0600 in a 0700 directory, and
 * every connection's peer checked with SO_PEERCRED: only this user (and root) may
 * talk to it. Another user's connection is told why, logged, and closed.
 */
import { chmodSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { ShardgramError, describeError } from '../errors.js';
import { peerCred, type PeerCred } from '../ffi/unix.js';
import { LineReader } from './framing.js';
import { ensurePrivateDir } from './paths.js';
import { MAX_REQUEST_BYTES, type ControlRequest, type ControlResponse } from './protocol.js';

/** What a control request can do; an op without a handler answers "not supported". */
export interface ControlHandlers {
  status(): Record<string, unknown>;
  resize?(workers: number): Promise<Record<string, unknown>>;
  reload?(): Promise<Record<string, unknown>>;
  /** A new service is starting up to take over: raise the buffers now (see the supervisor's control plane, brace). */
  prepareTakeover?(): Record<string, unknown>;
  /**
   * A new supervisor asks for the group (upgrade hand-over). The handler owns the
   * connection and its reader from then on: it passes the fds on it and reads the rest itself.
   */
  takeover?(conn: net.Socket, reader: LineReader, peer: PeerCred, request: Extract<ControlRequest, { op: 'takeover' }>): void;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Connections open at once; one more closes the longest idle to make room (an owner's change is never locked out). */
export const MAX_CONNECTIONS = 16;
/** A connection with no request under way is closed after this long. */
export const IDLE_TIMEOUT_MS = 10_000;

/** The fd under a net.Socket of a unix connection (libuv's pipe handle). */
export function socketFd(conn: net.Socket): number {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', 'the control connection has no file descriptor');
  return fd;
}

function reply(conn: net.Socket, r: ControlResponse, then?: () => void): void {
  if (!conn.destroyed) conn.write(`${JSON.stringify(r)}\n`, then ? () => then() : undefined);
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
    case 'takeover-prepare':
      return { op: r.op };
    case 'resize':
      return Number.isInteger(r.workers) ? { op: 'resize', workers: r.workers as number } : '"workers" must be a whole number';
    case 'takeover':
      return Number.isInteger(r.pid) ? { op: 'takeover', pid: r.pid as number } : '"pid" must be a whole number';
    default:
      return `unknown op "${String(r.op)}"`;
  }
}

/** One owner's connection, as the server keeps it. */
interface Conn {
  conn: net.Socket;
  peer: PeerCred;
  /** Requests under way. */
  inFlight: number;
  /** When it last asked or was answered. */
  lastActive: number;
}

/** The connections one server holds open: at most MAX_CONNECTIONS, idle ones cut. */
class Connections {
  private readonly open = new Set<Conn>();

  constructor(private readonly log: (line: string) => void) {}

  /** Makes room for one more: the longest idle goes; with none idle, undefined (and what holds them). */
  makeRoom(): string | undefined {
    if (this.open.size < MAX_CONNECTIONS) return undefined;
    const idle = [...this.open].filter((c) => c.inFlight === 0).sort((a, b) => a.lastActive - b.lastActive)[0];
    if (idle) {
      this.log(
        `control: ${MAX_CONNECTIONS} connections open; closed the longest idle one (pid ${idle.peer.pid}, idle ${((Date.now() - idle.lastActive) / 1000).toFixed(1)} s) to make room`,
      );
      idle.conn.destroy();
      this.open.delete(idle);
      return undefined;
    }
    const oldest = Math.min(...[...this.open].map((c) => c.lastActive));
    return `the control socket has ${MAX_CONNECTIONS} requests under way (the oldest for ${((Date.now() - oldest) / 1000).toFixed(1)} s); try again when one is done`;
  }

  /** Keeps `conn` until it closes. Idle connections are cut; one waiting for a long operation (a reload) is not. */
  add(conn: net.Socket, peer: PeerCred): Conn {
    const c: Conn = { conn, peer, inFlight: 0, lastActive: Date.now() };
    this.open.add(c);
    conn.once('close', () => this.open.delete(c));
    conn.setTimeout(IDLE_TIMEOUT_MS, () => {
      if (c.inFlight === 0) conn.destroy();
    });
    return c;
  }

  /** The hand-over owns this connection now: no idle cut, and closing the server leaves it alone. */
  release(c: Conn): void {
    c.conn.setTimeout(0);
    this.open.delete(c);
  }

  /** Cuts every connection still held (a stop is never held by one). */
  destroyAll(): void {
    for (const c of this.open) c.conn.destroy();
  }
}

/**
 * What is at `path` before we listen: nothing, a stale socket (replaced), or a live
 * one (another service: refused unless `replace`). Anything that is not a socket is
 * never touched: `--control` naming a file is an error, not a file lost.
 */
async function checkPath(path: string, replace: boolean): Promise<void> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `the control socket path ${path} exists and is not a socket (${st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : 'not a socket'}); refusing to replace it. Remove it yourself, or give another --control path.`,
      { option: 'control' },
    );
  }
  if (replace) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw new ShardgramError(
      'ERR_SHARDGRAM_PORT_HELD',
      `the control socket ${path} belongs to a running service. Stop it, or use --takeover to replace it, or give another --control path.`,
      { option: 'control' },
    );
}

/**
 * Listens on `path`. A live socket already there (another service) is an error
 * unless `replace` (a hand-over: the old service keeps its socket open until it
 * exits, and new clients reach the new one from the rename on); a stale one is
 * replaced; anything else there is refused. The socket is made at a temporary name
 * and renamed over `path`, and at close the file is removed only if it is still ours.
 */
export async function startControlServer(
  handlers: ControlHandlers,
  path: string,
  log: (line: string) => void,
  opts: { replace?: boolean } = {},
): Promise<ControlServer> {
  ensurePrivateDir(dirname(path));
  await checkPath(path, opts.replace ?? false);
  const me = process.geteuid?.() ?? 0;
  const conns = new Connections(log);
  const server = net.createServer({ allowHalfOpen: false }, (conn) => admit(conn, { handlers, conns, me, log }));
  const ours = await listenAndRename(server, path);
  return controlServerHandle(server, conns, path, ours);
}

/** What a server's connections share. */
interface ServerContext {
  handlers: ControlHandlers;
  conns: Connections;
  /** The euid that may control the service (root may too). */
  me: number;
  log: (line: string) => void;
}

/** A new connection: its peer checked, room made for it, then its requests served. */
function admit(conn: net.Socket, ctx: ServerContext): void {
  conn.on('error', () => undefined);
  const peer = readPeer(conn, ctx.log);
  if (!peer || refuseStranger(conn, peer, ctx)) return;
  const full = ctx.conns.makeRoom();
  if (full) {
    reply(conn, { ok: false, code: 'ERR_SHARDGRAM_BUSY', error: full }, () => conn.end());
    return;
  }
  const c = ctx.conns.add(conn, peer);
  const reader = new LineReader(conn, MAX_REQUEST_BYTES);
  serveRequests(c, reader, ctx).catch((err: unknown) => {
    // A handler that threw outside its answer (a takeover's hand-off, say): this connection ends, the service serves on.
    ctx.log(`control: a request failed (${describeError(err)}); closing its connection`);
    conn.destroy();
  });
}

/** The connection's peer (SO_PEERCRED); unreadable: logged, the connection closed, undefined. */
function readPeer(conn: net.Socket, log: (line: string) => void): PeerCred | undefined {
  try {
    return peerCred(socketFd(conn));
  } catch (err) {
    log(`control: cannot read a connection's credentials (${describeError(err)}); closing it`);
    conn.destroy();
    return undefined;
  }
}

/** Whether `peer` is another user (not ours, not root): then it is told why, logged, and closed. */
function refuseStranger(conn: net.Socket, peer: PeerCred, { me, log }: ServerContext): boolean {
  if (peer.uid === me || peer.uid === 0) return false;
  log(`control: refused a connection from uid ${peer.uid} (pid ${peer.pid}): only uid ${me} may control this service`);
  reply(
    conn,
    { ok: false, code: 'ERR_SHARDGRAM_PERMISSION', error: `permission denied: this service is controlled by uid ${me} only; you are uid ${peer.uid}` },
    () => conn.end(),
  );
  return true;
}

/** Answers one request after another until the connection closes, sends too long a line, or is handed to a takeover. */
async function serveRequests(c: Conn, reader: LineReader, { handlers, conns }: ServerContext): Promise<void> {
  const { conn } = c;
  for (;;) {
    const r = await reader.next(0);
    if ('closed' in r || 'timeout' in r) return;
    if ('tooLong' in r) {
      reply(conn, { ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes` }, () => conn.destroy());
      return;
    }
    c.lastActive = Date.now();
    const req = parseRequest(r.line);
    if (typeof req === 'string') {
      reply(conn, { ok: false, error: req });
      continue;
    }
    if (req.op === 'takeover') {
      if (!handlers.takeover) {
        reply(conn, { ok: false, error: 'this service does not support takeover' });
        continue;
      }
      conns.release(c);
      handlers.takeover(conn, reader, c.peer, req);
      return;
    }
    c.inFlight++;
    const answer = await handle(handlers, req);
    c.inFlight--;
    c.lastActive = Date.now();
    reply(conn, answer);
  }
}

/** One request's answer, from its handler; a handler's error becomes the answer (with its code). */
async function handle(handlers: ControlHandlers, req: ControlRequest): Promise<ControlResponse> {
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
    return { ok: false, error: describeError(err), ...(typeof e.code === 'string' ? { code: e.code } : {}) };
  }
}

/**
 * Listens at a temporary name beside `path`, makes it mode 0600, and renames it over
 * `path`; returns its inode, by which close knows the file is still ours.
 */
async function listenAndRename(server: net.Server, path: string): Promise<number> {
  const listenPath = `${path}.${process.pid}.new`;
  try {
    unlinkSync(listenPath); // a leftover of a process that had our pid
  } catch {
    // none
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ShardgramError('ERR_SHARDGRAM_SYSCALL', `cannot listen on the control socket ${listenPath}: ${err.message}`, { option: 'control' })),
    );
    server.listen(listenPath, () => resolve());
  });
  chmodSync(listenPath, 0o600);
  renameSync(listenPath, path);
  return lstatSync(path).ino;
}

/** The running server as its owner holds it: `close` works once, later calls do nothing. */
function controlServerHandle(server: net.Server, conns: Connections, path: string, ours: number): ControlServer {
  let closed = false;
  return {
    path,
    close: async () => {
      if (closed) return;
      closed = true;
      // The listening socket goes at once; whatever a client holds open is cut: a stop
      // is never held by a connection. The file goes only if it is still ours (a
      // hand-over's new service may have renamed its own over it).
      server.close();
      conns.destroyAll();
      try {
        if (lstatSync(path).ino === ours) unlinkSync(path);
      } catch {
        // gone already
      }
    },
  };
}
