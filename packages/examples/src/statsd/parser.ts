/**
 * The StatsD line protocol, with DogStatsD tags: one datagram holds one or more
 * lines separated by "\n"; each line is
 *
 *   name:value|type[|@rate][|#tag:value,tag2][|<DogStatsD extension field>…]
 *
 * type is c (counter), g (gauge; a leading + or - makes it a delta), ms or h or d
 * (timer / histogram / distribution: all three are timers here), s (set). A bad line
 * is reported to the sink and skipped; it never stops the lines after it. The parser
 * does not throw on any input (a property test holds it to that).
 *
 * Keys: the name and every tag are sanitized as Etsy statsd does (whitespace → "_",
 * "/" → "-", anything but [A-Za-z0-9_.;=-] dropped); a tag "k:v" becomes "k=v"; the
 * key is the name followed by the sorted, de-duplicated tags, each after a ";":
 * `api.hits|#route:/a,env:prod` → `api.hits;env=prod;route=-a`. That is Graphite's
 * tagged-series syntax, and Etsy statsd's key for the same line except that Etsy keeps
 * the sender's tag order. A ";" in the name itself starts tags the same way.
 */

export type MetricType = 'c' | 'g' | 'ms' | 'h' | 'd' | 's';

/** Where parsed lines go. */
export interface MetricSink {
  /** A counter increment: `value` times `1 / sampleRate` is to be added. */
  counter(key: string, value: number, sampleRate: number): void;
  /** A gauge: `relative` means add `value` (it had a sign), else set it. */
  gauge(key: string, value: number, relative: boolean): void;
  /** One timing (ms, h or d: `type`, which says its unit), sampled at `sampleRate`. */
  timer(key: string, value: number, sampleRate: number, type: 'ms' | 'h' | 'd'): void;
  /** A set member. */
  set(key: string, member: string): void;
  /** A line that was not a metric (it was skipped); `code` names a limit it broke. */
  bad(line: string, reason: string, code?: BadLineCode): void;
}

/** Why a bad line was rejected, when it was a limit rather than the syntax. */
export type BadLineCode = 'name_length';

/** One parsed line (see parseLine). */
export type ParsedLine =
  | { ok: true; type: 'c'; key: string; value: number; sampleRate: number }
  | { ok: true; type: 'g'; key: string; value: number; relative: boolean }
  | { ok: true; type: 'ms' | 'h' | 'd'; key: string; value: number; sampleRate: number }
  | { ok: true; type: 's'; key: string; member: string }
  | { ok: false; reason: string; code?: BadLineCode };

