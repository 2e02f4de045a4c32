/**
 * The Prometheus protobuf exposition format: families (prom-text.ts) encoded as
 * length-delimited `io.prometheus.client.MetricFamily` messages with protobufjs, from
 * Prometheus's own `proto/metrics.proto`; native histograms included (the text format
 * has no place for them). And the content negotiation that picks it: a scraper that
 * prefers it in its `Accept` header (Prometheus does when native histograms are enabled)
 * gets it, everyone else gets text.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { PromFamily, PromMetric, PromType } from './prom-text.js';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';
export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export const METRICS_PROTO_PATH = fileURLToPath(new URL('../../proto/metrics.proto', import.meta.url));

const TYPES: Record<PromType, number> = { counter: 0, gauge: 1, summary: 2, untyped: 3, histogram: 4 };

let familyType: protobuf.Type | undefined;

function load(): protobuf.Type {
  familyType ??= protobuf.loadSync(METRICS_PROTO_PATH).lookupType('io.prometheus.client.MetricFamily');
  return familyType;
}

function metric(m: PromMetric): Record<string, unknown> {
  const label = Object.entries(m.labels).map(([name, value]) => ({ name, value }));
  if ('value' in m) return { label, value: m.value };
  if ('summary' in m) {
    const s = m.summary;
    return { label, summary: { sampleCount: s.count, sampleSum: s.sum, quantile: s.quantiles.map(([quantile, value]) => ({ quantile, value })) } };
  }
  const h = m.histogram;
  const out: Record<string, unknown> = {
    sampleCount: h.count,
    sampleSum: h.sum,
    bucket: h.buckets.filter(([le]) => le !== Infinity).map(([upperBound, cumulativeCount]) => ({ upperBound, cumulativeCount })),
  };
  const n = h.native;
  if (n) {
    Object.assign(out, {
      schema: n.schema,
      zeroThreshold: n.zeroThreshold,
      zeroCount: n.zeroCount,
      positiveSpan: n.positiveSpans,
      positiveDelta: n.positiveDeltas,
      negativeSpan: n.negativeSpans,
      negativeDelta: n.negativeDeltas,
    });
    // A native histogram without any bucket yet still needs a span to be taken as one (as client_golang does).
    if (n.positiveSpans.length === 0 && n.negativeSpans.length === 0 && n.zeroCount === 0 && n.zeroThreshold === 0)
      out.positiveSpan = [{ offset: 0, length: 0 }];
  }
  return { label, histogram: out };
}

/** Families as delimited protobuf `MetricFamily` messages (a family given only as raw text samples is left out). */
export function encodeFamilies(families: readonly PromFamily[]): Buffer {
  const T = load();
  const parts: Uint8Array[] = [];
  for (const f of families) {
    if (f.metrics.length === 0) continue;
    const field = f.type === 'counter' ? 'counter' : f.type === 'gauge' ? 'gauge' : 'untyped';
    const metrics = f.metrics.map((m) => {
      const o = metric(m);
      if ('value' in o) {
        o[field] = { value: o.value };
        delete o.value;
      }
      return o;
    });
    parts.push(T.encodeDelimited(T.fromObject({ name: f.name, help: f.help, type: TYPES[f.type], metric: metrics })).finish());
  }
  return Buffer.concat(parts);
}

/** Decodes what encodeFamilies wrote (tests, tools): plain objects, 64-bit numbers as numbers. */
export function decodeFamilies(bytes: Uint8Array): Record<string, unknown>[] {
  const T = load();
  const reader = protobuf.Reader.create(bytes);
  const out: Record<string, unknown>[] = [];
  while (reader.pos < reader.len) out.push(T.toObject(T.decodeDelimited(reader), { longs: Number, enums: String, defaults: false }));
  return out;
}

/** Families a text writer gave as raw suffixed samples cannot be encoded: such a set is served as text. */
export function protobufCapable(families: readonly PromFamily[]): boolean {
  return families.every((f) => !f.raw?.length);
}

/**
 * Whether an `Accept` header prefers the delimited protobuf format to text: its quality
 * above every text type's (and above 0). Prometheus 2.42 with native histograms sends
 * `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*\/*;q=0.1`.
 */
export function prefersProtobuf(accept: string | undefined): boolean {
  if (!accept) return false;
  let proto = 0;
  let text = 0;
  for (const item of accept.split(',')) {
    const [type, ...params] = item.split(';').map((s) => s.trim());
    const p = new Map(
      params.map((kv) => {
        const eq = kv.indexOf('=');
        return [
          kv.slice(0, eq).trim().toLowerCase(),
          kv
            .slice(eq + 1)
            .trim()
            .replace(/^"|"$/g, ''),
        ] as const;
      }),
    );
    const q = p.has('q') ? Number(p.get('q')) : 1;
    if (!(q >= 0 && q <= 1)) continue;
    const t = (type ?? '').toLowerCase();
    if (t === 'application/vnd.google.protobuf' && p.get('proto') === 'io.prometheus.client.MetricFamily' && p.get('encoding') === 'delimited')
      proto = Math.max(proto, q);
    else if (t === 'text/plain' || t === 'application/openmetrics-text' || t === '*/*' || t === 'text/*') text = Math.max(text, q);
  }
  return proto > 0 && proto > text;
}
