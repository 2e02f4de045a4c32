/**
 * statsd_exporter's mapping file (`--mapping-config FILE`), read as statsd_exporter
 * reads it (pkg/mapper/mapper.go, InitFromYAMLString): `defaults` and `mappings`, every
 * key it knows, its defaults (histogram buckets DefBuckets, native bucket factor 1.1
 * and 256 buckets, summary quantiles 0.5/0.9/0.99, glob matching) and its checks. The
 * deprecated keys it still reads (`timer_type`, top-level `buckets` and `quantiles` in a
 * mapping or in `defaults`, `match_metric_type: timer`) are read as it reads them, each
 * with a deprecation warning naming its line (`MappingConfig.warnings`). A file it would
 * refuse, or that uses something this receiver does not do, is refused at start with the
 * line and the reason (`MappingError`). The matching itself is in mapper.ts.
 */
import { readFileSync } from 'node:fs';
import { describeError } from '@shardgram/udp-core';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { goRegex } from './go-regex.js';
import { bool, bucketList, duration, num, observerType, oneOf, pairsOf, quantileList, str, unknownKey, type Fail } from './mapping-values.js';

export { parseGoDuration } from './mapping-values.js';

export type MatchType = 'glob' | 'regex';
export type ObserverType = 'summary' | 'histogram';
export type MatchMetricType = 'counter' | 'gauge' | 'observer';

export interface SummaryOptions {
  /** [quantile, allowed error] (the error is statsd_exporter's; here quantiles come from a histogram: see docs). */
  quantiles: [number, number][];
  /** Sliding window of the quantiles, ms (0: the default, 10 minutes). */
  maxAgeMs: number;
  ageBuckets: number;
  bufCap: number;
}

export interface HistogramOptions {
  /** Classic bucket upper bounds (Prometheus units), ascending. */
  buckets: number[];
  /** > 1: a native histogram of this bucket factor; otherwise none. */
  nativeBucketFactor: number;
  nativeMaxBuckets: number;
}

export interface Mapping {
  /** 1-based line of the mapping in the file. */
  line: number;
  match: string;
  matchType: MatchType;
  /** Glob: the pattern's dot-separated fields; regex: the compiled expression. */
  fields?: string[];
  regex?: RegExp;
  name: string;
  labels: [string, string][];
  honorLabels: boolean;
  help: string | undefined;
  action: 'map' | 'drop';
  matchMetricType: MatchMetricType | undefined;
  observerType: ObserverType;
  ttlMs: number;
  summary: SummaryOptions;
  histogram: HistogramOptions;
  scale: number | undefined;
}

export interface MappingConfig {
  /** Where it came from (for messages). */
  source: string;
  globDisableOrdering: boolean;
  /** What an unmatched metric gets (observer type, options, ttl). */
  defaults: Omit<Mapping, 'line' | 'match' | 'matchType' | 'name' | 'labels' | 'honorLabels' | 'help' | 'action' | 'matchMetricType' | 'scale'>;
  mappings: Mapping[];
  /** The YAML text it was read from (the supervisor hands it to the workers: they never read the file). */
  text: string;
  /** Deprecated keys read (statsd_exporter reads them too, with a warning): one line each, `<source>:<line>: …`. */
  warnings: string[];
}

/** A mapping file statsd_exporter would refuse, or one this receiver cannot honour. */
export class MappingError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
    this.name = 'MappingError';
  }
}

/** prometheus.DefBuckets. */
export const DEF_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DEFAULT_QUANTILES: [number, number][] = [
  [0.5, 0.05],
  [0.9, 0.01],
  [0.99, 0.001],
];
/** client_golang's DefMaxAge and DefAgeBuckets, statsd_exporter's buf_cap default. */
const DEFAULT_MAX_AGE_MS = 10 * 60_000;
const DEFAULT_AGE_BUCKETS = 5;
const DEFAULT_BUF_CAP = 500;

