/**
 * The statsd app's options, declared as a schema (`serve statsd` builds its flags,
 * help and checks from it; `--app-option key=value` sets any of them):
 *
 *   flushInterval=MS      flush period (default 10000, as Etsy statsd)
 *   percentiles=90,95,99  timer percentiles, each 0 < p ≤ 100 (default 90)
 *   jsonOut=FILE          append one JSON object per flush to FILE
 *   graphite=HOST:PORT    send each flush to Graphite's plaintext port over TCP
 *   graphitePrefix=P      first path element of Graphite names (default "stats")
 *   graphiteBacklog=N     Graphite lines kept while Graphite is slow or down (default 1000000)
 *   graphiteReplay=MS     after a failed attempt, send again what was delivered in the MS
 *                         before it (default: the larger of 2 × flushInterval and 5000; 0: off)
 *   jsonBacklog=N         flushes kept while jsonOut cannot be written (default 100)
 *   outputRetryMax=MS     longest wait between two delivery attempts of an output (default 10000)
 *   outputStopTimeout=MS  how long the stop keeps delivering what the outputs hold (default 5000)
 *   remoteWrite=URL       push every flush by Prometheus remote write; its other options
 *                         (remoteWriteBacklog, remoteWriteLabels, auth, CA, timeout):
 *                         remote-write-options.ts
 *   flushTimeout=MS       how long a flush waits for every worker's partial
 *                         (default: the smaller of 2000 and flushInterval)
 *   timerBuckets=1,5,10   upper bounds in ms of the timers' Prometheus histogram
 *                         buckets (default 1,2.5,5,10,25,50,100,250,500,1000,2500,5000,10000)
 *   timerMode=M           histogram (default: each timer a native histogram, bounded
 *                         memory, percentiles within relativeError(schema)) or exact
 *                         (every raw value kept until the flush: Etsy's exact percentiles)
 *   timerSchema=N         native histogram schema of the timers (-4…8, default 5:
 *                         percentiles within 1.09 %); a mapping file asking for a finer
 *                         native histogram raises it
 *   timerMaxBuckets=N     most buckets of one timer's histogram per worker and interval
 *                         (default 2048); more lower its schema
 *   mappingConfig=FILE    a statsd_exporter mapping file (YAML): names, labels, summary or
 *                         histogram, native histograms, drop, ttl (docs/statsd.md); read
 *                         once, by the supervisor, which gives the workers its text
 *   mappingConfigText=Y   the mapping file's text itself (what the workers get)
 *   promLayout=L          exporter (default: statsd_exporter's names and types) or labels
 *                         (the layout before: one family per type, the name in a
 *                         `metric` label; kept for existing users)
 *   maxNameLength=N       longest name (with its tags) accepted, in characters (default 512)
 *   maxKeys=N             most distinct keys per flush interval, and most gauges kept (default 50000)
 *   gaugeExpiry=N         flushes without an update after which a gauge (and a counter's
 *                         Prometheus total) is forgotten; 0 = never (default 360)
 *   influxdbTags=on|off   read InfluxDB tags in the name, `name,k=v:1|c` (default on)
 *   libratoTags=on|off    read Librato tags in the name, `name#k=v:1|c` (default on)
 *   signalfxTags=on|off   read SignalFX tags in the name, `name[k=v]:1|c` (default on)
 */
import { describeError, ShardgramError } from '@shardgram/udp-core';
import { defineAppOptions, OptionValueError, outputFile, parseAppOptions, textMatching, wholeNumber } from '@shardgram/udp-core/app-options';
import { DEFAULT_TIMER_BUCKETS_MS, parseTimerBuckets } from './histogram.js';
import type { TagStyles } from './tag-styles.js';
import { isAbsolute, resolve } from 'node:path';
import { Mapper } from './mapper.js';
import { loadMappingFile, MappingError, parseMappingConfig, type MappingConfig } from './mapping.js';
import { MAX_SCHEMA, MIN_SCHEMA } from './native-histogram.js';
import type { RemoteWriteTarget } from '../outputs/remote-write.js';
import { onOff, remoteWriteOptionSchema, remoteWriteTarget } from './remote-write-options.js';

