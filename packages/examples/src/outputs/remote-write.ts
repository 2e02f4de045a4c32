/**
 * Prometheus remote write 1.0 as an output: each flush's families (the same ones
 * `GET /metrics` serves) become series at the flush time (`familiesToSeries` in
 * udp-core's `/prom`), encoded in chunks of at most `maxSamplesPerSend` samples and
 * queued in a backlog of their own (./backlog.ts, counted in samples: a float sample
 * or a native histogram is one). The sender posts a batch of queued chunks as one
 * request: their encodings concatenated (one `WriteRequest`), snappy-compressed
 * (`snappyjs`: pure JS, see docs/statsd.md), with the headers the protocol requires.
 *
 * - 2xx: delivered. 5xx, 429, a network error or no answer within `timeoutMs`: failed,
 *   retried with the backlog's backoff (the receiver stores a request whole or not at
 *   all, so a retry adds nothing twice). Any other status (400: out of order, bad
 *   labels; 401/403: credentials; 404: wrong path): refused for good, counted as
 *   `rejected` with the status and the first line of the answer (escaped), not retried.
 * - Basic or bearer auth as Prometheus's `remote_write` offers it (a password or token
 *   file is read at each attempt, trimmed, so it can be rotated); an `https:` URL is
 *   checked against Node's CAs, the system's bundle (`SSL_CERT_FILE`, or the usual
 *   distribution paths) and an optional CA file.
 * - Timestamps of successive flushes strictly increase (a clock step back would
 *   otherwise make the receiver refuse them as out of order).
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import snappy from 'snappyjs';
import { escapeText } from '@shardgram/udp-core';
import { encodeWriteRequest, familiesToSeries, REMOTE_WRITE_HEADERS, type PromFamily } from '@shardgram/udp-core/prom';
import { Backlog, Undeliverable } from './backlog.js';

export type RemoteWriteAuth =
  | { kind: 'basic'; username: string; password?: string; passwordFile?: string }
  | { kind: 'bearer'; token?: string; tokenFile?: string };

export interface RemoteWriteTarget {
  url: URL;
  /** Added to every series that lacks the label (Prometheus's `external_labels`). */
  externalLabels: Readonly<Record<string, string>>;
  auth: RemoteWriteAuth | undefined;
  /** One attempt's limit (Prometheus's `remote_timeout`). */
  timeoutMs: number;
  /** A PEM file of CAs trusted besides Node's and the system's (`tls_config.ca_file`). */
  caFile: string | undefined;
  /** Send timers' native histograms (off for a receiver without native histogram support). */
  nativeHistograms: boolean;
}

export interface RemoteWriteOptions {
  target: RemoteWriteTarget;
  /** Most samples held while the receiver is slow or down. */
  capacity: number;
  /** Most samples per request (Prometheus's `max_samples_per_send`). Default 2000. */
  maxSamplesPerSend?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  log(line: string): void;
  onFailedAttempt?(): void;
  /** Milliseconds since the epoch (the samples' timestamps). */
  now?: () => number;
}

/** One encoded part of a flush. */
interface Chunk {
  bytes: Buffer;
  samples: number;
}

/** The first few hundred bytes of an answer, as one safe line for a log. */
const ANSWER_BYTES = 300;

/** Where distributions keep the system's CA bundle (Debian/Ubuntu, Fedora/RHEL, Alpine/others). */
const SYSTEM_CA_FILES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/** Node's CAs, the system's bundle (`SSL_CERT_FILE` first, as OpenSSL reads it) and `extraFile`. */
export function trustedCas(extraFile?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const cas = [...rootCertificates];
  const system = [env.SSL_CERT_FILE, ...SYSTEM_CA_FILES].find((f): f is string => !!f && existsSync(f));
  if (system) {
    try {
      cas.push(readFileSync(system, 'utf8'));
    } catch {
      // An unreadable system bundle leaves Node's own CAs (and the CA file, when given).
    }
  }
  if (extraFile) cas.push(readFileSync(extraFile, 'utf8'));
  return cas;
}