// statsd_exporter's own checks (pkg/mapper/mapper.go).
const METRIC_LINE = /^(\*|[a-zA-Z_][a-zA-Z0-9_-]*)(\.\*|\.[a-zA-Z0-9_][a-zA-Z0-9_-]*)*$/;
const TEMPLATE = String.raw`\$\{?\d+\}?`;
const METRIC_NAME = new RegExp(`^([a-zA-Z_]|${TEMPLATE})([a-zA-Z0-9_]|${TEMPLATE})*$`);
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]+$/;

const MAPPING_KEYS = new Set([
  'match',
  'name',
  'labels',
  'honor_labels',
  'observer_type',
  'match_type',
  'help',
  'action',
  'match_metric_type',
  'ttl',
  'summary_options',
  'histogram_options',
  'scale',
  // Deprecated, still read by statsd_exporter (≤ 0.30): see LEGACY.
  'timer_type',
  'buckets',
  'quantiles',
]);
const DEFAULTS_KEYS = new Set([
  'observer_type',
  'match_type',
  'glob_disable_ordering',
  'ttl',
  'summary_options',
  'histogram_options',
  'timer_type',
  'buckets',
  'quantiles',
]);
const SUMMARY_KEYS = new Set(['quantiles', 'max_age', 'age_buckets', 'buf_cap']);
const HISTOGRAM_KEYS = new Set(['buckets', 'native_histogram_bucket_factor', 'native_histogram_max_buckets']);
/**
 * Keys statsd_exporter deprecated but still reads (pkg/mapper/mapping.go,
 * mapper_defaults.go, metric_type.go of v0.30.0), each with what replaced it.
 */
const LEGACY: Record<string, string> = {
  timer_type: 'timer_type is deprecated: use observer_type (which wins when both are set)',
  buckets: 'a top-level buckets is deprecated: use histogram_options.buckets',
  quantiles: 'a top-level quantiles is deprecated: use summary_options.quantiles',
  timer: 'match_metric_type: timer is deprecated: use observer (what it means)',
};
/** Reads and checks a mapping file; throws MappingError naming the line and the reason. */
export function loadMappingFile(path: string): MappingConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MappingError(path, 0, `cannot read the mapping file: ${describeError(err)}`);
  }
  return parseMappingConfig(text, path);
}