const CLEAN_NAME = /^[A-Za-z0-9_.-]+$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function sanitize(s: string): string {
  return s.replace(/\s+/g, '_').replace(/\//g, '-').replace(/[^a-zA-Z_\-0-9.;=]/g, '');
}

/** A decimal number (no hex, no Infinity, no spaces), or NaN. */
function decimal(s: string): number {
  if (!DECIMAL.test(s)) return NaN;
  const n = Number(s);
  return Number.isFinite(n) ? n : NaN;
}

/** Keys already built from a raw name and raw tags; bounded (cleared when full). */
const keyCache = new Map<string, string>();
const KEY_CACHE_MAX = 20_000;

/**
 * The aggregation key of a raw name and raw DogStatsD tag list (without the "#"),
 * or "" when nothing is left of the name.
 */
export function metricKey(rawName: string, rawTags?: string): string {
  if (rawTags === undefined && CLEAN_NAME.test(rawName)) return rawName;
  // "\n" cannot occur inside a line, so name and tags never run into each other here.
  const cacheKey = rawTags === undefined ? rawName : `${rawName}\n${rawTags}`;
  const hit = keyCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const parts = sanitize(rawName).split(';');
  const name = parts[0] ?? '';
  let key = '';
  if (name !== '') {
    const tags = parts.slice(1);
    if (rawTags !== undefined) {
      for (const t of rawTags.split(',')) {
        // Etsy: "k:v" → "k=v" (the first ":" only); a ";" would start another tag.
        tags.push(sanitize(t.replace(':', '=').replace(/;/g, '_')));
      }
    }
    const clean = [...new Set(tags.filter((t) => t !== '' && t !== '='))].sort();
    key = clean.length ? `${name};${clean.join(';')}` : name;
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(cacheKey, key);
  return key;
}

/** Splits a key into its name and its tags (`k=v` or a bare `k`). */
export function splitKey(key: string): { name: string; tags: string[] } {
  const parts = key.split(';');
  return { name: parts[0] ?? '', tags: parts.slice(1) };
}

// DogStatsD fields after the tags that this receiver ignores: T<unix time>, c:<container>, e:<external data>, card:<cardinality>.
function isExtensionField(f: string): boolean {
  return f.startsWith('T') || f.startsWith('c:') || f.startsWith('e:') || f.startsWith('card:');
}

/**
 * Parses one line (without its "\n"). Never throws. A name whose raw text (with its
 * tags) is longer than `maxName` characters is rejected before it is sanitized.
 */
export function parseLine(raw: string, maxName = Infinity): ParsedLine {
  let line = raw;
  // Tolerate CRLF and trailing blanks.
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c === 13 || c === 32 || c === 9) end--;
    else break;
  }
  if (end !== line.length) line = line.slice(0, end);
  const colon = line.indexOf(':');
  if (colon < 0) return { ok: false, reason: 'no ":" after the name' };
  const fields = line.slice(colon + 1).split('|');
  if (fields.length < 2) return { ok: false, reason: 'no "|type"' };
  const valueText = fields[0]!;
  const type = fields[1]!;
  let sampleRate = 1;
  let rateSeen = false;
  let tags: string | undefined;
  for (let i = 2; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.charCodeAt(0) === 64 /* @ */) {
      if (rateSeen) return { ok: false, reason: 'two sample rates' };
      rateSeen = true;
      sampleRate = decimal(f.slice(1));
      if (!(sampleRate > 0) || !Number.isFinite(1 / sampleRate)) return { ok: false, reason: `bad sample rate "${f}"` };
    } else if (f.charCodeAt(0) === 35 /* # */) {
      if (tags !== undefined) return { ok: false, reason: 'two tag fields' };
      tags = f.slice(1);
    } else if (!isExtensionField(f)) {
      return { ok: false, reason: `unknown field "${f}"` };
    }
  }
  if (colon + (tags?.length ?? 0) > maxName) return { ok: false, reason: `name longer than ${maxName} characters`, code: 'name_length' };
  const key = metricKey(line.slice(0, colon), tags);
  if (key === '') return { ok: false, reason: 'empty name' };
  switch (type) {
    case 'c': {
      const value = decimal(valueText);
      if (Number.isNaN(value)) return { ok: false, reason: `counter value "${valueText}" is not a number` };
      if (!Number.isFinite(value * (1 / sampleRate))) return { ok: false, reason: 'counter value / sample rate is out of range' };
      return { ok: true, type, key, value, sampleRate };
    }
    case 'g': {
      const value = decimal(valueText);
      if (!Number.isFinite(value)) return { ok: false, reason: `gauge value "${valueText}" is not a number` };
      const c = valueText.charCodeAt(0);
      return { ok: true, type, key, value, relative: c === 43 || c === 45 };
    }
    case 'ms':
    case 'h':
    case 'd': {
      const value = decimal(valueText);
      if (!(value >= 0)) return { ok: false, reason: `timer value "${valueText}" is not a number ≥ 0` };
      return { ok: true, type, key, value, sampleRate };
    }
    case 's':
      // Etsy: an empty member is "0".
      return { ok: true, type, key, member: valueText === '' ? '0' : valueText };
    default:
      return { ok: false, reason: `unknown type "${type}"` };
  }
}

// Bytes of a name that needs no sanitizing: [A-Za-z0-9_.-].
const CLEAN_BYTE = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const ch = String.fromCharCode(c);
  CLEAN_BYTE[c] = /[A-Za-z0-9_.-]/.test(ch) ? 1 : 0;
}

