/**
 * Example apps built on @shardgram/udp-core: `statsd` and `syslog` (each also importable on its
 * own, `@shardgram/examples/statsd`), with their parsers. `shardgram serve <app>` finds them
 * through the "shardgram.apps" map in this package's package.json. (`echo` is built into core.)
 */
export { default as statsd, supervisor as statsdSupervisor } from './statsd.js';
export { parseDatagram, parseLine, metricKey, splitKey, BAD_LINE_CODES } from './statsd/parser.js';
export type { BadLineCode, MetricSink, MetricType, ParsedLine, ParseOptions } from './statsd/parser.js';
export { parseEvent, parseServiceCheck } from './statsd/dogstatsd.js';
export type { DogEvent, ServiceCheck, AlertType, ServiceCheckStatus } from './statsd/dogstatsd.js';
export { splitNameTags } from './statsd/tag-styles.js';
export type { TagStyles } from './statsd/tag-styles.js';
export { PartialAggregate } from './statsd/aggregate.js';
export type { Partial, GaugeOps, TimerPartial } from './statsd/aggregate.js';
export { GaugeStore, IntervalMerge, replayGauge } from './statsd/merge.js';
export type { FlushResult } from './statsd/merge.js';
export { timerSummary, percentileKey } from './statsd/timer-stats.js';
export type { TimerSummary } from './statsd/timer-stats.js';
export { parseStatsdOptions, statsdOptionSchema } from './statsd/options.js';
export type { StatsdOptions, GraphiteTarget } from './statsd/options.js';
export { formatJson, formatGraphite, formatPrometheus } from './statsd/flush.js';
export { default as syslog, supervisor as syslogSupervisor } from './syslog.js';
export { parseSyslog } from './syslog/parse.js';
export type { ParsedSyslog, SyslogFormat } from './syslog/parse.js';
export { parseRfc5424 } from './syslog/rfc5424.js';
export type { Rfc5424Fields, Rfc5424Result, StructuredData } from './syslog/rfc5424.js';
export { parseRfc3164 } from './syslog/rfc3164.js';
export type { Rfc3164Fields } from './syslog/rfc3164.js';
export { parsePri, splitPri, FACILITY_NAMES, SEVERITY_NAMES } from './syslog/pri.js';
export type { Pri, FacilityName, SeverityName } from './syslog/pri.js';
export { toRecord, recordLine } from './syslog/record.js';
export type { SyslogRecord, Reception } from './syslog/record.js';
export { parseSyslogOptions, syslogOptions } from './syslog/options.js';
export type { SyslogOptions } from './syslog/options.js';
