/**
 * What a StatsD metric becomes in Prometheus, as statsd_exporter decides it
 * (pkg/mapper/mapper.go GetMapping, pkg/exporter/exporter.go handleEvent):
 *
 * - glob mappings first: `*` is one whole dot-separated field; the first mapping in
 *   file order that matches wins (with `glob_disable_ordering`, the one with a literal
 *   field where others have `*`, leftmost first); `$1`, `${1}` in `name` and label values
 *   are the fields under the stars (anything else after `$` gives nothing, so
 *   `$1_total` is empty: write `${1}_total`);
 * - then regex mappings, in order, unanchored, expanded as Go's Regexp.ExpandString
 *   (`$0` the whole match, `$name` as long as possible);
 * - `match_metric_type` restricts a mapping to counters, gauges or observers;
 * - the name is escaped (prom-names.ts); the mapping's labels override the tags unless
 *   `honor_labels`; an unmatched metric keeps its escaped name and its tags, with the
 *   defaults' observer type and ttl;
 * - `action: drop`, or a name that comes out empty, drops it (counted by the caller).
 */
import { schemaForFactor, MAX_SCHEMA } from './native-histogram.js';
import type { Mapping, MappingConfig, MatchMetricType } from './mapping.js';
import { escapeMetricName, splitTags } from './prom-names.js';

/** Where a StatsD key goes in Prometheus. */
export type Mapped =
  | { drop: false; name: string; labels: Map<string, string>; mapping: Mapping | undefined; tagErrors: number }
  | { drop: true; reason: 'mapping_drop' | 'empty_name'; tagErrors: number };

interface Rule {
  mapping: Mapping;
  name: string;
  labels: [string, string][];
}

const CACHE_MAX = 10_000;
const GLOB_TEMPLATE = /\$\{?([a-zA-Z0-9_$]+)\}?/g;

/** statsd_exporter's TemplateFormatter: `$n`/`${n}` for 1 ≤ n ≤ the stars, anything else empty. */
function formatGlob(template: string, captures: readonly string[]): string {
  return template.replace(GLOB_TEMPLATE, (_m, ref: string) => {
    const n = /^\d+$/.test(ref) ? Number(ref) : NaN;
    return n >= 1 && n <= captures.length ? captures[n - 1]! : '';
  });
}

/** Go's Regexp.ExpandString. */
export function expandGo(template: string, m: RegExpExecArray): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c !== '$') {
      out += c;
      continue;
    }
    const rest = template.slice(i + 1);
    if (rest.startsWith('$')) {
      out += '$';
      i++;
      continue;
    }
    const br = /^\{([a-zA-Z0-9_]+)\}/.exec(rest);
    const bare = br ? undefined : /^[a-zA-Z0-9_]+/.exec(rest);
    const name = br?.[1] ?? bare?.[0];
    if (name === undefined) {
      out += '$'; // malformed: the $ as it is
      continue;
    }
    i += (br ? br[0] : name).length;
    if (/^\d+$/.test(name)) out += m[Number(name)] ?? '';
    else out += m.groups?.[name] ?? '';
  }
  return out;
}

export class Mapper {
  private readonly cache = new Map<string, Rule | null>();
  private readonly globs: Mapping[];
  private readonly regexes: Mapping[];

  constructor(readonly config: MappingConfig | undefined) {
    const all = config?.mappings ?? [];
    this.globs = all.filter((m) => m.matchType === 'glob');
    this.regexes = all.filter((m) => m.matchType === 'regex');
  }

  /** The mapping rule for a StatsD name of a type, or null when none matches. */
  rule(name: string, type: MatchMetricType): Rule | null {
    const ck = `${type}\n${name}`;
    const hit = this.cache.get(ck);
    if (hit !== undefined) return hit;
    const r = this.find(name, type);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(ck, r);
    return r;
  }

