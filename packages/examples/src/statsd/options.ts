import { ShardgramError } from '@shardgram/udp-core';
/**
 * The statsd app's options, from `--app-option key=value` (context.options):
 *
 *   flushInterval=MS      flush period (default 10000, as Etsy statsd)
 *   percentiles=90,95,99  timer percentiles, each 0 < p ≤ 100 (default 90)
 *   jsonOut=FILE          append one JSON object per flush to FILE
 *   graphite=HOST:PORT    send each flush to Graphite's plaintext port over TCP
 *   graphitePrefix=P      first path element of Graphite names (default "stats")
 *   flushTimeout=MS       how long a flush waits for every worker's partial
 *                         (default: the smaller of 2000 and flushInterval)
 *   maxNameLength=N       longest name (with its tags) accepted, in characters (default 512)
 *   maxKeys=N             most distinct keys per flush interval, and most gauges kept (default 50000)
 *   gaugeExpiry=N         flushes without an update after which a gauge (and a counter's
 *                         Prometheus total) is forgotten; 0 = never (default 360)
 */

export interface GraphiteTarget {
  host: string;
  port: number;
}

export interface StatsdOptions {
  flushIntervalMs: number;
  percentiles: number[];
  jsonOut: string | undefined;
  graphite: GraphiteTarget | undefined;
  graphitePrefix: string;
  flushTimeoutMs: number;
  maxNameLength: number;
  maxKeys: number;
  gaugeExpiry: number;
}

export const STATSD_OPTION_NAMES = [
  'flushInterval', 'percentiles', 'jsonOut', 'graphite', 'graphitePrefix', 'flushTimeout', 'maxNameLength', 'maxKeys', 'gaugeExpiry',
] as const;

function bad(name: string, value: string, expected: string): ShardgramError {
  return new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `statsd option ${name}=${JSON.stringify(value)}: expected ${expected}`, { option: name });
}

function intMs(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw bad(name, value, `an integer number of milliseconds from ${min} to ${max}`);
  const n = Number(value);
  if (n < min || n > max) throw bad(name, value, `an integer number of milliseconds from ${min} to ${max}`);
  return n;
}

function int(name: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw bad(name, value, `an integer from ${min} to ${max}`);
  return n;
}

/** `host:port`, `[v6]:port`. */
export function parseHostPort(value: string): GraphiteTarget {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw bad('graphite', value, 'HOST:PORT, e.g. 127.0.0.1:2003 or [::1]:2003');
  return { host: (m[1] ?? m[2])!, port };
}

export function parsePercentiles(value: string): number[] {
  const out: number[] = [];
  for (const part of value.split(',')) {
    const s = part.trim();
    const p = /^\d+(?:\.\d+)?$/.test(s) ? Number(s) : NaN;
    if (!(p > 0 && p <= 100)) throw bad('percentiles', value, 'a comma-separated list of numbers above 0 and up to 100, e.g. 90,95,99');
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Validates and resolves the options; throws a ShardgramError (ERR_SHARDGRAM_INVALID_ARG) naming the bad one. */
export function parseStatsdOptions(raw: Readonly<Record<string, string>>): StatsdOptions {
  for (const k of Object.keys(raw)) {
    if (!(STATSD_OPTION_NAMES as readonly string[]).includes(k)) {
      throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `unknown statsd option "${k}"; the options are ${STATSD_OPTION_NAMES.join(', ')}`, { option: k });
    }
  }
  const flushIntervalMs = raw.flushInterval !== undefined ? intMs('flushInterval', raw.flushInterval, 10, 86_400_000) : 10_000;
  const flushTimeoutMs = raw.flushTimeout !== undefined ? intMs('flushTimeout', raw.flushTimeout, 1, 600_000) : Math.min(2000, flushIntervalMs);
  const jsonOut = raw.jsonOut;
  if (jsonOut === '') throw bad('jsonOut', jsonOut, 'a file path');
  const prefix = raw.graphitePrefix ?? 'stats';
  if (!/^[A-Za-z0-9_.-]*$/.test(prefix)) throw bad('graphitePrefix', prefix, 'letters, digits, "_", "-" and "." only');
  return {
    flushIntervalMs,
    percentiles: raw.percentiles !== undefined ? parsePercentiles(raw.percentiles) : [90],
    jsonOut,
    graphite: raw.graphite !== undefined ? parseHostPort(raw.graphite) : undefined,
    graphitePrefix: prefix,
    flushTimeoutMs,
    maxNameLength: raw.maxNameLength !== undefined ? int('maxNameLength', raw.maxNameLength, 1, 65_536) : 512,
    maxKeys: raw.maxKeys !== undefined ? int('maxKeys', raw.maxKeys, 1, 10_000_000) : 50_000,
    gaugeExpiry: raw.gaugeExpiry !== undefined ? int('gaugeExpiry', raw.gaugeExpiry, 0, 1_000_000) : 360,
  };
}
