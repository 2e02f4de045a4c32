/**
 * What a flush turns into: a JSON line (jsonOut), Graphite plaintext (graphite), and
 * Prometheus text for GET /metrics; and the writers that deliver the first two
 * (Graphite's is ../outputs/graphite.ts). JSON and Graphite write Etsy statsd keys
 * (etsy-view.ts); Prometheus reads the raw names and tags (keys.ts).
 */
import { appendFile } from 'node:fs/promises';
import { PromWriter } from '@shardgram/udp-core/prom';
import { etsyFlush } from './etsy-view.js';
import { splitEtsyKey, splitKey } from './keys.js';
import type { FlushResult } from './merge.js';

/** One flush as one line of JSON (with its "\n"), with Etsy keys. */
export function formatJson(r: FlushResult): string {
  return `${JSON.stringify(etsyFlush(r))}\n`;
}

/** A bare tag `k` becomes `k=true`: Graphite and Prometheus need a value. */
function tagPairs(tags: readonly string[]): [string, string][] {
  return tags.map((t) => {
    const eq = t.indexOf('=');
    return eq < 0 ? [t, 'true'] : [t.slice(0, eq), t.slice(eq + 1) || 'true'];
  });
}

/** A Graphite path from an Etsy key (etsy-view.ts). */
function graphiteName(prefix: string, kind: string, key: string, ...suffix: string[]): string {
  const { name, tags } = splitEtsyKey(key);
  const path = [prefix, kind, name, ...suffix].filter((p) => p !== '').join('.');
  const t = tagPairs(tags)
    .map(([k, v]) => `;${k}=${v}`)
    .join('');
  return path + t;
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : '0';
}

/**
 * Graphite plaintext ("path value timestamp" lines), in Etsy statsd's non-legacy
 * namespace: <prefix>.counters.<name>.count and .rate, <prefix>.gauges.<name>,
 * <prefix>.sets.<name>.count, <prefix>.timers.<name>.<stat>, and
 * <prefix>.statsd.bad_lines_seen / metrics_received / packets_received. Tags follow
 * the path in Graphite's tagged form: `…count;env=prod`.
 */
export function formatGraphite(flush: FlushResult, prefix: string, flushIntervalMs: number): string {
  const r = etsyFlush(flush);
  const ts = r.timestamp;
  const lines: string[] = [];
  const add = (path: string, v: number): void => void lines.push(`${path} ${num(v)} ${ts}`);
  const seconds = flushIntervalMs / 1000;
  for (const [k, v] of Object.entries(r.counters)) {
    add(graphiteName(prefix, 'counters', k, 'count'), v);
    add(graphiteName(prefix, 'counters', k, 'rate'), v / seconds);
  }
  for (const [k, v] of Object.entries(r.gauges)) add(graphiteName(prefix, 'gauges', k), v);
  for (const [k, v] of Object.entries(r.sets)) add(graphiteName(prefix, 'sets', k, 'count'), v);
  for (const [k, t] of Object.entries(r.timers)) {
    for (const [stat, v] of Object.entries(t)) add(graphiteName(prefix, 'timers', k, stat), v);
  }
  add([prefix, 'statsd', 'bad_lines_seen'].filter(Boolean).join('.'), r.bad_lines_seen);
  add([prefix, 'statsd', 'metrics_received'].filter(Boolean).join('.'), r.metrics_received);
  add([prefix, 'statsd', 'packets_received'].filter(Boolean).join('.'), r.packets_received);
  if (r.key_collisions) add([prefix, 'statsd', 'key_collisions'].filter(Boolean).join('.'), r.key_collisions);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Sends Graphite text over a new TCP connection (../outputs/graphite.ts). */
export { sendGraphite } from '../outputs/graphite.js';

/** Appends one JSON line per flush to a file. */
export function appendJson(path: string, r: FlushResult): Promise<void> {
  return appendFile(path, formatJson(r));
}

// ---------------------------------------------------------------- Prometheus

const RESERVED_LABELS = new Set(['metric', 'stat', 'quantile', 'le', 'job', 'instance']);

function labelName(k: string): string {
  let n = k.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(n)) n = `_${n}`;
  if (n === '' || RESERVED_LABELS.has(n) || n.startsWith('__')) n = `tag_${n}`;
  return n;
}

/** A key's raw tags as label pairs: a bare tag `k` (or an empty value) becomes `k="true"`. */
function rawPairs(tags: readonly [string, string | undefined][]): [string, string][] {
  return tags.map(([k, v]) => [labelName(k), v || 'true']);
}

/** The labels of a key (raw name and tag values): `metric` (the name), one per tag (the first of a name wins), then `extra`. */
export function promLabels(key: string, extra: [string, string][] = []): Record<string, string> {
  const { name, tags } = splitKey(key);
  const out: Record<string, string> = { metric: name };
  for (const [k, v] of [...rawPairs(tags), ...extra]) {
    if (!Object.hasOwn(out, k)) out[k] = v;
  }
  return out;
}