export interface GraphiteTarget {
  host: string;
  port: number;
}

export interface StatsdOptions {
  flushIntervalMs: number;
  percentiles: number[];
  /** Absolute path. */
  jsonOut: string | undefined;
  graphite: GraphiteTarget | undefined;
  graphitePrefix: string;
  /** Output backlogs (outputs.ts): Graphite lines, JSON flushes; the longest retry wait. */
  graphiteBacklog: number;
  /** Graphite replay window (../outputs/graphite-replay.ts): what was delivered this long before a failure is sent again after it; 0 off. */
  graphiteReplayMs: number;
  jsonBacklog: number;
  outputRetryMaxMs: number;
  /** How long the stop keeps delivering what the output backlogs hold. */
  outputStopTimeoutMs: number;
  /** Prometheus remote write (../outputs/remote-write.ts): where, and how many samples (and encoded bytes) are kept while it is down. */
  remoteWrite: RemoteWriteTarget | undefined;
  remoteWriteBacklog: number;
  remoteWriteBacklogBytes: number;
  flushTimeoutMs: number;
  /** Upper bounds (ms) of the timer histogram buckets. */
  timerBucketsMs: readonly number[];
  maxNameLength: number;
  maxKeys: number;
  gaugeExpiry: number;
  /** Which name-embedded tag styles are read (tag-styles.ts). */
  tagStyles: TagStyles;
  timerMode: 'histogram' | 'exact';
  timerSchema: number;
  timerMaxBuckets: number;
  mappingConfig: MappingConfig | undefined;
  promLayout: 'exporter' | 'labels';
}

/** The schema timers are kept at: timerSchema, or finer when the mapping file asks for a finer native histogram. */
export function effectiveTimerSchema(o: StatsdOptions): number {
  const asked = new Mapper(o.mappingConfig).finestSchema();
  return asked === undefined ? o.timerSchema : Math.max(o.timerSchema, asked);
}

function mappingFile(text: string): MappingConfig {
  const path = text.trim();
  if (path === '') throw new OptionValueError('a statsd_exporter mapping file');
  try {
    return loadMappingFile(isAbsolute(path) ? path : resolve(path));
  } catch (err) {
    if (err instanceof MappingError)
      throw new OptionValueError(
        'a statsd_exporter mapping file with only what this receiver supports (docs/statsd-prometheus.md)',
        `${JSON.stringify(text)} (${err.message})`,
      );
    throw err;
  }
}

function mappingText(text: string): MappingConfig {
  try {
    return parseMappingConfig(text, 'mappingConfigText');
  } catch (err) {
    if (err instanceof MappingError)
      throw new OptionValueError('the text of a statsd_exporter mapping file with only what this receiver supports (docs/statsd-prometheus.md)', err.message);
    throw err;
  }
}

/**
 * The options the workers get: the mapping file's text read by the supervisor
 * (`mappingConfigText`) instead of its path, so that a worker restarted after the file
 * was edited (or broken) maps as the service started.
 */
export function statsdWorkerOptions(raw: Readonly<Record<string, string>>, o: StatsdOptions): Record<string, string> {
  const { mappingConfig: _path, ...rest } = raw;
  return o.mappingConfig ? { ...rest, mappingConfigText: o.mappingConfig.text } : { ...rest };
}

/** `host:port`, `[v6]:port`. */
export function parseHostPort(value: string): GraphiteTarget {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new OptionValueError('HOST:PORT, e.g. 127.0.0.1:2003 or [::1]:2003');
  return { host: (m[1] ?? m[2])!, port };
}

function timerBuckets(value: string): number[] {
  try {
    return parseTimerBuckets(value);
  } catch (err) {
    throw new OptionValueError(describeError(err));
  }
}

function oneOf<T extends string>(values: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(values as readonly string[]).includes(v)) throw new OptionValueError(values.join(' or '));
    return v as T;
  };
}

function integerIn(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
    if (!(n >= min && n <= max)) throw new OptionValueError(`a whole number from ${min} to ${max}`);
    return n;
  };
}

