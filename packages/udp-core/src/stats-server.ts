/** The statistics endpoint: `GET /` (a live page), `GET /stats` (JSON) and `GET /metrics` (Prometheus), on loopback only. */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { isIPv6 } from 'node:net';
import { ShardgramError } from './errors.js';
import { toPrometheus, type StatsReport } from './stats.js';

export interface StatsServer {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export interface StatsSource {
  stats(): StatsReport;
  /** Prometheus text; default: the report's. */
  metrics?(): string;
  /** Grows or shrinks the group (POST /workers?count=N). */
  resize?(count: number): Promise<{ from: number; to: number }>;
}

/** The live page (dashboard/index.html, shipped in the package), read once. */
let page: Buffer | undefined;
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  // Everything is in the one file; it may only talk to this server.
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

export async function startStatsServer(source: StatsSource, port: number, host = '127.0.0.1'): Promise<StatsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `--stats-port must be an integer from 0 to 65535; got ${port}`, { option: 'stats-port' });
  }
  let boundPort = port;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    // Loopback only, and not for other web pages: a Host other than a loopback name (DNS
    // rebinding) is refused, and so is an Origin (a browser's cross-site request) other
    // than this server's own (its live page), which may only read.
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '');
    const origin = req.headers.origin;
    const ownOrigin = origin !== undefined && origin === `http://${req.headers.host}` && (req.method === 'GET' || req.method === 'HEAD');
    if (!['127.0.0.1', 'localhost', '[::1]', host].includes(hostName) || (origin !== undefined && !ownOrigin)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`forbidden: the stats port answers local tools (Host 127.0.0.1:${boundPort}) only, not web pages\n`);
      return;
    }
    if (req.method === 'POST' && path === '/workers' && source.resize) {
      const raw = url.searchParams.get('count') ?? '';
      if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 256) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `count must be a whole number from 1 to 256; got "${raw}"` }) + '\n');
        return;
      }
      source.resize(Number(raw)).then(
        (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r) + '\n'),
        (err: unknown) => res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }) + '\n'),
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: source.resize ? 'GET, HEAD, POST' : 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (path === '/') {
        page ??= readFileSync(new URL('../dashboard/index.html', import.meta.url));
        res.writeHead(200, PAGE_HEADERS).end(req.method === 'HEAD' ? undefined : page);
      } else if (path === '/stats') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(source.stats(), null, 2) + '\n');
      } else if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(source.metrics ? source.metrics() : toPrometheus(source.stats()));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET / (live page), GET /stats, GET /metrics or POST /workers?count=N\n');
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new ShardgramError(
          'ERR_SHARDGRAM_PORT_HELD',
          err.code === 'EADDRINUSE'
            ? `--stats-port ${port}: TCP ${host}:${port} is already in use. Choose another --stats-port (0 picks a free one).`
            : `--stats-port ${port}: cannot listen on TCP ${host}:${port}: ${err.message}`,
          { port, address: host, syscall: 'listen', option: 'stats-port' },
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  boundPort = bound;
  return {
    server,
    port: bound,
    url: `http://${isIPv6(host) ? `[${host}]` : host}:${bound}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
