/**
 * Prometheus remote write 1.0 requests from the same families `GET /metrics` serves
 * (prom-text.ts): each family becomes the series a Prometheus scraping it would store,
 * every sample at one timestamp, encoded with protobufjs from Prometheus's own
 * `proto/remote-write.proto` (`prometheus.WriteRequest`). Compression (snappy) and
 * delivery belong to the caller.
 *
 * - counter, gauge, untyped: one float sample per metric, named as the family;
 * - summary: `name{quantile="q"}`, `name_sum`, `name_count`;
 * - histogram: the classic series `name_bucket{le="…"}` (with `+Inf`), `name_sum`,
 *   `name_count`, and, when it has native buckets, one native histogram sample
 *   (`TimeSeries.histograms`, integer counts, spans and deltas) named `name`.
 *
 * Labels are sorted by name (byte order, `__name__` among them) as the protocol asks;
 * a label with an empty value is left out (Prometheus stores none); an external label
 * is added to every series that does not have that label already (as Prometheus's
 * `external_labels`). Samples given only as raw text (`PromFamily.raw`) are not sent.
 *
 * A `WriteRequest` holding only series is the concatenation of its series' encodings,
 * so requests encoded separately (`encodeWriteRequest`) join into one by concatenating
 * their bytes: a queue can keep each flush encoded and send several in one request.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { formatValue, type PromFamily, type PromNativeHistogram } from './prom-text.js';

export const REMOTE_WRITE_PROTO_PATH = fileURLToPath(new URL('../../proto/remote-write.proto', import.meta.url));

/** The headers remote write 1.0 requires on every request (with a snappy-compressed body). */
export const REMOTE_WRITE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Encoding': 'snappy',
  'Content-Type': 'application/x-protobuf',
  'X-Prometheus-Remote-Write-Version': '0.1.0',
});

/** One series of a request: its labels (sorted, `__name__` included), and one float sample or one native histogram. */
export interface RemoteSeries {
  labels: { name: string; value: string }[];
  value?: number;
  histogram?: { count: number; sum: number; native: PromNativeHistogram };
}

export interface ToSeriesOptions {
  /** Added to each series that lacks the label. */
  externalLabels?: Readonly<Record<string, string>>;
  /** Send native histograms (default true); off for a receiver without native histogram support. */
  nativeHistograms?: boolean;
}

let requestType: protobuf.Type | undefined;

function load(): protobuf.Type {
  requestType ??= protobuf.loadSync(REMOTE_WRITE_PROTO_PATH).lookupType('prometheus.WriteRequest');
  return requestType;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The series a Prometheus scraping `families` would store (see the file comment). */
export function familiesToSeries(families: readonly PromFamily[], o: ToSeriesOptions = {}): RemoteSeries[] {
  const external = Object.entries(o.externalLabels ?? {}).filter(([, v]) => v !== '');
  const native = o.nativeHistograms ?? true;
  const out: RemoteSeries[] = [];
  const labelsOf = (name: string, labels: Readonly<Record<string, string>>, extra?: [string, string]): RemoteSeries['labels'] => {
    const l: RemoteSeries['labels'] = [{ name: '__name__', value: name }];
    for (const [k, v] of Object.entries(labels)) if (v !== '' && k !== '__name__') l.push({ name: k, value: v });
    if (extra) l.push({ name: extra[0], value: extra[1] });
    for (const [k, v] of external) if (!l.some((x) => x.name === k)) l.push({ name: k, value: v });
    return l.sort(byName);
  };
  for (const f of families) {
    for (const m of f.metrics) {
      if ('value' in m) {
        out.push({ labels: labelsOf(f.name, m.labels), value: m.value });
      } else if ('summary' in m) {
        const s = m.summary;
        for (const [q, v] of s.quantiles) out.push({ labels: labelsOf(f.name, m.labels, ['quantile', formatValue(q)]), value: v });
        out.push({ labels: labelsOf(`${f.name}_sum`, m.labels), value: s.sum }, { labels: labelsOf(`${f.name}_count`, m.labels), value: s.count });
      } else {
        const h = m.histogram;
        for (const [le, c] of h.buckets) out.push({ labels: labelsOf(`${f.name}_bucket`, m.labels, ['le', formatValue(le)]), value: c });
        if (h.buckets.at(-1)?.[0] !== Infinity) out.push({ labels: labelsOf(`${f.name}_bucket`, m.labels, ['le', '+Inf']), value: h.count });
        out.push({ labels: labelsOf(`${f.name}_sum`, m.labels), value: h.sum }, { labels: labelsOf(`${f.name}_count`, m.labels), value: h.count });
        if (native && h.native) out.push({ labels: labelsOf(f.name, m.labels), histogram: { count: h.count, sum: h.sum, native: h.native } });
      }
    }
  }
  return out;
}

function seriesObject(s: RemoteSeries, timestampMs: number): Record<string, unknown> {
  if (!s.histogram) return { labels: s.labels, samples: [{ value: s.value, timestamp: timestampMs }] };
  const { count, sum, native: n } = s.histogram;
  // A native histogram without any bucket still needs a span to be taken as one (as client_golang does).
  const empty = n.positiveSpans.length === 0 && n.negativeSpans.length === 0;
  return {
    labels: s.labels,
    histograms: [
      {
        countInt: count,
        sum,
        schema: n.schema,
        zeroThreshold: n.zeroThreshold,
        zeroCountInt: n.zeroCount,
        negativeSpans: n.negativeSpans,
        negativeDeltas: n.negativeDeltas,
        positiveSpans: empty ? [{ offset: 0, length: 0 }] : n.positiveSpans,
        positiveDeltas: n.positiveDeltas,
        timestamp: timestampMs,
      },
    ],
  };
}

/** Series as an (uncompressed) `WriteRequest`, every sample at `timestampMs`. */
export function encodeWriteRequest(series: readonly RemoteSeries[], timestampMs: number): Buffer {
  const T = load();
  // Plain objects of the message's shape are encoded as they are (no fromObject copy: this runs at every flush).
  const bytes = T.encode({ timeseries: series.map((s) => seriesObject(s, timestampMs)) }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes an uncompressed `WriteRequest` (tests, tools): plain objects, 64-bit numbers as numbers. */
export function decodeWriteRequest(bytes: Uint8Array): Record<string, unknown> {
  const T = load();
  return T.toObject(T.decode(bytes), { longs: Number, enums: String, defaults: false, oneofs: false });
}