/** The Authorization header of an attempt (files read now, trimmed as Prometheus does). */
function authorization(auth: RemoteWriteAuth | undefined): string | undefined {
  if (!auth) return undefined;
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new Error(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  if (auth.kind === 'basic') {
    const password = auth.passwordFile !== undefined ? read(auth.passwordFile, 'password') : (auth.password ?? '');
    return `Basic ${Buffer.from(`${auth.username}:${password}`, 'utf8').toString('base64')}`;
  }
  return `Bearer ${auth.tokenFile !== undefined ? read(auth.tokenFile, 'bearer token') : (auth.token ?? '')}`;
}

/** The URL as a log shows it (no query: it may hold a key). */
export function showUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * One POST of a compressed `WriteRequest`: resolves on 2xx; rejects with Undeliverable
 * on a status retrying cannot fix, with an Error (retried) on 5xx, 429 and network errors.
 */
export function postWriteRequest(target: RemoteWriteTarget, body: Buffer, agent: http.Agent, ca?: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...REMOTE_WRITE_HEADERS, 'Content-Length': body.length, 'User-Agent': 'shardgram-statsd' };
    try {
      const a = authorization(target.auth);
      if (a) headers.Authorization = a;
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const tls = target.url.protocol === 'https:';
    const options: https.RequestOptions = { method: 'POST', headers, agent, timeout: target.timeoutMs, ...(tls ? { ca } : {}) };
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) reject(err);
      else resolve();
    };
    const req = (tls ? https : http).request(target.url, options, (res) => {
      const status = res.statusCode ?? 0;
      const parts: Buffer[] = [];
      let have = 0;
      res.on('data', (b: Buffer) => {
        if (have < ANSWER_BYTES) parts.push(b);
        have += b.length;
      });
      res.on('error', (err) => finish(err));
      res.on('end', () => {
        if (status >= 200 && status < 300) return finish();
        const text = Buffer.concat(parts).subarray(0, ANSWER_BYTES).toString('utf8').split('\n')[0]!.trim();
        const why = `HTTP ${status}${text ? `: ${escapeText(text)}` : ''}`;
        finish(status >= 500 || status === 429 ? new Error(why) : new Undeliverable(why));
      });
    });
    // The whole attempt, answer included, within the timeout (the socket timeout only sees idleness).
    const deadline = setTimeout(() => {
      req.destroy(new Error(`no answer within ${target.timeoutMs} ms`));
    }, target.timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
    req.on('error', (err) => finish(err));
    req.end(body);
  });
}

export class RemoteWriteOutput {
  readonly backlog: Backlog<Chunk>;
  readonly name: string;
  private readonly maxSamples: number;
  private readonly agent: http.Agent;
  private readonly ca: string[] | undefined;
  private readonly now: () => number;
  private lastTimestamp = 0;

  /** Reads the CA files now (throws when one cannot be read). */
  constructor(private readonly o: RemoteWriteOptions) {
    const t = o.target;
    this.name = `remote write ${showUrl(t.url)}`;
    this.maxSamples = o.maxSamplesPerSend ?? 2000;
    this.now = o.now ?? Date.now;
    const tls = t.url.protocol === 'https:';
    this.ca = tls ? trustedCas(t.caFile) : undefined;
    // One connection, kept between requests (the backlog sends one request at a time).
    this.agent = tls ? new https.Agent({ keepAlive: true, maxSockets: 1 }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.backlog = new Backlog<Chunk>({
      name: this.name,
      capacity: o.capacity,
      unitName: 'samples',
      units: (c) => c.samples,
      maxBatchUnits: this.maxSamples,
      retryMinMs: o.retryMinMs,
      retryMaxMs: o.retryMaxMs,
      log: o.log,
      onFailedAttempt: o.onFailedAttempt,
      send: (batch) =>
        postWriteRequest(t, Buffer.from(snappy.compress(batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((c) => c.bytes)))), this.agent, this.ca),
    });
  }

  /** Queues one flush: `families` as series at `timestampMs` (default now), never waiting. */
  push(families: readonly PromFamily[], timestampMs = this.now()): void {
    const series = familiesToSeries(families, { externalLabels: this.o.target.externalLabels, nativeHistograms: this.o.target.nativeHistograms });
    const ts = Math.max(Math.round(timestampMs), this.lastTimestamp + 1);
    this.lastTimestamp = ts;
    for (let i = 0; i < series.length; i += this.maxSamples) {
      const part = series.slice(i, i + this.maxSamples);
      this.backlog.push({ bytes: encodeWriteRequest(part, ts), samples: part.length });
    }
  }

  /** Delivers what is queued (bounded), counts the rest, closes the kept connection. */
  async close(timeoutMs: number): Promise<void> {
    await this.backlog.close(timeoutMs);
    this.agent.destroy();
  }
}
