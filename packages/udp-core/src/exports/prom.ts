/** @shardgram/udp-core/prom — one Prometheus text writer (families, samples, escaped labels) for core and apps. */
export { PromWriter, escapeLabelValue, formatValue, sanitizeMetricName } from '../prom-text.js';
export type { PromType, PromLabels } from '../prom-text.js';
