/**
 * Prometheus remote write 1.0 as an output: each flush's families (the same ones
 * `GET /metrics` serves) become series at the flush time (`familiesToSeries` in
 * udp-core's `/prom`), encoded in chunks of at most `maxSamplesPerSend` samples (and
 * never more than the backlog's capacity, so that a flush bigger than the backlog is
 * still delivered chunk after chunk to a receiver that keeps up) and queued in a
 * backlog of their own (./backlog.ts, counted in samples: a float sample or a native
 * histogram is one; also weighed by encoded size against `capacityBytes`, since a
 * native histogram with many buckets weighs far more than a float sample, a chunk
 * heavier than that being split in smaller ones). The sender posts a batch of queued chunks as one
 * request: their encodings concatenated (one `WriteRequest`), snappy-compressed
 * (`snappyjs`: pure JS, see docs/statsd.md), with the headers the protocol requires.
 *
 * - 2xx: delivered. 5xx, 429, a network error or no answer within `timeoutMs`: failed,
 *   retried with the backlog's backoff (the receiver stores a request whole or not at
 *   all, so a retry adds nothing twice); a 429 or 503 with Retry-After (seconds or an
 *   HTTP date) waits at least that long, capped by the backlog's longest backoff. Any other status (400: out of order, bad
 *   labels; 401/403: credentials; 404: wrong path): refused for good, counted as
 *   `rejected` with the status and the first line of the answer (escaped), not retried.
 * - Basic or bearer auth as Prometheus's `remote_write` offers it (a password or token
 *   file is read at each attempt, trimmed, so it can be rotated); an `https:` URL is
 *   checked against Node's CAs, the system's bundle (`SSL_CERT_FILE`, or the usual
 *   distribution paths) and an optional CA file, read once into one TLS context.
 *   A bearer token that cannot be an HTTP header value is refused at start
 *   (remote-write-options.ts); one read later from its file fails the attempt (retried).
 * - Timestamps of successive flushes strictly increase (a clock step back would
 *   otherwise make the receiver refuse them as out of order).
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import snappy from 'snappyjs';
import { escapeText } from '@shardgram/udp-core';
import { encodeWriteRequest, familiesToSeries, REMOTE_WRITE_HEADERS, type PromFamily } from '@shardgram/udp-core/prom';
import { Backlog, RetryLater, Undeliverable } from './backlog.js';

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
  /** Most encoded bytes held (besides `capacity`). Default 256 MiB. */
  capacityBytes?: number;
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

/** The default byte cap of the backlog (encoded, before compression). */
export const DEFAULT_CAPACITY_BYTES = 256 * 1024 * 1024;

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

/** Why `value` cannot be an HTTP header value (a control character, one above U+00FF), or undefined when it can. */
export function invalidHeaderValue(value: string): string | undefined {
  try {
    http.validateHeaderValue('Authorization', value);
    return undefined;
  } catch {
    const bad = /[^\t\x20-\x7e\x80-\xff]/.exec(value);
    return bad
      ? `the character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} cannot be in an HTTP header`
      : 'not a valid HTTP header value';
  }
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
  const token = auth.tokenFile !== undefined ? read(auth.tokenFile, 'bearer token') : (auth.token ?? '');
  const bad = invalidHeaderValue(token);
  if (bad) throw new Error(`the bearer token${auth.tokenFile !== undefined ? ` in ${auth.tokenFile}` : ''} is not usable: ${bad}`);
  return `Bearer ${token}`;
}

/** Milliseconds a Retry-After value asks for (seconds or an HTTP date), or 0. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number {
  if (!value) return 0;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : 0;
}

/** The URL as a log shows it (no query: it may hold a key). */
export function showUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * One POST of a compressed `WriteRequest`: resolves on 2xx; rejects with Undeliverable
 * on a status retrying cannot fix, with an Error (retried) on 5xx, 429 and network errors.
 */
export function postWriteRequest(target: RemoteWriteTarget, body: Buffer, agent: http.Agent, signal?: AbortSignal): Promise<void> {
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
    // The TLS context (the CAs) is the agent's, built once.
    const options: https.RequestOptions = { method: 'POST', headers, agent, timeout: target.timeoutMs, ...(signal ? { signal } : {}) };
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
        if (status >= 500 || status === 429) {
          const after = status === 429 || status === 503 ? retryAfterMs(res.headers['retry-after']) : 0;
          finish(after > 0 ? new RetryLater(`${why} (Retry-After ${after} ms)`, after) : new Error(why));
        } else finish(new Undeliverable(why));
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
  private readonly maxBytes: number;
  private readonly now: () => number;
  private lastTimestamp = 0;

  /** Reads the CA files now (throws when one cannot be read). */
  constructor(private readonly o: RemoteWriteOptions) {
    const t = o.target;
    this.name = `remote write ${showUrl(t.url)}`;
    // A chunk no heavier than the backlog: it can always be queued.
    this.maxSamples = Math.min(o.maxSamplesPerSend ?? 2000, o.capacity);
    this.maxBytes = o.capacityBytes ?? DEFAULT_CAPACITY_BYTES;
    this.now = o.now ?? Date.now;
    const tls = t.url.protocol === 'https:';
    // One connection, kept between requests (the backlog sends one request at a time);
    // the CAs parsed once, into the one TLS context every connection uses.
    this.agent = tls
      ? new https.Agent({ keepAlive: true, maxSockets: 1, secureContext: createSecureContext({ ca: trustedCas(t.caFile) }) })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.backlog = new Backlog<Chunk>({
      name: this.name,
      capacity: o.capacity,
      capacityBytes: this.maxBytes,
      unitName: 'samples',
      units: (c) => c.samples,
      bytes: (c) => c.bytes.length,
      maxBatchUnits: this.maxSamples,
      retryMinMs: o.retryMinMs,
      retryMaxMs: o.retryMaxMs,
      log: o.log,
      onFailedAttempt: o.onFailedAttempt,
      send: (batch, signal) =>
        postWriteRequest(t, Buffer.from(snappy.compress(batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((c) => c.bytes)))), this.agent, signal),
    });
  }

  /** Queues one flush: `families` as series at `timestampMs` (default now), never waiting. */
  push(families: readonly PromFamily[], timestampMs = this.now()): void {
    const series = familiesToSeries(families, { externalLabels: this.o.target.externalLabels, nativeHistograms: this.o.target.nativeHistograms });
    const ts = Math.max(Math.round(timestampMs), this.lastTimestamp + 1);
    this.lastTimestamp = ts;
    for (let i = 0; i < series.length; i += this.maxSamples) this.pushPart(series.slice(i, i + this.maxSamples), ts);
  }

  /** Encodes and queues `part`, halved until its encoding is within the byte cap (a lone series heavier than it is dropped and counted by the backlog). */
  private pushPart(part: ReturnType<typeof familiesToSeries>, ts: number): void {
    const bytes = encodeWriteRequest(part, ts);
    if (bytes.length > this.maxBytes && part.length > 1) {
      const half = Math.ceil(part.length / 2);
      this.pushPart(part.slice(0, half), ts);
      this.pushPart(part.slice(half), ts);
      return;
    }
    this.backlog.push({ bytes, samples: part.length });
  }

  /** Delivers what is queued (bounded), counts the rest, closes the kept connection. */
  async close(timeoutMs: number): Promise<void> {
    await this.backlog.close(timeoutMs);
    this.agent.destroy();
  }
}
