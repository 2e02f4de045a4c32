/**
 * Reading the values of a statsd_exporter mapping file as statsd_exporter (go-yaml v2)
 * reads them: scalars, YAML 1.1 booleans, Go durations, observer types, bucket and
 * quantile lists; each failure names the node (its line) and the reason.
 */
import { describeError } from '@shardgram/udp-core';
import { isMap, isScalar, isSeq, type Node, type Pair, type YAMLMap } from 'yaml';

export type Fail = (n: Node | Pair | null | undefined, reason: string) => never;

/** go-yaml v2's booleans (YAML 1.1), which statsd_exporter reads; the `yaml` package's YAML 1.2 knows only true and false. */
const YAML11_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON']);
const YAML11_FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF']);

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds ("1m20s", "1.5h", "0"). */
export function parseGoDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) throw new RangeError(`"${text}" is not a duration (e.g. 30s, 1m20s, 1.5h)`);
  let ms = 0;
  for (const part of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(part[1]) * UNITS[part[2]!]!;
  return m[1] === '-' ? -ms : ms;
}

export function unknownKey(k: string, where: string): string {
  return `unknown key "${k}" in ${where} (statsd_exporter refuses it too)`;
}

export function pairsOf(map: YAMLMap, known: Set<string>, fail: Fail, unknown: (k: string) => string): Map<string, Pair> {
  const out = new Map<string, Pair>();
  for (const p of map.items as Pair[]) {
    const k = isScalar(p.key) ? String(p.key.value) : '';
    if (!known.has(k)) fail(p, unknown(k));
    out.set(k, p);
  }
  return out;
}

export function scalar(v: Node, fail: Fail, what: string): string | number | boolean {
  if (!isScalar(v) || v.value === null || typeof v.value === 'object') return fail(v, `${what} must be a single value`);
  return v.value as string | number | boolean;
}

export function str(v: Node, fail: Fail, what: string): string {
  return String(scalar(v, fail, what));
}

export function num(v: Node, fail: Fail, what: string): number {
  const x = scalar(v, fail, what);
  const n = typeof x === 'number' ? x : Number(x);
  if (typeof x === 'boolean' || !Number.isFinite(n)) fail(v, `${what} must be a number; got ${JSON.stringify(x)}`);
  return n;
}

/** A boolean as go-yaml v2 reads one: true/false, and unquoted YAML 1.1 yes/no, on/off, y/n in their three casings. */
export function bool(v: Node, fail: Fail): boolean {
  const x = scalar(v, fail, 'a boolean');
  if (typeof x === 'boolean') return x;
  if (typeof x === 'string' && isScalar(v) && v.type === 'PLAIN') {
    if (YAML11_TRUE.has(x)) return true;
    if (YAML11_FALSE.has(x)) return false;
  }
  return fail(v, `expected true or false (or yes/no, on/off); got ${JSON.stringify(x)}`);
}

export function oneOf(v: Node, values: string[], fail: Fail, what: string): string {
  const x = str(v, fail, what);
  if (!values.includes(x)) fail(v, `invalid ${what} "${x}" (${values.filter(Boolean).join(', ')})`);
  return x;
}

export function observerType(v: Node, fail: Fail): 'summary' | 'histogram' {
  const x = oneOf(v, ['summary', 'histogram', ''], fail, 'observer type');
  return x === 'histogram' ? 'histogram' : 'summary';
}

export function duration(v: Node, fail: Fail): number {
  const text = str(v, fail, 'a duration');
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch (err) {
    return fail(v, describeError(err));
  }
  if (ms < 0) fail(v, 'a negative duration');
  return ms;
}

/** `quantiles: [{quantile: 0.99, error: 0.001}, …]` (summary_options', or the deprecated top-level one). */
export function quantileList(p: Pair, fail: Fail): [number, number][] {
  const val = p.value as Node;
  const out: [number, number][] = [];
  if (isScalar(val) && val.value === null) return out;
  if (!isSeq(val)) fail(p, 'quantiles must be a list of {quantile, error}');
  for (const q of (val as { items: Node[] }).items) {
    if (!isMap(q)) fail(q, 'each quantile is a map: {quantile: 0.99, error: 0.001}');
    let quantile = 0;
    let error = 0;
    for (const [qk, qp] of pairsOf(q as YAMLMap, new Set(['quantile', 'error']), fail, (key) => `unknown key "${key}" in a quantile (quantile, error)`)) {
      if (qk === 'quantile') quantile = num(qp.value as Node, fail, 'quantile');
      else error = num(qp.value as Node, fail, 'error');
    }
    if (!(quantile >= 0 && quantile <= 1)) fail(q, `a quantile is from 0 to 1; got ${quantile}`);
    out.push([quantile, error]);
  }
  return out;
}

/** `buckets: [0.1, 0.5, …]`, ascending (histogram_options', or the deprecated top-level one). */
export function bucketList(p: Pair, fail: Fail): number[] {
  const val = p.value as Node;
  if (isScalar(val) && val.value === null) return [];
  if (!isSeq(val)) fail(p, 'buckets must be a list of upper bounds');
  const out = (val as { items: Node[] }).items.map((b) => num(b, fail, 'a bucket bound'));
  for (let i = 1; i < out.length; i++) if (!(out[i]! > out[i - 1]!)) fail(val, 'histogram buckets must be in increasing order');
  return out;
}
