/**
 * The statistics endpoint: `GET /stats` (JSON), `GET /metrics` (Prometheus: text, or the
 * protobuf format to a scraper whose `Accept` prefers it) and `GET /`
 * (a live page reading /stats), read only. Nothing on this port changes the service (that is the owner-only control
 * socket's job), so exposing it to a monitoring network exposes figures, not power.
 *
 * Hostile clients are bounded: any request line gets an answer (or the connection is
 * closed by the HTTP parser with 400), at most `maxConnections` connections are held and
 * at most `maxConnectionsPerAddress` from one client address (one IPv6 /64), requests
 * that dawdle over their headers or body are cut off, and `close()` returns within a
 * small bound whatever the clients do. A connection over either limit takes the place
 * of the oldest one that is not being answered (a slow or silent one: what a slowloris
 * or an idle flood holds), so an ordinary GET is answered while they keep trying; it is
 * refused only when every connection held is in the middle of an answer.
 *
 * startStatsServer in steps: the options checked (settingsOf), who may ask (hostCheck,
 * refused), what is answered (answer), the connection limits (ConnectionLimits), then
 * listen and the bounded close (closer).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ShardgramError, describeError, type ShardgramErrorCode } from '../errors.js';
import { familyOf } from '../ffi/sockaddr.js';
import { encodeFamilies, prefersProtobuf, protobufCapable, PROTOBUF_CONTENT_TYPE, TEXT_CONTENT_TYPE } from '../stats/prom-proto.js';
import type { PromFamily } from '../stats/prom-text.js';
import { statsFamilies, toPrometheus, type StatsReport } from '../stats/report.js';
import { STATS_SERVER_DEFAULTS } from '../defaults.js';
import { checkLimit } from '../supervisor/config.js';

export interface StatsServer {
  readonly server: Server;
  readonly port: number;
  /** The address the endpoint is bound to. */
  readonly address: string;
  readonly url: string;
  /**
   * Set when the port is bound beyond loopback: which address, that it exposes the
   * service's figures, how to keep it local. `shardgram serve` prints it; a library user should log it.
   */
  readonly warning: string | undefined;
  /** Stops listening and closes every connection; resolves within `closeTimeoutMs`. */
  close(): Promise<void>;
}

export interface StatsSource {
  stats(): StatsReport;
  /** Prometheus text; default: the report's. */
  metrics?(): string;
  /**
   * The same as families, for the protobuf format (served to a scraper that prefers it);
   * undefined when some part exists only as text (then text is served). Default: the report's.
   */
  metricFamilies?(): PromFamily[] | undefined;
}

export interface StatsServerOptions {
  /** IPv4 or IPv6 literal to bind (default 127.0.0.1; `0.0.0.0` or `::` for every interface). */
  address?: string;
  /**
   * Extra names accepted in the `Host` header (e.g. the DNS name a Prometheus server
   * scrapes this host by). The bound address, the address a connection arrived on,
   * and (for a loopback or wildcard bind) `localhost`, `127.0.0.1`, `::1` are always accepted.
   */
  hosts?: readonly string[];
  /**
   * Connections held at once (default 64). One more takes the place of the oldest held
   * connection that is not being answered; when every one is, it is closed as it arrives.
   */
  maxConnections?: number;
  /** Connections held at once from one client address, an IPv6 address counting by its /64 (default 16); the same rule. */
  maxConnectionsPerAddress?: number;
  /** Longest wait for a request's headers (default 5000 ms). */
  headersTimeoutMs?: number;
  /** Longest wait for a whole request (default 10000 ms). */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open (default 2000 ms). */
  keepAliveTimeoutMs?: number;
  /** Bound on `close()` (default 1000 ms). */
  closeTimeoutMs?: number;
}

/** Its defaults live with every other default (defaults.ts); exported here for its callers. */
export { STATS_SERVER_DEFAULTS };

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/** The live page (dashboard/index.html, shipped in the package), read once. */
let page: Buffer | undefined;
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  // Everything is in the one file; it may only talk to this server.
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

/** An IP literal in one spelling (IPv6 compressed and lower-case, IPv4-mapped as IPv4); a name lower-cased. */
function canonicalHost(name: string): string {
  let h = name.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.startsWith('::ffff:') && familyOf(h.slice(7)) === 'udp4') return h.slice(7);
  if (familyOf(h) === 'udp6') {
    try {
      return new URL(`http://[${h}]/`).hostname.slice(1, -1);
    } catch {
      return h;
    }
  }
  return h;
}

