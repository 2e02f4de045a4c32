/**
 * statsd_exporter's mapping files, taken from its documentation (README.md of
 * github.com/prometheus/statsd_exporter, "Metric Mapping and Configuration"): each
 * example gives the series name and labels the README documents for it. And its
 * naming rules without a mapping (pkg/mapper/escape.go), and what a file statsd_exporter
 * would refuse gets here: refused, with the line and the reason.
 */
import { describe, expect, it } from 'vitest';
import { Mapper } from '../../src/statsd/mapper.js';
import { MappingError, parseGoDuration, parseMappingConfig } from '../../src/statsd/mapping.js';
import { escapeMetricName } from '../../src/statsd/prom-names.js';

/** A literal "$" inside String.raw templates (so that ${D}{1} is the text "${1}"). */
const D = '$';
const mapperOf = (yaml: string): Mapper => new Mapper(parseMappingConfig(yaml, 'mapping.yml'));
/** The series a StatsD key (name;tag=v…) of `type` becomes: `name{labels}` with labels sorted, or `drop`. */
function series(m: Mapper, key: string, type: 'counter' | 'gauge' | 'observer' = 'counter'): string {
  const r = m.map(key, type);
  if (r.drop) return `drop (${r.reason})`;
  return `${r.name}{${[...r.labels]
    .sort()
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}

describe('statsd_exporter README: glob matching', () => {
  const m = mapperOf(`
mappings:
- match: "test.dispatcher.*.*.*"
  name: "dispatcher_events_total"
  labels:
    processor: "$1"
    action: "$2"
    outcome: "$3"
    job: "test_dispatcher"
- match: "*.signup.*.*"
  name: "signup_events_total"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "\${1}_server"
`);
  it('gives the documented series', () => {
    expect(series(m, 'test.dispatcher.FooProcessor.send.success')).toBe(
      'dispatcher_events_total{action="send", job="test_dispatcher", outcome="success", processor="FooProcessor"}',
    );
    expect(series(m, 'foo_product.signup.facebook.failure')).toBe('signup_events_total{job="foo_product_server", outcome="failure", provider="facebook"}');
    expect(series(m, 'test.web-server.foo.bar')).toBe('test_web_server_foo_bar{}');
  });

  it('$n in the name: "${2}_total"', () => {
    const t = mapperOf('mappings:\n- match: "test.*.*.counter"\n  name: "${2}_total"\n  labels:\n    provider: "$1"\n');
    expect(series(t, 'test.aws.requests.counter')).toBe('requests_total{provider="aws"}');
    // "$2_total" is the reference "2_total", which does not exist: an empty name, dropped (statsd_exporter's TemplateFormatter).
    expect(series(mapperOf('mappings:\n- match: "test.*.*.counter"\n  name: "$2_total"\n'), 'test.aws.requests.counter')).toBe('drop (empty_name)');
  });

  it('ordering: the first match in file order, or the most specific with glob_disable_ordering', () => {
    const rules = (disable: boolean): Mapper =>
      mapperOf(`
defaults:
  glob_disable_ordering: ${disable}
mappings:
- match: "a.*.*"
  name: "any_any"
- match: "a.*.d"
  name: "any_d"
- match: "a.b.*"
  name: "b_any"
- match: "a.b.c"
  name: "b_c"
`);
    expect(series(rules(false), 'a.b.c')).toBe('any_any{}');
    expect(series(rules(true), 'a.b.c')).toBe('b_c{}');
    expect(series(rules(true), 'a.b.d')).toBe('b_any{}');
    expect(series(rules(true), 'a.x.d')).toBe('any_d{}');
    expect(series(rules(true), 'a.b.c.d')).toBe('a_b_c_d{}'); // wrong number of fields: unmatched
  });
});

describe('statsd_exporter README: regular expressions', () => {
  it('gives the documented series, $0 included', () => {
    const m = mapperOf(String.raw`
mappings:
- match: "test\\.(\\w+)\\.(\\w+)\\.counter"
  match_type: regex
  name: "${D}{2}_total"
  labels:
    provider: "$1"
- match: "(.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count"
  match_type: regex
  name: "request_total"
  labels:
    hostname: "$1"
    exec: "$2"
    protocol: "$3"
    code: "$4"
`);
    expect(series(m, 'test.aws.requests.counter')).toBe('requests_total{provider="aws"}');
    expect(series(m, 'web01.nginx--http.status.200.count')).toBe('request_total{code="200", exec="nginx", hostname="web01", protocol="http"}');
    const zero = mapperOf('mappings:\n- match: ".+"\n  match_type: regex\n  name: "$0"\n  labels:\n    statsd_metric_name: "$0"\n');
    expect(series(zero, 'my.statsd_counter')).toBe('my_statsd_counter{statsd_metric_name="my.statsd_counter"}');
  });

  it('glob mappings go before regex ones, whatever the order', () => {
    const m = mapperOf('mappings:\n- match: "a\\\\..*"\n  match_type: regex\n  name: "regex"\n- match: "a.*"\n  name: "glob"\n');
    expect(series(m, 'a.b')).toBe('glob{}');
    expect(series(m, 'a.b.c')).toBe('regex{}');
  });

  it("the README's badly escaped example is refused, with its line", () => {
    expect(() =>
      parseMappingConfig('mappings:\n- match: "test\\\\.(\\w+)\\\\.(\\w+)\\\\.counter"\n  match_type: regex\n  name: "${2}_total"\n', 'm.yml'),
    ).toThrow(/^m\.yml:2: not valid YAML/);
  });
});

describe('statsd_exporter README: drop, match_metric_type, honor_labels, help, scale, ttl', () => {
  it('action: drop after a mapping keeps only the mapped metric', () => {
    const m = mapperOf(`
mappings:
- match: "test.timing.*.*.*"
  name: "my_timer"
  labels:
    provider: "$2"
    outcome: "$3"
    job: "${D}{1}_server"
- match: "."
  match_type: regex
  action: drop
  name: "dropped"
`);
    expect(series(m, 'test.timing.foo.aws.success', 'observer')).toBe('my_timer{job="foo_server", outcome="success", provider="aws"}');
    expect(series(m, 'anything.else')).toBe('drop (mapping_drop)');
  });

  it('match_metric_type restricts a mapping to one type', () => {
    const m = mapperOf('mappings:\n- match: "test.foo.*"\n  name: "test_foo"\n  match_metric_type: counter\n  labels:\n    provider: "$1"\n');
    expect(series(m, 'test.foo.bar', 'counter')).toBe('test_foo{provider="bar"}');
    expect(series(m, 'test.foo.bar', 'gauge')).toBe('test_foo_bar{}');
  });

  it('mapping labels win over tags, unless honor_labels', () => {
    const yaml = (honor: boolean): string =>
      `mappings:\n- match: "http.request.*"\n  help: "Total number of http requests"\n  name: "http_requests_total"\n  honor_labels: ${honor}\n  labels:\n    code: "$1"\n`;
    expect(series(mapperOf(yaml(false)), 'http.request.200;code=500;env=prod')).toBe('http_requests_total{code="200", env="prod"}');
    expect(series(mapperOf(yaml(true)), 'http.request.200;code=500;env=prod')).toBe('http_requests_total{code="500", env="prod"}');
    const r = mapperOf(yaml(false)).map('http.request.200', 'counter');
    expect(!r.drop && r.mapping?.help).toBe('Total number of http requests');
  });

  it('scale and ttl', () => {
    const c = parseMappingConfig(
      'defaults:\n  ttl: 1m20s\nmappings:\n- match: foo.latency_ms\n  name: foo_latency_seconds\n  scale: 0.001\n- match: bar.x\n  name: bar\n  ttl: 45s\n',
      'm.yml',
    );
    const m = new Mapper(c);
    expect(m.timerScale('foo.latency_ms')).toBe(0.001);
    expect(m.timerScale('other')).toBe(1);
    expect(c.mappings.map((x) => x.ttlMs)).toEqual([80_000, 45_000]);
    expect(parseGoDuration('1.5h')).toBe(5_400_000);
    expect(parseGoDuration('300ms')).toBe(300);
  });

  it("observer options: the README's summary and histogram examples, and the defaults statsd_exporter fills in", () => {
    const c = parseMappingConfig(
      `
mappings:
- match: "test.timing.*.*.*"
  observer_type: summary
  name: "my_timer"
  summary_options:
    quantiles:
      - quantile: 0.99
        error: 0.001
      - quantile: 0.95
        error: 0.01
    max_age: 30s
    age_buckets: 3
    buf_cap: 1000
- match: "test.hist.*.*.*"
  observer_type: histogram
  histogram_options:
    buckets: [ 0.01, 0.025, 0.05, 0.1 ]
    native_histogram_bucket_factor: 1.01
    native_histogram_max_buckets: 256
  name: "my_hist"
- match: "test.plain.*"
  observer_type: histogram
  name: "plain"
`,
      'm.yml',
    );
    const [s, h, p] = c.mappings;
    expect(s!.summary).toEqual({
      quantiles: [
        [0.99, 0.001],
        [0.95, 0.01],
      ],
      maxAgeMs: 30_000,
      ageBuckets: 3,
      bufCap: 1000,
    });
    expect(h!.histogram).toEqual({ buckets: [0.01, 0.025, 0.05, 0.1], nativeBucketFactor: 1.01, nativeMaxBuckets: 256 });
    expect(p!.histogram).toEqual({ buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], nativeBucketFactor: 1.1, nativeMaxBuckets: 256 });
    expect(c.defaults.summary).toEqual({
      quantiles: [
        [0.5, 0.05],
        [0.9, 0.01],
        [0.99, 0.001],
      ],
      maxAgeMs: 600_000,
      ageBuckets: 5,
      bufCap: 500,
    });
    // The workers keep timers fine enough for the finest native histogram asked (1.01: schema 7).
    expect(new Mapper(c).finestSchema()).toBe(7);
  });
});

describe("names without a mapping (statsd_exporter's EscapeMetricName)", () => {
  it('every character outside [a-zA-Z0-9_] becomes _, a leading digit gets a _, "--" counts once', () => {
    expect(escapeMetricName('api.req')).toBe('api_req');
    expect(escapeMetricName('1st.metric')).toBe('_1st_metric');
    expect(escapeMetricName('a--b---c')).toBe('a_b_c');
    expect(escapeMetricName('é.x')).toBe('__x');
    expect(series(new Mapper(undefined), 'api.req;env=prod;bad-key=1;novalue')).toBe('api_req{bad_key="1", env="prod"}');
    expect(new Mapper(undefined).map('api.req;novalue', 'counter').tagErrors).toBe(1);
  });
});

describe('refused at start, with the line and the reason', () => {
  it.each([
    ['mappings:\n- match: a.b\n  name: x\n  bogus: 1\n', /^m\.yml:4: unknown key "bogus" in a mapping/],
    ['mappings:\n- match: a.b\n  name: x\n  timer_typ: histogram\n', /^m\.yml:4: unknown key "timer_typ" in a mapping/],
    ['defaults:\n  bucket: [1]\n', /^m\.yml:2: unknown key "bucket" in defaults/],
    [
      'mappings:\n- match: a.b\n  name: x\n  observer_type: histogram\n  buckets: [1]\n  histogram_options:\n    buckets: [2]\n',
      /^m\.yml:5: cannot use buckets in both the top level and histogram options at the same time in a\.b/,
    ],
    [
      'mappings:\n- match: a.b\n  name: x\n  quantiles:\n  - quantile: 0.5\n  summary_options:\n    quantiles: []\n',
      /^m\.yml:4: cannot use quantiles in both the top level and summary options at the same time in a\.b/,
    ],
    ['mappings:\n- match: a.b\n  name: x\n  labels:\n    __name__: "$1"\n', /^m\.yml:5: invalid label key: __name__ \(names starting with "__" are reserved/],
    ['mappings:\n- match: a.b\n  name: x\n  honor_labels: "yes"\n', /^m\.yml:4: expected true or false/],
    ['mappings:\n- match: "a\\\\x{41}"\n  match_type: regex\n  name: x\n', /^m\.yml:2: invalid regex .*\\x\{…\} is not supported/],
    ['mappings:\n- match: "a\\\\C"\n  match_type: regex\n  name: x\n', /^m\.yml:2: invalid regex .*\\C \(any byte\) is not supported/],
    ['mappings:\n- match: "[\\\\A]"\n  match_type: regex\n  name: x\n', /^m\.yml:2: invalid regex .*\\A inside a character class/],
    ['mappings:\n- match: a.b*\n  name: x\n', /^m\.yml:2: invalid match: a\.b\*/],
    ['mappings:\n- match: a.b\n', /^m\.yml:2: metric mapping didn't set a metric name/],
    ['mappings:\n- match: a.b\n  name: 1x\n', /^m\.yml:3: metric name '1x' doesn't match/],
    ['mappings:\n- match: a.b\n  name: x\n  labels:\n    a: "1"\n', /^m\.yml:5: invalid label key: a/],
    [
      'mappings:\n- match: a.b\n  name: x\n  observer_type: histogram\n  summary_options:\n    max_age: 1m\n',
      /^m\.yml:5: cannot use histogram observer and summary options/,
    ],
    ['mappings:\n- match: a.b\n  name: x\n  observer_type: histo\n', /^m\.yml:4: invalid observer type "histo"/],
    ['mappings:\n- match: "(?i)a"\n  match_type: regex\n  name: x\n', /^m\.yml:2: invalid regex .*inline flags/],
    ['defaults:\n  ttl: 5 minutes\n', /^m\.yml:2: "5 minutes" is not a duration/],
    ['mapping:\n- match: a\n', /^m\.yml:1: unknown top-level key "mapping"/],
  ])('%j', (yaml, message) => {
    expect(() => parseMappingConfig(yaml, 'm.yml')).toThrow(MappingError);
    expect(() => parseMappingConfig(yaml, 'm.yml')).toThrow(message);
  });
});

describe("statsd_exporter's deprecated keys (pkg/mapper of v0.30.0): read as it reads them, with a warning naming the line", () => {
  it('timer_type is the observer type when observer_type is unset, in a mapping and in the defaults', () => {
    const c = parseMappingConfig(
      `defaults:
  timer_type: histogram
mappings:
- match: a.*
  name: a
  timer_type: summary
- match: b.*
  name: b
  timer_type: summary
  observer_type: histogram
- match: c.*
  name: c
`,
      'm.yml',
    );
    expect(c.defaults.observerType).toBe('histogram');
    expect(c.mappings.map((m) => m.observerType)).toEqual(['summary', 'histogram', 'histogram']);
    expect(c.warnings).toEqual([
      'm.yml:2: timer_type is deprecated: use observer_type (which wins when both are set) (in defaults)',
      'm.yml:6: timer_type is deprecated: use observer_type (which wins when both are set)',
      'm.yml:9: timer_type is deprecated: use observer_type (which wins when both are set)',
    ]);
  });

  it("a mapping's top-level buckets and quantiles go into its observer's options", () => {
    const c = parseMappingConfig(
      `mappings:
- match: h.*
  name: h
  observer_type: histogram
  buckets: [0.1, 1]
  histogram_options:
    native_histogram_bucket_factor: 1.5
- match: s.*
  name: s
  quantiles:
  - quantile: 0.75
    error: 0.01
- match: ignored.*
  name: i
  observer_type: summary
  buckets: [5]
`,
      'm.yml',
    );
    const [h, s, i] = c.mappings;
    expect(h!.histogram).toEqual({ buckets: [0.1, 1], nativeBucketFactor: 1.5, nativeMaxBuckets: 256 });
    expect(s!.summary.quantiles).toEqual([[0.75, 0.01]]);
    // statsd_exporter uses top-level buckets only for a histogram observer (and quantiles only for a summary).
    expect(i!.summary.quantiles).toEqual(c.defaults.summary.quantiles);
    expect(c.warnings).toEqual([
      'm.yml:5: a top-level buckets is deprecated: use histogram_options.buckets',
      'm.yml:10: a top-level quantiles is deprecated: use summary_options.quantiles',
      'm.yml:16: a top-level buckets is deprecated: use histogram_options.buckets',
    ]);
  });

  it("defaults' buckets and quantiles apply only when the options' own lists are empty, replacing those options", () => {
    const used = parseMappingConfig(
      `defaults:
  buckets: [0.5, 2]
  quantiles:
  - quantile: 0.9
    error: 0.01
  summary_options:
    max_age: 1m
  histogram_options:
    native_histogram_bucket_factor: 2
`,
      'm.yml',
    );
    expect(used.defaults.histogram.buckets).toEqual([0.5, 2]);
    // statsd_exporter's mapperConfigDefaults replaces the whole options: the factor and max_age go back to their defaults.
    expect(used.defaults.histogram.nativeBucketFactor).toBe(1.1);
    expect(used.defaults.summary.quantiles).toEqual([[0.9, 0.01]]);
    expect(used.defaults.summary.maxAgeMs).toBe(600_000);
    const unused = parseMappingConfig(
      `defaults:
  buckets: [0.5, 2]
  histogram_options:
    buckets: [3]
`,
      'm.yml',
    );
    expect(unused.defaults.histogram.buckets).toEqual([3]);
    expect(unused.warnings).toEqual(['m.yml:2: a top-level buckets is deprecated: use histogram_options.buckets (in defaults)']);
  });

  it('match_metric_type: timer means observer', () => {
    const m = mapperOf('mappings:\n- match: t.*\n  name: t\n  match_metric_type: timer\n');
    expect(m.config!.mappings[0]!.matchMetricType).toBe('observer');
    expect(m.config!.warnings).toEqual(['mapping.yml:4: match_metric_type: timer is deprecated: use observer (what it means)']);
    expect(series(m, 't.x', 'observer')).toBe('t{}');
    expect(series(m, 't.x', 'counter')).toBe('t_x{}');
  });
});

describe('read as go-yaml v2 reads it', () => {
  it('YAML 1.1 booleans (yes/no, on/off, y/n) for boolean keys', () => {
    for (const [text, value] of [
      ['yes', true],
      ['On', true],
      ['Y', true],
      ['no', false],
      ['OFF', false],
      ['n', false],
    ] as const) {
      const c = parseMappingConfig(`defaults:\n  glob_disable_ordering: ${text}\nmappings:\n- match: a.b\n  name: x\n  honor_labels: ${text}\n`, 'm.yml');
      expect(c.globDisableOrdering, text).toBe(value);
      expect(c.mappings[0]!.honorLabels, text).toBe(value);
    }
  });

  it('\\A in a regex is the start of the name, as in Go', () => {
    const m = mapperOf(String.raw`mappings:
- match: '\Aapi\.(\w+)'
  match_type: regex
  name: api_$1
`);
    expect(series(m, 'api.req')).toBe('api_req{}');
    // Not a literal "A": in JavaScript without the translation, \A would match "A".
    expect(series(m, 'Aapi.req')).toBe('Aapi_req{}');
    expect(series(m, 'x.api.req')).toBe('x_api_req{}');
  });
});
