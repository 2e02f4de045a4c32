/**
 * A real Prometheus (Debian's prometheus 2.42) for the remote write tests: started in the
 * foreground from a config written in a directory made for it (mkdtemp), as a remote
 * write receiver with native histograms, on a free loopback port; optionally behind TLS
 * and basic auth (its --web.config.file); stopped by pid; its query API.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@shardgram/test-kit/wait';

export const havePrometheus = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;

export async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface PrometheusWeb {
  /** PEM files of the server's certificate and key: serve https. */
  tls?: { cert: string; key: string };
  /** User and bcrypt hash: require basic auth. */
  basicAuth?: { user: string; bcrypt: string };
}

export class PrometheusServer {
  child: ChildProcess | undefined;
  private out = '';
  readonly dir: string;

  private constructor(
    readonly port: number,
    private readonly web: PrometheusWeb,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'shardgram-prom-rw-'));
    writeFileSync(join(this.dir, 'prometheus.yml'), 'global:\n  scrape_interval: 1m\nscrape_configs: []\n');
    const lines: string[] = [];
    if (web.tls) lines.push('tls_server_config:', `  cert_file: ${web.tls.cert}`, `  key_file: ${web.tls.key}`);
    if (web.basicAuth) lines.push('basic_auth_users:', `  ${web.basicAuth.user}: ${JSON.stringify(web.basicAuth.bcrypt)}`);
    if (lines.length) writeFileSync(join(this.dir, 'web.yml'), `${lines.join('\n')}\n`);
  }

  static async start(web: PrometheusWeb = {}): Promise<PrometheusServer> {
    const p = new PrometheusServer(await freePort(), web);
    await p.resume();
    return p;
  }

  get writeUrl(): string {
    return `${this.web.tls ? 'https' : 'http'}://127.0.0.1:${this.port}/api/v1/write`;
  }

  /** Starts it (again, on the same storage); resolves when it says it is ready to receive. */
  async resume(): Promise<void> {
    const args = [
      `--config.file=${join(this.dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(this.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${this.port}`,
      '--web.enable-remote-write-receiver',
      '--enable-feature=native-histograms',
      '--storage.tsdb.retention.time=1d',
      '--log.level=info',
    ];
    if (this.web.tls || this.web.basicAuth) args.push(`--web.config.file=${join(this.dir, 'web.yml')}`);
    const child = spawn('prometheus', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const take = (d: Buffer): void => void (this.out += d.toString());
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    const ready = await waitFor(() => this.out.includes('Server is ready to receive web requests') || child.exitCode !== null, 30_000, 50);
    if (!ready || child.exitCode !== null) throw new Error(`prometheus did not start:\n${this.out}`);
  }

  /** SIGTERM by pid, then waits for the exit (its head is in the WAL: resume() finds it again). */
  async pause(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    process.kill(c.pid!, 'SIGTERM');
    await once(c, 'exit');
  }

  async stop(): Promise<void> {
    await this.pause();
    rmSync(this.dir, { recursive: true, force: true });
  }

  log(): string {
    return this.out;
  }

  /** An instant query (plain http, no auth: the tests that query run it so). */
  async query(
    expr: string,
  ): Promise<
    { metric: Record<string, string>; value?: [number, string]; values?: [number, string][]; histogram?: [number, { count: string; sum: string }] }[]
  > {
    const res = await fetch(`http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: never[] } };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
    return body.data.result;
  }

  /** The single value of a scalar-valued instant query, or undefined when it has no result. */
  async value(expr: string): Promise<number | undefined> {
    const r = await this.query(expr);
    if (r.length > 1) throw new Error(`query ${expr}: ${r.length} series`);
    return r[0]?.value ? Number(r[0].value[1]) : undefined;
  }
}
