/**
 * The statsd app's Prometheus remote write options (part of its schema, options.ts),
 * named after Prometheus's own `remote_write` settings:
 *
 *   remoteWrite=URL                 push every flush to URL (`--remote-write`)
 *   remoteWriteBacklog=N            samples kept while the receiver is slow or down (default 1000000)
 *   remoteWriteBacklogBytes=N       and at most N bytes of them, encoded (default 268435456: 256 MiB;
 *                                   a native histogram weighs by its buckets)
 *   remoteWriteLabels=k=v,…         external labels, added to every series that lacks them (`--remote-write-labels`)
 *   remoteWriteUsername=U           basic auth user, with remoteWritePassword or remoteWritePasswordFile
 *   remoteWriteBearerToken=T        bearer auth (Authorization: Bearer T), or remoteWriteBearerTokenFile
 *   remoteWriteCaFile=FILE          PEM CAs trusted for an https URL besides Node's and the system's
 *   remoteWriteTimeout=MS           one request's limit (default 30000, as `remote_timeout`)
 *   remoteWriteNativeHistograms=on  send timers' native histograms (off: the classic series only)
 *
 * A password or token file is read at each request (so it can be rotated), and must be
 * readable at start. A bearer token (given or in its file at start) that cannot be an
 * HTTP header value (a control character, one above U+00FF) is refused at start. Basic and bearer auth exclude each other; a URL with credentials
 * in it is refused (they would show in logs): the options say them.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ShardgramError } from '@shardgram/udp-core';
import { defineAppOptions, OptionValueError, type AppOptionValues } from '@shardgram/udp-core/app-options';
import { invalidHeaderValue, type RemoteWriteAuth, type RemoteWriteTarget } from '../outputs/remote-write.js';

/** `on`/`off` (also true/false, yes/no, 1/0). */
export function onOff(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(v)) return true;
  if (['off', 'false', 'no', '0'].includes(v)) return false;
  throw new OptionValueError('on or off');
}

function httpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new OptionValueError('an http:// or https:// URL, e.g. http://127.0.0.1:9090/api/v1/write');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OptionValueError('an http:// or https:// URL, e.g. http://127.0.0.1:9090/api/v1/write');
  if (url.username || url.password) {
    throw new OptionValueError(
      'a URL without credentials (give them with remoteWriteUsername and remoteWritePasswordFile)',
      '(a URL with credentials, not shown)',
    );
  }
  return url;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** `k=v,k2=v2`: Prometheus label names (not `__…`), any value without a comma. */
export function labelList(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    const eq = s.indexOf('=');
    const k = eq > 0 ? s.slice(0, eq).trim() : '';
    if (!LABEL_NAME.test(k) || k.startsWith('__')) {
      throw new OptionValueError(
        'a comma-separated list of name=value, each name a Prometheus label name not starting with "__", e.g. job=statsd,instance=host1',
      );
    }
    out[k] = s.slice(eq + 1).trim();
  }
  return out;
}