/** Recently seen clean names by hash slot: their bytes and their string (a direct-mapped cache). */
const NAME_SLOTS = 4096;
const slotBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(NAME_SLOTS).fill(undefined);
const slotNames: string[] = new Array<string>(NAME_SLOTS).fill('');

/**
 * The string of buf[0, len), a name whose hash is `h`: the string made the last time
 * these bytes came, if they still own their slot (no string is made, and the Map
 * lookups that follow hit a string whose hash V8 has already computed). Only clean
 * names are cached, so a hit needs no byte check; a name that is not clean gives "".
 */
function cachedName(buf: Buffer, len: number, h: number): string {
  const slot = h & (NAME_SLOTS - 1);
  const b = slotBytes[slot];
  if (b !== undefined && b.length === len) {
    let i = 0;
    while (i < len && b[i] === buf[i]) i++;
    if (i === len) return slotNames[slot]!;
  }
  for (let i = 0; i < len; i++) if (CLEAN_BYTE[buf[i]!] !== 1) return '';
  const name = buf.toString('latin1', 0, len);
  slotBytes[slot] = Buffer.from(buf.subarray(0, len)); // a copy: buf is the engine's arena
  slotNames[slot] = name;
  return name;
}

/**
 * The fast path for the commonest datagram: one line `name:value|c`, `|ms` or `|g`
 * with a clean name, an integer value, no rate, no tags. Returns false (having done
 * nothing) for anything else, which then takes the general path. Gives the same
 * result as parseDatagram for what it accepts (a test holds it to that).
 */
export function parseSimpleDatagram(buf: Buffer, sink: MetricSink, maxName = Infinity): boolean {
  const n = buf.length;
  let i = 0;
  let h = 0;
  // Up to the first ":" (whether the name is clean is checked once, by cachedName).
  for (let c = 0; i < n && (c = buf[i]!) !== 58 /* : */; i++) h = (Math.imul(h, 31) + c) | 0;
  if (i === 0 || i >= n || i > maxName) return false;
  const colon = i++;
  let neg = false;
  let sign = false;
  if (i < n && (buf[i] === 45 /* - */ || buf[i] === 43) /* + */) {
    neg = buf[i] === 45;
    sign = true;
    i++;
  }
  const digits = i;
  let value = 0;
  while (i < n) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) break;
    value = value * 10 + d;
    i++;
  }
  // 15 digits keep the accumulation exact (< 2^53).
  if (i === digits || i - digits > 15 || i >= n || buf[i] !== 124 /* | */) return false;
  if (neg) value = -value;
  const t = i + 1;
  const rest = n - t;
  let kind: number;
  if (rest === 1 && buf[t] === 99 /* c */) kind = 0;
  else if (rest === 2 && buf[t] === 109 /* m */ && buf[t + 1] === 115 /* s */ && !neg) kind = 1;
  else if (rest === 1 && buf[t] === 103 /* g */) kind = 2;
  else return false;
  const name = cachedName(buf, colon, h);
  if (name === '') return false;
  if (kind === 0) sink.counter(name, value, 1);
  else if (kind === 1) sink.timer(name, value, 1, 'ms');
  else sink.gauge(name, value, sign);
  return true;
}

/**
 * Parses every line of a datagram's text into `sink`. Returns the number of
 * non-empty lines (Etsy's metrics_received); bad ones went to `sink.bad`.
 */
export function parseDatagram(text: string, sink: MetricSink, maxName = Infinity): number {
  let lines = 0;
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = n;
    if (nl > start) {
      const line = nl - start === n ? text : text.slice(start, nl);
      lines++;
      const p = parseLine(line, maxName);
      if (!p.ok) sink.bad(line, p.reason, p.code);
      else {
        switch (p.type) {
          case 'c':
            sink.counter(p.key, p.value, p.sampleRate);
            break;
          case 'g':
            sink.gauge(p.key, p.value, p.relative);
            break;
          case 's':
            sink.set(p.key, p.member);
            break;
          default:
            sink.timer(p.key, p.value, p.sampleRate, p.type);
        }
      }
    }
    start = nl + 1;
  }
  return lines;
}
