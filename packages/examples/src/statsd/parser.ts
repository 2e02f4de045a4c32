/**
 * The StatsD line protocol, with the DogStatsD extensions (versions 1.1 to the latest)
 * and the tag styles statsd_exporter reads: one datagram holds one or more lines
 * separated by "\n"; each line is a metric
 *
 *   name:value[:value…]|type[|@rate][|#tag:value,tag2][|T<unix seconds>][|c:…][|e:…][|card:…][|<other>…]
 *
 * or a DogStatsD event (`_e{…}`) or service check (`_sc|…`), see dogstatsd.ts.
 * type is c (counter), g (gauge; a leading + or - makes it a delta), ms or h or d
 * (timer / histogram / distribution: all three are timers here), s (set). Several
 * values separated by ":" (DogStatsD 1.1 value packing) are several samples, for every
 * type but sets (a set member may hold ":"); empty ones (`1::2`) are skipped, as the
 * agent does. `|T` must be digits (≥ 1), and come once, else the line is bad; it is checked and
 * then not used (the sample counts in the interval that receives it, docs/statsd.md).
 * A field the parser does not know is ignored, as the protocol's owner ignores it for
 * forward compatibility, and counted (MetricSink.ignoredFields), not a bad line.
 * Tags may also come in the name (tag-styles.ts). Trailing CR, spaces and tabs are
 * dropped, except from an event (its text has a length). A bad line is reported to
 * the sink with its reason class (BadLineCode) and skipped; it never stops the lines after it. The parser does not throw on any
 * input (a property test holds it to that).
 *
 * Keys (keys.ts): the raw name followed by the sorted, de-duplicated raw tags, each
 * after a ";", a tag "k:v" becoming "k=v", with only the key's own separators escaped:
 * `api.hits|#route:/a,env:prod` → `api.hits;env=prod;route=/a`. The Prometheus outputs
 * read the raw name and tags from it (as statsd_exporter does); the Graphite and JSON
 * outputs write its Etsy statsd key (`api.hits;env=prod;route=-a`, keys.ts etsyKey).
 * A ";" in the name itself starts tags the same way. A name that sanitizes to nothing
 * (Etsy's rule) is a bad line (`name`).
 */
import { parseEvent, parseServiceCheck, type DogEvent, type ServiceCheck } from './dogstatsd.js';
import { metricKey } from './keys.js';
import { ALL_TAG_STYLES, splitNameTags, type TagStyles } from './tag-styles.js';

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
  /** A line that was not a metric (it was skipped): `reason` in words, `code` its class (BadLineCode). */
  bad(line: string, reason: string, code: BadLineCode): void;
  /** A DogStatsD event. */
  event(e: DogEvent): void;
  /** A DogStatsD service check. */
  serviceCheck(c: ServiceCheck): void;
  /** `n` fields of a good line were not known (or had an invalid value) and were ignored. */
  ignoredFields(n: number): void;
}

/** How lines are read: the longest name, and which name-embedded tag styles are on. */
export interface ParseOptions extends Partial<TagStyles> {
  /** Longest raw name (with its tags) accepted, in characters. Default: no limit. */
  maxName?: number;
}

interface Resolved extends TagStyles {
  maxName: number;
}

const DEFAULTS: Resolved = { ...ALL_TAG_STYLES, maxName: Infinity };

function resolve(o: number | ParseOptions | undefined): Resolved {
  if (o === undefined) return DEFAULTS;
  if (typeof o === 'number') return { ...ALL_TAG_STYLES, maxName: o };
  return { ...DEFAULTS, ...o };
}

/**
 * Why a bad line was rejected, one closed set (shardgram_statsd_bad_lines_total{reason}):
 * - syntax: no ":" after the name, or no "|type";
 * - name: nothing is left of the name once sanitized;
 * - name_length: the name (with its tags) is longer than maxName;
 * - type: a type that is none of c, g, ms, h, d, s;
 * - value: a value that is not a number of its type (or no value at all);
 * - rate: a sample rate that is not a number > 0, or two of them;
 * - tags: two `|#` fields, or SignalFX brackets twice in one name;
 * - mixed_tags: two tag styles in one line (tag-styles.ts);
 * - timestamp: a `|T` that is not Unix seconds, or two of them;
 * - event: a `_e{…}` line that is not an event (dogstatsd.ts);
 * - service_check: a `_sc|…` line that is not a service check.
 */
export type BadLineCode = 'syntax' | 'name' | 'name_length' | 'type' | 'value' | 'rate' | 'tags' | 'mixed_tags' | 'timestamp' | 'event' | 'service_check';

/** Every BadLineCode, in the order /metrics shows them. */
export const BAD_LINE_CODES: readonly BadLineCode[] = [
  'syntax',
  'name',
  'name_length',
  'type',
  'value',
  'rate',
  'tags',
  'mixed_tags',
  'timestamp',
  'event',
  'service_check',
];

