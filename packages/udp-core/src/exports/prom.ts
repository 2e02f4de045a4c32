/**
 * @shardgram/udp-core/prom — one Prometheus writer (families, samples, histograms, summaries,
 * escaped labels) for core and apps, its text format, the protobuf format (native histograms), and
 * Prometheus remote write requests from the same families.
 */
export { PromWriter, escapeLabelValue, familiesText, formatValue, sanitizeMetricName } from '../stats/prom-text.js';
export type { PromFamily, PromHistogram, PromLabels, PromMetric, PromNativeHistogram, PromSummary, PromType } from '../stats/prom-text.js';
export { decodeFamilies, encodeFamilies, prefersProtobuf, PROTOBUF_CONTENT_TYPE, TEXT_CONTENT_TYPE } from '../stats/prom-proto.js';
export { decodeWriteRequest, encodeWriteRequest, familiesToSeries, REMOTE_WRITE_HEADERS } from '../stats/prom-remote-write.js';
export type { RemoteSeries, ToSeriesOptions } from '../stats/prom-remote-write.js';