/** promLabels as a record, for PromWriter (the timer histograms): the same labels. */
export function promLabelRecord(key: string): Record<string, string> {
  const { name, tags } = splitKey(key);
  const out: Record<string, string> = { metric: name };
  for (const [n, v] of rawPairs(tags)) {
    if (!Object.hasOwn(out, n)) out[n] = v;
  }
  return out;
}

/** What /metrics shows: the last flush, and totals since the start. */
export interface PrometheusState {
  last: FlushResult | undefined;
  /** Counter totals since the start, by key. */
  counterTotals: ReadonlyMap<string, number>;
  badLines: number;
  metrics: number;
  packets: number;
  flushes: number;
  missingPartials: number;
  outputErrors: number;
  namesTooLong: number;
  keysOverLimit: number;
  overflows: number;
  gaugesExpired: number;
}

/**
 * Prometheus text of the app (through core's PromWriter: every label escaped), written
 * into `w`. With `ownOnly` (the statsd_exporter layout, prom-registry.ts serves the
 * metrics themselves) only the receiver's own families.
 */
export function formatPrometheus(s: PrometheusState, w = new PromWriter(), ownOnly = false): string {
  if (!ownOnly) writeLabelsLayout(s, w);
  else if (s.last)
    w.family('shardgram_statsd_last_flush_timestamp_seconds', 'gauge', 'Unix time of the last flush.').sample(
      'shardgram_statsd_last_flush_timestamp_seconds',
      {},
      s.last.timestamp,
    );
  writeOwn(s, w);
  return w.text();
}

function writeLabelsLayout(s: PrometheusState, w: PromWriter): void {
  w.family('shardgram_statsd_counter_total', 'counter', 'StatsD counter: sample-rate-corrected total since the service started.');
  for (const [k, v] of s.counterTotals) w.sample('shardgram_statsd_counter_total', promLabels(k), v);
  const last = s.last;
  if (last) {
    w.family('shardgram_statsd_counter', 'gauge', 'StatsD counter: total of the last flush interval.');
    for (const [k, v] of Object.entries(last.counters)) w.sample('shardgram_statsd_counter', promLabels(k), v);
    w.family('shardgram_statsd_gauge', 'gauge', 'StatsD gauge value at the last flush.');
    for (const [k, v] of Object.entries(last.gauges)) w.sample('shardgram_statsd_gauge', promLabels(k), v);
    w.family('shardgram_statsd_set_unique', 'gauge', 'StatsD set: unique members in the last flush interval.');
    for (const [k, v] of Object.entries(last.sets)) w.sample('shardgram_statsd_set_unique', promLabels(k), v);
    w.family('shardgram_statsd_timer', 'gauge', 'StatsD timer figures of the last flush interval (stat: count, sum, mean, min, max, median, p<NN>).');
    for (const [k, t] of Object.entries(last.timers)) {
      for (const [stat, v] of Object.entries(t)) w.sample('shardgram_statsd_timer', promLabels(k, [['stat', stat]]), v);
    }
    w.family('shardgram_statsd_last_flush_timestamp_seconds', 'gauge', 'Unix time of the last flush.');
    w.sample('shardgram_statsd_last_flush_timestamp_seconds', {}, last.timestamp);
  }
}

function writeOwn(s: PrometheusState, w: PromWriter): void {
  const total = (name: string, help: string, v: number): void => void w.family(name, 'counter', help).sample(name, {}, v);
  total('shardgram_statsd_bad_lines_seen_total', 'Lines that were not valid metrics (Etsy: bad_lines_seen).', s.badLines);
  total('shardgram_statsd_metrics_received_total', 'Non-empty lines received.', s.metrics);
  total('shardgram_statsd_packets_received_total', 'Datagrams received.', s.packets);
  total('shardgram_statsd_flushes_total', 'Flushes done.', s.flushes);
  total('shardgram_statsd_missing_partials_total', "Flushes that went ahead without a worker's partial (it timed out).", s.missingPartials);
  total('shardgram_statsd_output_errors_total', 'Failed JSON or Graphite writes.', s.outputErrors);
  w.family('shardgram_statsd_rejected_total', 'counter', 'Lines or values dropped by a limit (reason: name_length, key_limit, overflow).');
  w.sample('shardgram_statsd_rejected_total', { reason: 'name_length' }, s.namesTooLong);
  w.sample('shardgram_statsd_rejected_total', { reason: 'key_limit' }, s.keysOverLimit);
  w.sample('shardgram_statsd_rejected_total', { reason: 'overflow' }, s.overflows);
  total('shardgram_statsd_gauges_expired_total', 'Gauges forgotten after gaugeExpiry flushes without an update.', s.gaugesExpired);
}
