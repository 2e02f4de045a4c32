/** The statistics endpoint: `GET /stats` (JSON) and `GET /metrics` (Prometheus), on loopback only. */
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

export async function startStatsServer(source: StatsSource, port: number, host = '127.0.0.1'): Promise<StatsServer> {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `--stats-port must be an integer from 0 to 65535; got ${port}`, { option: 'stats-port' });
  }
  let boundPort = port;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    // Loopback only, and not for web pages: a Host other than a loopback name (DNS
    // rebinding) or any Origin (a browser's cross-site request) is refused.
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (!['127.0.0.1', 'localhost', '[::1]', host].includes(hostName) || req.headers.origin !== undefined) {
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
      if (path === '/stats') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(source.stats(), null, 2) + '\n');
      } else if (path === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(source.metrics ? source.metrics() : toPrometheus(source.stats()));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /stats, GET /metrics or POST /workers?count=N\n');
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