/** The host part of a `Host` header (`name`, `name:port`, `[v6]`, `[v6]:port`); undefined when malformed. */
function hostPart(header: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*)(?::\d*)?$/.exec(header.trim());
  return m ? canonicalHost(m[1]!) : undefined;
}

function isLoopback(address: string): boolean {
  const a = canonicalHost(address);
  return a.startsWith('127.') || a === '::1';
}

/**
 * What to say when the stats port is bound beyond loopback (undefined on loopback): which
 * address, that it exposes the service's figures, and how to keep it local.
 */
function exposureWarning(address: string, port: number): string | undefined {
  if (isLoopback(address)) return undefined;
  const where = isWildcard(address) ? `every interface of this host (${address})` : `${address}`;
  const shown = address.includes(':') ? `[${address}]` : address;
  return (
    `--stats-address ${address}: the stats port (http://${shown}:${port}: GET /stats, /metrics and the live page) is open on ${where} ` +
    'to anyone who can reach it: worker pids, traffic figures and top sender addresses. It is read-only. ' +
    "To keep it local, use --stats-address 127.0.0.1 (the default) or ::1; to expose it to one monitoring network, bind that network's address and firewall the port (docs/multi-host.md)."
  );
}

/** The key a client's connections are counted under: its IPv4 address, or its IPv6 /64. */
function clientKey(remote: string | undefined): string {
  if (remote === undefined) return '';
  const a = canonicalHost(remote);
  if (familyOf(a) !== 'udp6') return a;
  const [head = '', tail] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).join(':')}::/64`;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** The path of a request target (origin-form or absolute-form); '' when it has none. */
function pathOf(target: string): string {
  let path = target;
  if (!target.startsWith('/')) {
    try {
      path = new URL(target).pathname;
    } catch {
      return '';
    }
  }
  const end = path.search(/[?#]/);
  return end < 0 ? path : path.slice(0, end);
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(body);
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `stats server ${name} must be a positive integer; got ${v}`, { option: name });
  return v;
}

/** The options checked, with their defaults. */
interface Settings {
  address: string;
  hosts: readonly string[];
  headersTimeout: number;
  requestTimeout: number;
  closeTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
  maxPerAddress: number;
}

function settingsOf(port: number, options: StatsServerOptions | string): Settings {
  const o = typeof options === 'string' ? { address: options } : options;
  checkLimit('port', port, '--stats-port');
  const address = o.address ?? STATS_SERVER_DEFAULTS.address;
  if (!familyOf(address) || address.includes('%')) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `--stats-address must be an IPv4 or IPv6 literal such as 127.0.0.1, ::1 or 0.0.0.0; got "${address}"`,
      { option: 'stats-address', address },
    );
  }
  const headersTimeout = positiveInt('headersTimeoutMs', o.headersTimeoutMs ?? STATS_SERVER_DEFAULTS.headersTimeoutMs);
  return {
    address,
    hosts: o.hosts ?? [],
    headersTimeout,
    requestTimeout: Math.max(headersTimeout, positiveInt('requestTimeoutMs', o.requestTimeoutMs ?? STATS_SERVER_DEFAULTS.requestTimeoutMs)),
    closeTimeout: positiveInt('closeTimeoutMs', o.closeTimeoutMs ?? STATS_SERVER_DEFAULTS.closeTimeoutMs),
    keepAliveTimeout: positiveInt('keepAliveTimeoutMs', o.keepAliveTimeoutMs ?? STATS_SERVER_DEFAULTS.keepAliveTimeoutMs),
    maxConnections: positiveInt('maxConnections', o.maxConnections ?? STATS_SERVER_DEFAULTS.maxConnections),
    maxPerAddress: positiveInt('maxConnectionsPerAddress', o.maxConnectionsPerAddress ?? STATS_SERVER_DEFAULTS.maxConnectionsPerAddress),
  };
}

/** Whether a request's Host names this server: its address, a --stats-host name, loopback names where they fit, or the address it arrived on. */
function hostCheck(address: string, hosts: readonly string[]): (req: IncomingMessage) => boolean {
  const accepted = new Set<string>([canonicalHost(address), ...hosts.map(canonicalHost)]);
  if (isLoopback(address) || isWildcard(address)) for (const n of LOOPBACK_NAMES) accepted.add(n);
  return (req) => {
    const host = hostPart(req.headers.host ?? '');
    if (host === undefined || host === '') return false;
    // The address this connection arrived on is this host's own literal: no DNS name can rebind to it.
    return accepted.has(host) || (req.socket.localAddress !== undefined && host === canonicalHost(req.socket.localAddress));
  };
}

/** Who may ask: answers a request that is not for this port (refused), and says whether it did. */
function refused(req: IncomingMessage, res: ServerResponse, hostAllowed: (req: IncomingMessage) => boolean, address: string, port: number): boolean {
  // Two Host headers: which one is meant is anyone's guess (Node keeps the first), so neither is.
  let hostHeaders = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hostHeaders++;
  if (hostHeaders > 1) {
    send(res, 400, 'bad request: more than one Host header\n', { connection: 'close' });
    return true;
  }
  // Not for other web pages: a Host that is not one of ours (DNS rebinding) is refused,
  // and so is an Origin (a browser's cross-site request) other than this server's own
  // (http://, this Host, this port: its live page), which may only read.
  const origin = req.headers.origin;
  const ownOrigin = origin === `http://${req.headers.host}` && origin.endsWith(`:${port}`) && (req.method === 'GET' || req.method === 'HEAD');
  if (!hostAllowed(req) || (origin !== undefined && !ownOrigin)) {
    send(
      res,
      403,
      `forbidden: this stats port answers monitoring tools that ask for it by its address (Host ${address.includes(':') ? `[${address}]` : address}:${port}) or a name given with --stats-host, not web pages\n`,
    );
    return true;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, 'method not allowed: this port is read-only (GET, HEAD /stats or /metrics)\n', { allow: 'GET, HEAD', connection: 'close' });
    return true;
  }
  return false;
}