/**
 * What every good metric line may add: `values` when it packed more than one value
 * (all of them, `value` being the first; for gauges `relative` then has one flag per
 * value), its `|T` timestamp, and how many fields were ignored. Absent when unused.
 */
interface LineExtras {
  values?: number[];
  timestamp?: number;
  ignoredFields?: number;
}

/** One parsed line (see parseLine). */
export type ParsedLine =
  | ({ ok: true; type: 'c'; key: string; value: number; sampleRate: number } & LineExtras)
  | ({ ok: true; type: 'g'; key: string; value: number; relative: boolean; relatives?: boolean[] } & LineExtras)
  | ({ ok: true; type: 'ms' | 'h' | 'd'; key: string; value: number; sampleRate: number } & LineExtras)
  | ({ ok: true; type: 's'; key: string; member: string } & Omit<LineExtras, 'values'>)
  | { ok: true; type: '_e'; event: DogEvent; ignoredFields?: number }
  | { ok: true; type: '_sc'; check: ServiceCheck; ignoredFields?: number }
  | { ok: false; reason: string; code: BadLineCode };

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A decimal number (no hex, no Infinity, no spaces), or NaN. */
function decimal(s: string): number {
  if (!DECIMAL.test(s)) return NaN;
  const n = Number(s);
  return Number.isFinite(n) ? n : NaN;
}

// DogStatsD origin-detection fields, read and not used: c:<container id>, e:<external data>, card:<cardinality>.
function isOriginField(f: string): boolean {
  return f.startsWith('c:') || f.startsWith('e:') || f.startsWith('card:');
}

const UNIX_SECONDS = /^[0-9]{1,15}$/;

/** The values of a packed value text (`1:2::3`), or null if one is not a number. */
function packedValues(text: string): string[] | null {
  const out = text.split(':').filter((v) => v !== '');
  return out.length > 0 ? out : null;
}

function extras(line: { ok: true } & LineExtras, values: number[] | undefined, timestamp: number | undefined, ignored: number): void {
  if (values !== undefined) line.values = values;
  if (timestamp !== undefined) line.timestamp = timestamp;
  if (ignored > 0) line.ignoredFields = ignored;
}

/**
 * Parses one line (without its "\n"). Never throws. A name whose raw text (with its
 * tags) is longer than `maxName` characters is rejected before its key is made.
 * `opts` is the longest name, or the ParseOptions.
 */