/** A file that can be read now: made absolute. */
function readableFile(what: string): (text: string) => string {
  return (text) => {
    const s = text.trim();
    const path = isAbsolute(s) ? s : resolve(s);
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      throw new OptionValueError(`a readable ${what} file`, `${JSON.stringify(text)} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    return path;
  };
}

/** A PEM file with at least one certificate. */
function pemFile(text: string): string {
  const path = readableFile('CA')(text);
  if (!readFileSync(path, 'utf8').includes('-----BEGIN CERTIFICATE-----'))
    throw new OptionValueError('a PEM file of CA certificates', `${JSON.stringify(text)} (no certificate in it)`);
  return path;
}

function wholeIn(min: number, max: number, unit: string): (v: string) => number {
  return (v) => {
    const n = /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!(n >= min && n <= max)) throw new OptionValueError(`a whole number of ${unit} from ${min} to ${max}`);
    return n;
  };
}

const text = (t: string): string => t;

export const remoteWriteOptionSchema = defineAppOptions({
  remoteWrite: {
    flag: 'remote-write',
    value: 'URL',
    help: 'push every flush to a Prometheus remote write receiver (Prometheus, Mimir, Thanos, Cortex, VictoriaMetrics)',
    parse: httpUrl,
    default: undefined as URL | undefined,
  },
  remoteWriteBacklog: {
    value: 'N',
    help: 'samples kept while the remote write receiver is slow or down; past it the oldest are counted and dropped',
    parse: wholeIn(1, 100_000_000, 'samples'),
    default: 1_000_000,
  },
  remoteWriteBacklogBytes: {
    value: 'N',
    help: 'bytes (encoded, uncompressed) kept while the remote write receiver is slow or down, besides remoteWriteBacklog; past it the oldest are counted and dropped',
    parse: wholeIn(1 << 20, 64 * 2 ** 30, 'bytes'),
    default: 256 * 1024 * 1024,
  },
  remoteWriteLabels: {
    flag: 'remote-write-labels',
    value: 'LIST',
    help: 'external labels of remote write, e.g. job=statsd,instance=host1',
    parse: labelList,
    default: {} as Record<string, string>,
    defaultText: 'none',
  },
  remoteWriteUsername: {
    value: 'U',
    help: 'remote write basic auth user (with remoteWritePassword or remoteWritePasswordFile)',
    parse: text,
    default: undefined as string | undefined,
  },
  remoteWritePassword: {
    value: 'P',
    help: 'remote write basic auth password (remoteWritePasswordFile keeps it off the command line)',
    parse: text,
    default: undefined as string | undefined,
  },
  remoteWritePasswordFile: {
    value: 'FILE',
    help: 'file holding the remote write basic auth password (read at each request)',
    parse: readableFile('password'),
    default: undefined as string | undefined,
  },
  remoteWriteBearerToken: {
    value: 'T',
    help: 'remote write bearer token (remoteWriteBearerTokenFile keeps it off the command line)',
    parse: text,
    default: undefined as string | undefined,
  },
  remoteWriteBearerTokenFile: {
    value: 'FILE',
    help: 'file holding the remote write bearer token (read at each request)',
    parse: readableFile('bearer token'),
    default: undefined as string | undefined,
  },
  remoteWriteCaFile: {
    value: 'FILE',
    help: "PEM CAs trusted for an https remote write URL, besides Node's and the system's",
    parse: pemFile,
    default: undefined as string | undefined,
  },
  remoteWriteTimeout: { value: 'MS', help: 'longest wait for one remote write request', parse: wholeIn(100, 600_000, 'milliseconds'), default: 30_000 },
  remoteWriteNativeHistograms: {
    value: 'on|off',
    help: "send timers' native histograms by remote write (off for a receiver without native histograms)",
    parse: onOff,
    default: true,
  },
});

type Parsed = AppOptionValues<typeof remoteWriteOptionSchema>;

function refuse(option: string, message: string): never {
  throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', message, { option });
}

/** The remote write target of the parsed options, or undefined without remoteWrite; throws on options that do not go together. */
export function remoteWriteTarget(o: Parsed): RemoteWriteTarget | undefined {
  const basic = o.remoteWriteUsername !== undefined || o.remoteWritePassword !== undefined || o.remoteWritePasswordFile !== undefined;
  const bearer = o.remoteWriteBearerToken !== undefined || o.remoteWriteBearerTokenFile !== undefined;
  if (!o.remoteWrite) {
    const stray = (Object.keys(remoteWriteOptionSchema) as (keyof Parsed)[]).find((k) => k !== 'remoteWrite' && o[k] !== remoteWriteOptionSchema[k].default);
    if (stray) refuse(stray, `${stray} is a remote write option: give remoteWrite (--remote-write URL) too`);
    return undefined;
  }
  if (basic && bearer)
    refuse('remoteWriteBearerToken', 'remote write takes basic auth (remoteWriteUsername…) or a bearer token (remoteWriteBearerToken…), not both');
  if (o.remoteWritePassword !== undefined && o.remoteWritePasswordFile !== undefined)
    refuse('remoteWritePassword', 'give remoteWritePassword or remoteWritePasswordFile, not both');
  if (o.remoteWriteBearerToken !== undefined && o.remoteWriteBearerTokenFile !== undefined)
    refuse('remoteWriteBearerToken', 'give remoteWriteBearerToken or remoteWriteBearerTokenFile, not both');
  if (basic && o.remoteWriteUsername === undefined) refuse('remoteWriteUsername', 'remote write basic auth needs remoteWriteUsername');
  if (o.remoteWriteCaFile !== undefined && o.remoteWrite.protocol !== 'https:')
    refuse('remoteWriteCaFile', 'remoteWriteCaFile is for an https:// remote write URL');
  if (o.remoteWriteBearerToken !== undefined) {
    const bad = invalidHeaderValue(o.remoteWriteBearerToken);
    if (bad) refuse('remoteWriteBearerToken', `remoteWriteBearerToken is not usable: ${bad}; give the token as issued`);
  }
  if (o.remoteWriteBearerTokenFile !== undefined) {
    const bad = invalidHeaderValue(readFileSync(o.remoteWriteBearerTokenFile, 'utf8').trim());
    if (bad) refuse('remoteWriteBearerTokenFile', `remoteWriteBearerTokenFile ${o.remoteWriteBearerTokenFile} holds a token that is not usable: ${bad}`);
  }
  let auth: RemoteWriteAuth | undefined;
  if (basic) {
    auth = {
      kind: 'basic',
      username: o.remoteWriteUsername!,
      ...(o.remoteWritePasswordFile !== undefined ? { passwordFile: o.remoteWritePasswordFile } : { password: o.remoteWritePassword ?? '' }),
    };
  } else if (bearer) {
    auth = {
      kind: 'bearer',
      ...(o.remoteWriteBearerTokenFile !== undefined ? { tokenFile: o.remoteWriteBearerTokenFile } : { token: o.remoteWriteBearerToken! }),
    };
  }
  return {
    url: o.remoteWrite,
    externalLabels: o.remoteWriteLabels,
    auth,
    timeoutMs: o.remoteWriteTimeout,
    caFile: o.remoteWriteCaFile,
    nativeHistograms: o.remoteWriteNativeHistograms,
  };
}