export function parsePercentiles(value: string): number[] {
  const out: number[] = [];
  for (const part of value.split(',')) {
    const s = part.trim();
    const p = /^\d+(?:\.\d+)?$/.test(s) ? Number(s) : NaN;
    if (!(p > 0 && p <= 100)) throw new OptionValueError('a comma-separated list of numbers above 0 and up to 100, e.g. 90,95,99');
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

export const statsdOptionSchema = defineAppOptions({
  flushInterval: {
    flag: 'flush-interval',
    value: 'MS',
    help: 'flush every MS milliseconds',
    parse: wholeNumber(10, 86_400_000, 'milliseconds'),
    default: 10_000,
  },
  percentiles: { flag: 'percentiles', value: 'LIST', help: 'timer percentiles, e.g. 90,95,99', parse: parsePercentiles, default: [90] },
  jsonOut: { flag: 'json-out', value: 'FILE', help: 'append one JSON object per flush to FILE', parse: outputFile(), default: undefined },
  graphite: { flag: 'graphite', value: 'HOST:PORT', help: 'send each flush as Graphite plaintext over TCP', parse: parseHostPort, default: undefined },
  graphitePrefix: {
    value: 'P',
    help: 'first path element of Graphite names',
    parse: textMatching(/^[A-Za-z0-9_.-]*$/, 'letters, digits, "_", "-" and "." only'),
    default: 'stats',
  },
  graphiteBacklog: {
    value: 'N',
    help: 'Graphite lines kept while Graphite is slow or down; past it the oldest are counted and dropped',
    parse: wholeNumber(1, 100_000_000, 'lines'),
    default: 1_000_000,
  },
  graphiteReplay: {
    value: 'MS',
    help: 'after a failed Graphite attempt, send again first what was delivered in the MS before it (a server that stopped may have lost it; counted as replayed); 0: off',
    parse: wholeNumber(0, 3_600_000, 'milliseconds'),
    default: undefined,
    defaultText: 'the larger of 2 × flushInterval and 5000',
  },
  jsonBacklog: {
    value: 'N',
    help: 'flushes kept while jsonOut cannot be written; past it the oldest are counted and dropped',
    parse: wholeNumber(1, 1_000_000, 'flushes'),
    default: 100,
  },
  ...remoteWriteOptionSchema,
  outputRetryMax: {
    value: 'MS',
    help: 'longest wait between two delivery attempts of an output (from 100 ms, doubling): Graphite, JSON, remote write',
    parse: wholeNumber(100, 3_600_000, 'milliseconds'),
    default: 10_000,
  },
  outputStopTimeout: {
    value: 'MS',
    help: 'how long the stop keeps delivering what the outputs hold; what is left then is counted as dropped (reason stop)',
    parse: wholeNumber(0, 3_600_000, 'milliseconds'),
    default: 5000,
  },
  flushTimeout: {
    value: 'MS',
    help: "how long a flush waits for every worker's partial",
    parse: wholeNumber(1, 600_000, 'milliseconds'),
    default: undefined,
    defaultText: 'the smaller of 2000 and flushInterval',
  },
  timerBuckets: {
    value: 'LIST',
    help: "upper bounds in ms of the timers' Prometheus histogram buckets",
    parse: timerBuckets,
    default: DEFAULT_TIMER_BUCKETS_MS as readonly number[],
    defaultText: DEFAULT_TIMER_BUCKETS_MS.join(','),
  },
  maxNameLength: {
    value: 'N',
    help: 'longest name (tags included) accepted, in characters; longer lines are counted and dropped',
    parse: wholeNumber(1, 65_536, 'characters'),
    default: 512,
  },
  maxKeys: {
    value: 'N',
    help: 'most distinct keys per flush interval, and most gauges kept; more are counted and dropped',
    parse: wholeNumber(1, 10_000_000),
    default: 50_000,
  },
  timerMode: {
    flag: 'timer-mode',
    value: 'MODE',
    help: "histogram (bounded memory; percentiles within the schema's relative error) or exact (every raw value until the flush)",
    parse: oneOf(['histogram', 'exact'] as const),
    default: 'histogram' as 'histogram' | 'exact',
  },
  timerSchema: {
    value: 'N',
    help: 'native histogram schema of the timers, -4 to 8 (5: percentiles within 1.09 %)',
    parse: integerIn(MIN_SCHEMA, MAX_SCHEMA),
    default: 5,
  },
  timerMaxBuckets: {
    value: 'N',
    help: "most buckets of one timer's histogram per worker and interval; more lower its schema",
    parse: wholeNumber(16, 1_000_000, 'buckets'),
    default: 2048,
  },
  mappingConfig: {
    flag: 'mapping-config',
    value: 'FILE',
    help: 'a statsd_exporter mapping file (YAML) for the Prometheus names',
    parse: mappingFile,
    default: undefined as MappingConfig | undefined,
  },
  mappingConfigText: {
    value: 'YAML',
    help: "a statsd_exporter mapping file's text itself (the supervisor gives it to the workers in place of mappingConfig)",
    parse: mappingText,
    default: undefined as MappingConfig | undefined,
  },
  promLayout: {
    value: 'L',
    help: "exporter (statsd_exporter's names and types) or labels (before: the name in a metric label, one family per type)",
    parse: oneOf(['exporter', 'labels'] as const),
    default: 'exporter' as 'exporter' | 'labels',
  },
  gaugeExpiry: {
    value: 'N',
    help: 'flushes without an update after which a gauge is forgotten (0: never)',
    parse: wholeNumber(0, 1_000_000, 'flushes'),
    default: 360,
  },
  influxdbTags: { value: 'on|off', help: 'read InfluxDB tags in the name: name,k=v:1|c', parse: onOff, default: true },
  libratoTags: { value: 'on|off', help: 'read Librato tags in the name: name#k=v:1|c', parse: onOff, default: true },
  signalfxTags: { value: 'on|off', help: 'read SignalFX tags in the name: name[k=v]:1|c', parse: onOff, default: true },
});

/** Validates and resolves the options; throws a ShardgramError (ERR_SHARDGRAM_INVALID_ARG) naming the bad one. */
export function parseStatsdOptions(raw: Readonly<Record<string, string>>): StatsdOptions {
  const o = parseAppOptions('statsd', statsdOptionSchema, raw);
  if (o.mappingConfig && o.mappingConfigText)
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      'statsd options mappingConfig (a file) and mappingConfigText (its text) cannot both be set: give one',
      {
        option: 'mappingConfigText',
      },
    );
  return {
    flushIntervalMs: o.flushInterval,
    percentiles: o.percentiles,
    jsonOut: o.jsonOut,
    graphite: o.graphite,
    graphitePrefix: o.graphitePrefix,
    graphiteBacklog: o.graphiteBacklog,
    graphiteReplayMs: o.graphiteReplay ?? Math.max(2 * o.flushInterval, 5000),
    jsonBacklog: o.jsonBacklog,
    outputRetryMaxMs: o.outputRetryMax,
    outputStopTimeoutMs: o.outputStopTimeout,
    remoteWrite: remoteWriteTarget(o),
    remoteWriteBacklog: o.remoteWriteBacklog,
    remoteWriteBacklogBytes: o.remoteWriteBacklogBytes,
    flushTimeoutMs: o.flushTimeout ?? Math.min(2000, o.flushInterval),
    timerBucketsMs: o.timerBuckets ?? DEFAULT_TIMER_BUCKETS_MS,
    maxNameLength: o.maxNameLength,
    maxKeys: o.maxKeys,
    gaugeExpiry: o.gaugeExpiry,
    tagStyles: { influxdbTags: o.influxdbTags, libratoTags: o.libratoTags, signalfxTags: o.signalfxTags },
    timerMode: o.timerMode,
    timerSchema: o.timerSchema,
    timerMaxBuckets: o.timerMaxBuckets,
    mappingConfig: o.mappingConfig ?? o.mappingConfigText,
    promLayout: o.promLayout,
  };
}