  private find(name: string, type: MatchMetricType): Rule | null {
    const fields = name.split('.');
    let best: { m: Mapping; captures: string[] } | undefined;
    for (const m of this.globs) {
      if (m.matchMetricType && m.matchMetricType !== type) continue;
      const f = m.fields!;
      if (f.length !== fields.length) continue;
      const captures: string[] = [];
      let ok = true;
      for (let i = 0; i < f.length && ok; i++) {
        if (f[i] === '*') captures.push(fields[i]!);
        else ok = f[i] === fields[i];
      }
      if (!ok) continue;
      if (!this.config!.globDisableOrdering) {
        best = { m, captures };
        break;
      }
      if (!best || moreSpecific(f, best.m.fields!)) best = { m, captures };
    }
    if (best) {
      const { m, captures } = best;
      return { mapping: m, name: formatGlob(m.name, captures), labels: m.labels.map(([k, v]) => [k, formatGlob(v, captures)]) };
    }
    for (const m of this.regexes) {
      const re = m.regex!;
      re.lastIndex = 0;
      const match = re.exec(name);
      if (!match) continue;
      if (m.matchMetricType && m.matchMetricType !== type) continue;
      return { mapping: m, name: expandGo(m.name, match), labels: m.labels.map(([k, v]) => [k, expandGo(v, match)]) };
    }
    return null;
  }

  /** Where the StatsD key (name with tags) of `type` goes. */
  map(key: string, type: MatchMetricType): Mapped {
    const { name, labels, tagErrors } = splitTags(key);
    const r = this.config ? this.rule(name, type) : null;
    if (!r) {
      const n = escapeMetricName(name);
      return n === '' ? { drop: true, reason: 'empty_name', tagErrors } : { drop: false, name: n, labels, mapping: undefined, tagErrors };
    }
    if (r.mapping.action === 'drop') return { drop: true, reason: 'mapping_drop', tagErrors };
    if (r.name === '') return { drop: true, reason: 'empty_name', tagErrors };
    for (const [k, v] of r.labels) if (!(r.mapping.honorLabels && labels.has(k))) labels.set(k, v);
    return { drop: false, name: escapeMetricName(r.name), labels, mapping: r.mapping, tagErrors };
  }

  /** A mapping's `scale` for a timer name (1 when none). */
  timerScale(name: string): number {
    if (!this.config) return 1;
    const r = this.rule(name, 'observer');
    return r?.mapping.scale ?? 1;
  }

  /**
   * The classic histogram buckets (Prometheus units) a timer name is served with, and its
   * mapping's `scale` when set; undefined when it is served as a summary or dropped.
   */
  classicBuckets(name: string): { bounds: readonly number[]; scale: number | undefined } | undefined {
    const r = this.config ? this.rule(name, 'observer') : null;
    if (r?.mapping.action === 'drop') return undefined;
    const o = r?.mapping ?? this.config?.defaults;
    if (o?.observerType !== 'histogram') return undefined;
    return { bounds: o.histogram.buckets, scale: r?.mapping.scale };
  }

  /** The finest native histogram schema any histogram observer of the file asks for (undefined: none). */
  finestSchema(): number | undefined {
    const c = this.config;
    if (!c) return undefined;
    let s: number | undefined;
    const consider = (observer: string, factor: number): void => {
      if (observer !== 'histogram' || !(factor > 1)) return;
      const k = schemaForFactor(factor);
      s = s === undefined ? k : Math.max(s, k);
    };
    consider(c.defaults.observerType, c.defaults.histogram.nativeBucketFactor);
    for (const m of c.mappings) consider(m.observerType, m.histogram.nativeBucketFactor);
    return s === undefined ? undefined : Math.min(s, MAX_SCHEMA);
  }
}

/** glob_disable_ordering: a literal field beats `*`, leftmost difference first. */
function moreSpecific(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) {
    const la = a[i] !== '*';
    const lb = b[i] !== '*';
    if (la !== lb) return la;
  }
  return false;
}
