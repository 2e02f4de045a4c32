/**
 * Example apps built on @shardgram/udp-core: `statsd` and `syslog` (each also importable on its
 * own, `@shardgram/examples/statsd`), and their parsers as pure functions usable without the
 * service (docs/statsd.md and docs/syslog.md, "Parsing without the service"). `shardgram serve
 * <app>` finds the apps through the "shardgram.apps" map in this package's package.json. (`echo`
 * is built into core.) Everything else in src/ is the apps' own.
 */
export { default as statsd } from './statsd.js';
export { parseDatagram, BAD_LINE_CODES } from './statsd/parser.js';
export type { BadLineCode, MetricSink, MetricType, ParseOptions } from './statsd/parser.js';
export type { TagStyles } from './statsd/tag-styles.js';
export type { DogEvent, ServiceCheck, AlertType, ServiceCheckStatus } from './statsd/dogstatsd.js';
export { default as syslog } from './syslog.js';
export { parseSyslog } from './syslog/parse.js';
export type { ParsedSyslog, SyslogFormat } from './syslog/parse.js';
export { parseRfc5424 } from './syslog/rfc5424.js';
export type { Rfc5424Fields, Rfc5424Result, StructuredData } from './syslog/rfc5424.js';
export { parseRfc3164 } from './syslog/rfc3164.js';
export type { Rfc3164Fields } from './syslog/rfc3164.js';
export { parsePri, FACILITY_NAMES, SEVERITY_NAMES } from './syslog/pri.js';
export type { Pri, PriResult, FacilityName, SeverityName } from './syslog/pri.js';
export { toRecord, recordLine } from './syslog/record.js';
export type { SyslogRecord, Reception } from './syslog/record.js';