/** What there is to read: the live page, /stats, /metrics (protobuf to a scraper that prefers it, text otherwise). */
function answer(req: IncomingMessage, res: ServerResponse, source: StatsSource): void {
  const path = pathOf(req.url ?? '');
  if (path === '/') {
    page ??= readFileSync(new URL('../../dashboard/index.html', import.meta.url));
    res.writeHead(200, PAGE_HEADERS).end(req.method === 'HEAD' ? undefined : page);
    return;
  }
  if (path !== '/stats' && path !== '/metrics') {
    send(res, 404, 'not found: try GET / (a live page), GET /stats or GET /metrics\n');
    return;
  }
  if (path === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(source.stats(), null, 2)}\n`);
    return;
  }
  const families = prefersProtobuf(req.headers.accept)
    ? source.metricFamilies
      ? source.metricFamilies()
      : source.metrics
        ? undefined
        : statsFamilies(source.stats())
    : undefined;
  if (families && protobufCapable(families)) {
    res.writeHead(200, { 'content-type': PROTOBUF_CONTENT_TYPE, vary: 'Accept' }).end(encodeFamilies(families));
  } else {
    res.writeHead(200, { 'content-type': TEXT_CONTENT_TYPE, vary: 'Accept' }).end(source.metrics ? source.metrics() : toPrometheus(source.stats()));
  }
}

/**
 * The connections held, and those of each client, in arrival order (oldest first),
 * with the requests being answered on each: over a limit, the oldest connection not
 * being answered makes room; when every one is being answered, the newcomer is closed.
 */
class ConnectionLimits {
  readonly sockets = new Set<Socket>();
  private readonly byClient = new Map<string, Set<Socket>>();
  /** Requests being answered, per connection: such a connection is never the one let go. */
  private readonly answering = new Map<Socket, number>();
  private readonly keyOf = new WeakMap<Socket, string>();

  constructor(
    private readonly maxConnections: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Counts these limits on `server`'s connections and requests. */
  watch(server: Server): void {
    server.on('connection', (s: Socket) => this.admit(s));
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.answeringOn(req.socket, res));
  }

  private admit(s: Socket): void {
    const key = clientKey(s.remoteAddress);
    const mine = this.byClient.get(key);
    if ((mine && mine.size >= this.maxPerAddress && !this.letOldestGo(mine)) || (this.sockets.size >= this.maxConnections && !this.letOldestGo(this.sockets))) {
      s.destroy();
      return;
    }
    this.keyOf.set(s, key);
    this.sockets.add(s);
    this.byClient.set(key, (this.byClient.get(key) ?? new Set()).add(s));
    s.once('close', () => {
      this.forget(s, key);
      this.answering.delete(s);
    });
  }

  private answeringOn(s: Socket, res: ServerResponse): void {
    this.answering.set(s, (this.answering.get(s) ?? 0) + 1);
    res.once('close', () => {
      const n = (this.answering.get(s) ?? 1) - 1;
      if (n > 0) this.answering.set(s, n);
      else this.answering.delete(s);
    });
  }

  private forget(s: Socket, key: string): void {
    this.sockets.delete(s);
    const mine = this.byClient.get(key);
    mine?.delete(s);
    if (mine?.size === 0) this.byClient.delete(key);
  }

  /** Closes the oldest connection of `held` that is not being answered; false when there is none. */
  private letOldestGo(held: Set<Socket>): boolean {
    for (const s of held) {
      if (this.answering.has(s)) continue;
      this.forget(s, this.keyOf.get(s) ?? '');
      s.destroy();
      return true;
    }
    return false;
  }
}

/**
 * Listens on address:port; a refusal is said as the --stats-port it is, with the code of
 * its cause: in use (PORT_HELD), a port this user may not listen on (PERMISSION), an
 * address that is not this host's (ADDRESS), anything else (SYSCALL).
 */
function listen(server: Server, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const code: ShardgramErrorCode =
        err.code === 'EADDRINUSE'
          ? 'ERR_SHARDGRAM_PORT_HELD'
          : err.code === 'EACCES'
            ? 'ERR_SHARDGRAM_PERMISSION'
            : err.code === 'EADDRNOTAVAIL'
              ? 'ERR_SHARDGRAM_ADDRESS'
              : 'ERR_SHARDGRAM_SYSCALL';
      reject(
        new ShardgramError(
          code,
          err.code === 'EADDRINUSE'
            ? `--stats-port ${port}: TCP ${address}:${port} is already in use. Choose another --stats-port (0 picks a free one).`
            : `--stats-port ${port}: cannot listen on TCP ${address}:${port}: ${err.message}`,
          { port, address, syscall: 'listen', option: 'stats-port', ...(err.errno !== undefined ? { errno: Math.abs(err.errno) } : {}) },
        ),
      );
    });
    server.listen(port, address, () => resolve());
  });
}

/** Stops listening and closes every connection; resolves within `timeoutMs` whatever the clients do. */
function closer(server: Server, sockets: ReadonlySet<Socket>, timeoutMs: number): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () =>
    (closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
    }));
}

export async function startStatsServer(source: StatsSource, port: number, options: StatsServerOptions | string = {}): Promise<StatsServer> {
  const o = settingsOf(port, options);
  const { address } = o;
  const hostAllowed = hostCheck(address, o.hosts);
  let boundPort = port;
  const server = createServer(
    {
      headersTimeout: o.headersTimeout,
      requestTimeout: o.requestTimeout,
      keepAliveTimeout: o.keepAliveTimeout,
      // How often Node looks for requests past their timeouts (its default is 30 s).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(o.headersTimeout / 4))),
      maxHeaderSize: 8192,
    },
    (req, res) => {
      try {
        if (!refused(req, res, hostAllowed, address, boundPort)) answer(req, res, source);
      } catch (err) {
        if (!res.headersSent) send(res, 500, `${describeError(err)}\n`, { connection: 'close' });
        else res.destroy();
      }
    },
  );
  // A connection that never sends a byte is not a request yet: the headers timeout cuts it
  // (Node counts it from the connection), and this one any connection silent for that long.
  server.setTimeout(o.requestTimeout);
  const limits = new ConnectionLimits(o.maxConnections, o.maxPerAddress);
  limits.watch(server);
  await listen(server, port, address);
  const addr = server.address();
  boundPort = typeof addr === 'object' && addr ? addr.port : port;
  return {
    server,
    port: boundPort,
    address,
    url: `http://${address.includes(':') ? `[${address}]` : address}:${boundPort}`,
    warning: exposureWarning(address, boundPort),
    close: closer(server, limits.sockets, o.closeTimeout),
  };
}