/** Parses a mapping file's text (see loadMappingFile). */
export function parseMappingConfig(text: string, source = 'mapping'): MappingConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const lineOf = (n: Node | Pair | null | undefined): number => {
    const node = n && 'range' in n ? n : ((n as Pair | undefined)?.key as Node | undefined);
    const r = node?.range;
    return r ? lc.linePos(r[0]).line : 0;
  };
  const fail = (n: Node | Pair | null | undefined, reason: string): never => {
    throw new MappingError(source, lineOf(n), reason);
  };
  const warnings: string[] = [];
  const warn: Warn = (n, reason) => warnings.push(`${source}:${lineOf(n)}: ${reason}`);
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new MappingError(source, lc.linePos(e.pos[0]).line, `not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return finish(text, source, false, emptyDefaults(), [], warnings);
  if (!isMap(root)) return fail(root, 'a mapping file is a YAML map with "mappings" (and optionally "defaults")');

  const entries = pairsOf(
    root,
    new Set(['defaults', 'mappings']),
    fail,
    (k) => `unknown top-level key "${k}" (statsd_exporter knows "defaults" and "mappings")`,
  );
  const defaults = emptyDefaults();
  let globDisableOrdering = false;
  let defaultMatchType: MatchType = 'glob';
  const d = entries.get('defaults');
  if (d && !(isScalar(d.value) && d.value.value === null)) {
    if (!isMap(d.value)) fail(d, '"defaults" must be a map');
    const de = pairsOf(d.value as YAMLMap, DEFAULTS_KEYS, fail, (k) => unknownKey(k, 'defaults'));
    let legacyBuckets: number[] = [];
    let legacyQuantiles: [number, number][] = [];
    for (const [k, p] of de) {
      const v = p.value as Node;
      if (LEGACY[k]) warn(p, `${LEGACY[k]} (in defaults)`);
      if (k === 'observer_type') defaults.observerType = observerType(v, fail);
      // statsd_exporter's mapperConfigDefaults: timer_type when observer_type is unset.
      else if (k === 'timer_type') {
        if (!de.has('observer_type')) defaults.observerType = observerType(v, fail);
      } else if (k === 'buckets') legacyBuckets = bucketList(p, fail);
      else if (k === 'quantiles') legacyQuantiles = quantileList(p, fail);
      else if (k === 'match_type') defaultMatchType = (oneOf(v, ['glob', 'regex', ''], fail, 'match type') as MatchType) || 'glob';
      else if (k === 'glob_disable_ordering') globDisableOrdering = bool(v, fail);
      else if (k === 'ttl') defaults.ttlMs = duration(v, fail);
      else if (k === 'summary_options') defaults.summary = summaryOptions(v, fail, undefined);
      else if (k === 'histogram_options') defaults.histogram = histogramOptions(v, fail, undefined);
    }
    // Only when the options' own list is empty, and then they replace the whole options (as statsd_exporter does).
    if (defaults.summary.quantiles.length === 0 && legacyQuantiles.length > 0)
      defaults.summary = { quantiles: legacyQuantiles, maxAgeMs: 0, ageBuckets: 0, bufCap: 0 };
    if (defaults.histogram.buckets.length === 0 && legacyBuckets.length > 0)
      defaults.histogram = { buckets: legacyBuckets, nativeBucketFactor: 0, nativeMaxBuckets: 0 };
  }
  if (defaults.histogram.buckets.length === 0) defaults.histogram.buckets = [...DEF_BUCKETS];
  if (defaults.histogram.nativeBucketFactor === 0) defaults.histogram.nativeBucketFactor = 1.1;
  if (defaults.histogram.nativeMaxBuckets <= 0) defaults.histogram.nativeMaxBuckets = 256;
  if (defaults.summary.quantiles.length === 0) defaults.summary.quantiles = DEFAULT_QUANTILES.map((q) => [...q] as [number, number]);

  const mappings: Mapping[] = [];
  const ms = entries.get('mappings');
  if (ms && !(isScalar(ms.value) && ms.value.value === null)) {
    if (!isSeq(ms.value)) fail(ms, '"mappings" must be a list');
    for (const item of (ms.value as { items: unknown[] }).items) {
      const node = item as Node;
      if (!isMap(node)) fail(node, 'each mapping must be a map (match, name, labels, …)');
      mappings.push(mapping(node as YAMLMap, defaults, defaultMatchType, lineOf(node), fail, warn));
    }
  }
  return finish(text, source, globDisableOrdering, defaults, mappings, warnings);
}

type Warn = (n: Node | Pair | null | undefined, reason: string) => void;

function finish(
  text: string,
  source: string,
  globDisableOrdering: boolean,
  defaults: MappingConfig['defaults'],
  mappings: Mapping[],
  warnings: string[],
): MappingConfig {
  const d = defaults;
  if (d.summary.maxAgeMs === 0) d.summary.maxAgeMs = DEFAULT_MAX_AGE_MS;
  if (d.summary.ageBuckets === 0) d.summary.ageBuckets = DEFAULT_AGE_BUCKETS;
  if (d.summary.bufCap === 0) d.summary.bufCap = DEFAULT_BUF_CAP;
  if (d.histogram.buckets.length === 0) d.histogram = { buckets: [...DEF_BUCKETS], nativeBucketFactor: 1.1, nativeMaxBuckets: 256 };
  if (d.summary.quantiles.length === 0) d.summary.quantiles = DEFAULT_QUANTILES.map((q) => [...q] as [number, number]);
  for (const m of mappings) {
    // What statsd_exporter's registry takes from the defaults when the mapping leaves it at zero.
    if (m.summary.maxAgeMs === 0) m.summary.maxAgeMs = d.summary.maxAgeMs;
    if (m.summary.ageBuckets === 0) m.summary.ageBuckets = d.summary.ageBuckets;
    if (m.summary.bufCap === 0) m.summary.bufCap = d.summary.bufCap;
    if (m.summary.quantiles.length === 0) m.summary.quantiles = d.summary.quantiles;
    if (m.histogram.buckets.length === 0) m.histogram.buckets = d.histogram.buckets;
    if (m.histogram.nativeBucketFactor <= 0) m.histogram.nativeBucketFactor = d.histogram.nativeBucketFactor;
    if (m.histogram.nativeMaxBuckets <= 0) m.histogram.nativeMaxBuckets = d.histogram.nativeMaxBuckets;
  }
  return { text, source, globDisableOrdering, defaults: d, mappings, warnings };
}

function emptyDefaults(): MappingConfig['defaults'] {
  return {
    observerType: 'summary',
    ttlMs: 0,
    summary: { quantiles: [], maxAgeMs: 0, ageBuckets: 0, bufCap: 0 },
    histogram: { buckets: [], nativeBucketFactor: 0, nativeMaxBuckets: 0 },
  };
}

function summaryOptions(v: Node, fail: Fail, _base: SummaryOptions | undefined): SummaryOptions {
  const out: SummaryOptions = { quantiles: [], maxAgeMs: 0, ageBuckets: 0, bufCap: 0 };
  if (isScalar(v) && v.value === null) return out;
  if (!isMap(v)) return fail(v, 'summary_options must be a map');
  for (const [k, p] of pairsOf(v, SUMMARY_KEYS, fail, (key) => unknownKey(key, 'summary_options'))) {
    const val = p.value as Node;
    if (k === 'quantiles') out.quantiles = quantileList(p, fail);
    else if (k === 'max_age') out.maxAgeMs = duration(val, fail);
    else {
      const n = num(val, fail, k);
      if (!(Number.isInteger(n) && n >= 0 && n < 2 ** 32)) fail(p, `${k} must be a whole number`);
      if (k === 'age_buckets') out.ageBuckets = n;
      else out.bufCap = n;
    }
  }
  return out;
}

function histogramOptions(v: Node, fail: Fail, _base: HistogramOptions | undefined): HistogramOptions {
  const out: HistogramOptions = { buckets: [], nativeBucketFactor: 0, nativeMaxBuckets: 0 };
  if (isScalar(v) && v.value === null) return out;
  if (!isMap(v)) return fail(v, 'histogram_options must be a map');
  for (const [k, p] of pairsOf(v, HISTOGRAM_KEYS, fail, (key) => unknownKey(key, 'histogram_options'))) {
    const val = p.value as Node;
    if (k === 'buckets') out.buckets = bucketList(p, fail);
    else if (k === 'native_histogram_bucket_factor') out.nativeBucketFactor = num(val, fail, k);
    else {
      const n = num(val, fail, k);
      if (!(Number.isInteger(n) && n >= 0 && n < 2 ** 32)) fail(p, `${k} must be a whole number`);
      out.nativeMaxBuckets = n;
    }
  }
  return out;
}

function mapping(node: YAMLMap, defaults: MappingConfig['defaults'], defaultMatchType: MatchType, line: number, fail: Fail, warn: Warn): Mapping {
  const e = pairsOf(node, MAPPING_KEYS, fail, (k) => unknownKey(k, 'a mapping'));
  for (const [k, p] of e) if (LEGACY[k]) warn(p, LEGACY[k]);
  const get = (k: string): Node | undefined => e.get(k)?.value as Node | undefined;
  const m: Mapping = {
    line,
    match: '',
    matchType: defaultMatchType,
    name: '',
    labels: [],
    honorLabels: false,
    help: undefined,
    action: 'map',
    matchMetricType: undefined,
    observerType: defaults.observerType,
    ttlMs: 0,
    summary: { quantiles: [], maxAgeMs: 0, ageBuckets: 0, bufCap: 0 },
    histogram: { buckets: [], nativeBucketFactor: 0, nativeMaxBuckets: 0 },
    scale: undefined,
  };
  if (get('match')) m.match = str(get('match')!, fail, 'match');
  if (get('name')) m.name = str(get('name')!, fail, 'name');
  if (get('match_type')) m.matchType = (oneOf(get('match_type')!, ['glob', 'regex', ''], fail, 'match type') || 'glob') as MatchType;
  if (get('help')) m.help = str(get('help')!, fail, 'help');
  if (get('honor_labels')) m.honorLabels = bool(get('honor_labels')!, fail);
  if (get('action')) m.action = oneOf(get('action')!, ['map', 'drop', ''], fail, 'action type') === 'drop' ? 'drop' : 'map';
  if (get('match_metric_type')) {
    const t = oneOf(get('match_metric_type')!, ['counter', 'gauge', 'observer', 'timer'], fail, 'metric type');
    if (t === 'timer') warn(e.get('match_metric_type'), LEGACY.timer!);
    m.matchMetricType = (t === 'timer' ? 'observer' : t) as MatchMetricType;
  }
  // statsd_exporter's MetricMapping.UnmarshalYAML: the deprecated timer_type when observer_type is unset.
  if (get('observer_type')) m.observerType = observerType(get('observer_type')!, fail);
  else if (get('timer_type')) m.observerType = observerType(get('timer_type')!, fail);
  if (get('ttl')) m.ttlMs = duration(get('ttl')!, fail);
  if (m.ttlMs === 0 && defaults.ttlMs > 0) m.ttlMs = defaults.ttlMs;
  if (get('scale')) m.scale = num(get('scale')!, fail, 'scale');
  const labels = get('labels');
  if (labels && !(isScalar(labels) && labels.value === null)) {
    if (!isMap(labels)) fail(labels, 'labels must be a map of label name to value');
    for (const p of (labels as YAMLMap).items as Pair[]) {
      const k = isScalar(p.key) ? String(p.key.value) : '';
      if (!LABEL_NAME.test(k)) fail(p, `invalid label key: ${k}`);
      // statsd_exporter takes it, then client_golang refuses every series of the family; Prometheus reserves such names.
      if (k.startsWith('__')) fail(p, `invalid label key: ${k} (names starting with "__" are reserved by Prometheus)`);
      m.labels.push([k, str(p.value as Node, fail, `label ${k}`)]);
    }
  }
  if (m.name === '') fail(node, "metric mapping didn't set a metric name");
  if (!METRIC_NAME.test(m.name)) fail(e.get('name'), `metric name '${m.name}' doesn't match regex '${METRIC_NAME.source}'`);
  const so = get('summary_options');
  const ho = get('histogram_options');
  if (so) m.summary = summaryOptions(so, fail, undefined);
  if (ho) m.histogram = histogramOptions(ho, fail, undefined);
  // The deprecated top-level buckets and quantiles: refused beside the options' own, else used by the matching observer.
  const lb = e.get('buckets');
  const lq = e.get('quantiles');
  if (lq && so && isMap(so) && so.has('quantiles')) fail(lq, `cannot use quantiles in both the top level and summary options at the same time in ${m.match}`);
  if (lb && ho && isMap(ho) && ho.has('buckets')) fail(lb, `cannot use buckets in both the top level and histogram options at the same time in ${m.match}`);
  const legacyBuckets = lb ? bucketList(lb, fail) : [];
  const legacyQuantiles = lq ? quantileList(lq, fail) : [];
  if (m.observerType === 'histogram' && legacyBuckets.length > 0) m.histogram.buckets = legacyBuckets;
  if (m.observerType === 'summary' && legacyQuantiles.length > 0) m.summary.quantiles = legacyQuantiles;
  if (m.observerType === 'histogram' && so) fail(e.get('summary_options'), 'cannot use histogram observer and summary options at the same time');
  if (m.observerType === 'summary' && ho) fail(e.get('histogram_options'), 'cannot use summary observer and histogram options at the same time');
  if (m.matchType === 'glob') {
    if (!METRIC_LINE.test(m.match)) fail(e.get('match') ?? node, `invalid match: ${m.match}`);
    m.fields = m.match.split('.');
  } else {
    m.regex = goRegex(m.match, (reason) => fail(e.get('match') ?? node, `invalid regex ${m.match} in mapping: ${reason}`));
  }
  return m;
}