export function parseLine(raw: string, opts?: number | ParseOptions): ParsedLine {
  const o = resolve(opts);
  let line = raw;
  // Tolerate CRLF and trailing blanks. An event keeps its blanks: its text has a
  // length, and blanks after it are dropped by parseEvent (as the agent ignores them).
  const event = line.charCodeAt(0) === 95 /* _ */ && line.startsWith('_e{');
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c === 13 || (!event && (c === 32 || c === 9))) end--;
    else break;
  }
  if (end !== line.length) line = line.slice(0, end);
  if (event) {
    const e = parseEvent(line);
    if (!e.ok) return { ok: false, reason: e.reason, code: 'event' };
    return e.ignoredFields > 0 ? { ok: true, type: '_e', event: e.value, ignoredFields: e.ignoredFields } : { ok: true, type: '_e', event: e.value };
  }
  if (line.charCodeAt(0) === 95 /* _ */) {
    if (line.startsWith('_sc|')) {
      const c = parseServiceCheck(line);
      if (!c.ok) return { ok: false, reason: c.reason, code: 'service_check' };
      return c.ignoredFields > 0 ? { ok: true, type: '_sc', check: c.value, ignoredFields: c.ignoredFields } : { ok: true, type: '_sc', check: c.value };
    }
  }
  const colon = line.indexOf(':');
  if (colon < 0) return { ok: false, reason: 'no ":" after the name', code: 'syntax' };
  const fields = line.slice(colon + 1).split('|');
  if (fields.length < 2) return { ok: false, reason: 'no "|type"', code: 'syntax' };
  const valueText = fields[0]!;
  const type = fields[1]!;
  let sampleRate = 1;
  let rateSeen = false;
  let tags: string | undefined;
  let timestamp: number | undefined;
  let ignored = 0;
  for (let i = 2; i < fields.length; i++) {
    const f = fields[i]!;
    const c0 = f.charCodeAt(0);
    if (c0 === 64 /* @ */) {
      if (rateSeen) return { ok: false, reason: 'two sample rates', code: 'rate' };
      rateSeen = true;
      sampleRate = decimal(f.slice(1));
      if (!(sampleRate > 0) || !Number.isFinite(1 / sampleRate)) return { ok: false, reason: `bad sample rate "${f}"`, code: 'rate' };
    } else if (c0 === 35 /* # */) {
      if (tags !== undefined) return { ok: false, reason: 'two tag fields', code: 'tags' };
      tags = f.slice(1);
    } else if (c0 === 84 /* T */) {
      // DogStatsD 1.3 timestamp: Unix seconds, digits only and > 0 (the agent's rule); one only, like the rate and the tags.
      if (timestamp !== undefined) return { ok: false, reason: 'two timestamps', code: 'timestamp' };
      const t = f.slice(1);
      if (!UNIX_SECONDS.test(t) || Number(t) < 1) return { ok: false, reason: `timestamp "${f}" is not |T<unix seconds>`, code: 'timestamp' };
      timestamp = Number(t);
    } else if (!isOriginField(f)) {
      ignored++;
    }
  }
  if (colon + (tags?.length ?? 0) > o.maxName) return { ok: false, reason: `name longer than ${o.maxName} characters`, code: 'name_length' };
  let name = line.slice(0, colon);
  if (o.influxdbTags || o.libratoTags || o.signalfxTags) {
    const nt = splitNameTags(name, o);
    if (!nt.ok) return nt;
    if (nt.tags !== undefined) {
      if (tags !== undefined) return { ok: false, reason: 'tags in the name and DogStatsD |# tags: two tag styles', code: 'mixed_tags' };
      name = nt.name;
      tags = nt.tags;
    }
  }
  const key = metricKey(name, tags);
  if (key === '') return { ok: false, reason: 'empty name', code: 'name' };
  if (type === 's') {
    // Etsy: an empty member is "0". A set is never packed: its member may hold ":".
    const r: Extract<ParsedLine, { type: 's' }> = { ok: true, type, key, member: valueText === '' ? '0' : valueText };
    extras(r, undefined, timestamp, ignored);
    return r;
  }
  if (type !== 'c' && type !== 'g' && type !== 'ms' && type !== 'h' && type !== 'd') return { ok: false, reason: `unknown type "${type}"`, code: 'type' };
  const texts = valueText.includes(':') ? packedValues(valueText) : [valueText];
  if (texts === null) return { ok: false, reason: `no value in "${valueText}"`, code: 'value' };
  const values: number[] = [];
  const relatives: boolean[] = [];
  for (const text of texts) {
    const value = decimal(text);
    switch (type) {
      case 'c':
        if (Number.isNaN(value)) return { ok: false, reason: `counter value "${text}" is not a number`, code: 'value' };
        if (!Number.isFinite(value * (1 / sampleRate))) return { ok: false, reason: 'counter value / sample rate is out of range', code: 'value' };
        break;
      case 'g': {
        if (!Number.isFinite(value)) return { ok: false, reason: `gauge value "${text}" is not a number`, code: 'value' };
        const c = text.charCodeAt(0);
        relatives.push(c === 43 || c === 45);
        break;
      }
      default:
        if (!(value >= 0)) return { ok: false, reason: `timer value "${text}" is not a number ≥ 0`, code: 'value' };
    }
    values.push(value);
  }
  const packed = values.length > 1 ? values : undefined;
  if (type === 'g') {
    const g: Extract<ParsedLine, { type: 'g' }> = { ok: true, type, key, value: values[0]!, relative: relatives[0]! };
    if (packed) g.relatives = relatives;
    extras(g, packed, timestamp, ignored);
    return g;
  }
  const r: { ok: true; type: 'c' | 'ms' | 'h' | 'd'; key: string; value: number; sampleRate: number } & LineExtras = {
    ok: true,
    type,
    key,
    value: values[0]!,
    sampleRate,
  };
  extras(r, packed, timestamp, ignored);
  return r as ParsedLine;
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
export function parseDatagram(text: string, sink: MetricSink, opts?: number | ParseOptions): number {
  let lines = 0;
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = n;
    if (nl > start) {
      const line = nl - start === n ? text : text.slice(start, nl);
      lines++;
      const p = parseLine(line, opts);
      if (!p.ok) sink.bad(line, p.reason, p.code);
      else {
        if (p.ignoredFields !== undefined) sink.ignoredFields(p.ignoredFields);
        switch (p.type) {
          case 'c':
            if (p.values) for (const v of p.values) sink.counter(p.key, v, p.sampleRate);
            else sink.counter(p.key, p.value, p.sampleRate);
            break;
          case 'g':
            if (p.values) for (let i = 0; i < p.values.length; i++) sink.gauge(p.key, p.values[i]!, p.relatives![i]!);
            else sink.gauge(p.key, p.value, p.relative);
            break;
          case 's':
            sink.set(p.key, p.member);
            break;
          case '_e':
            sink.event(p.event);
            break;
          case '_sc':
            sink.serviceCheck(p.check);
            break;
          default:
            if (p.values) for (const v of p.values) sink.timer(p.key, v, p.sampleRate, p.type);
            else sink.timer(p.key, p.value, p.sampleRate, p.type);
        }
      }
    }
    start = nl + 1;
  }
  return lines;
}
