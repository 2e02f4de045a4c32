/**
 * Tags written into the metric name, in the three styles statsd_exporter reads (each
 * on by default there and here, each switchable off with an app option):
 *
 *   InfluxDB  `name,tag=v,tag2=v2:1|c`   tags after the first ","
 *   Librato   `name#tag=v,tag2=v2:1|c`   tags after the first "#"
 *   SignalFX  `name[tag=v,tag2=v2]:1|c`  tags between "[" and "]", anywhere in the name
 *                                         (`a.[k=v]b` is the name `a.b`)
 *
 * The tags come back as one comma-separated list of `k=v` (the form metricKey reads);
 * a line whose name uses two styles (SignalFX brackets with a "," or "#" outside them,
 * an InfluxDB "," followed by a "#") is rejected (`mixed_tags`), as is a name style
 * together with DogStatsD `|#` tags (parser.ts). A second pair of brackets
 * (`name[a=b][c=d]`) is rejected too (`tags`): statsd_exporter takes the first pair and
 * leaves `[c=d]` in the name, which sanitizing here would turn into the name `namec=d`
 * (docs/statsd.md). With a lone "[" or "]" the name is left as it is, as statsd_exporter
 * does.
 */

export interface TagStyles {
  influxdbTags: boolean;
  libratoTags: boolean;
  signalfxTags: boolean;
}

export const ALL_TAG_STYLES: TagStyles = { influxdbTags: true, libratoTags: true, signalfxTags: true };

export type NameTags =
  | { ok: true; name: string /** `k=v,k2=v2`, or undefined when the name had none. */; tags: string | undefined }
  | { ok: false; reason: string; code: 'mixed_tags' | 'tags' };

const MIXED = 'the name mixes two tag styles';

/** Splits name-embedded tags off a raw name. */
export function splitNameTags(raw: string, s: TagStyles): NameTags {
  const comma = s.influxdbTags ? raw.indexOf(',') : -1;
  const hash = s.libratoTags ? raw.indexOf('#') : -1;
  if (s.signalfxTags) {
    const open = raw.indexOf('[');
    const close = raw.indexOf(']');
    if (open >= 0 && close > open) {
      const rest = raw.slice(0, open) + raw.slice(close + 1);
      if ((s.influxdbTags && rest.includes(',')) || (s.libratoTags && rest.includes('#'))) return { ok: false, reason: MIXED, code: 'mixed_tags' };
      if (rest.includes('[') || rest.includes(']')) return { ok: false, reason: 'SignalFX tag brackets twice in the name', code: 'tags' };
      const inner = raw.slice(open + 1, close);
      return { ok: true, name: rest, tags: inner === '' ? undefined : inner };
    }
    if (open >= 0 || close >= 0) return { ok: true, name: raw, tags: undefined };
  }
  if (comma < 0 && hash < 0) return { ok: true, name: raw, tags: undefined };
  // The first of "," and "#" starts the tags; after "#" (Librato) "," separates them.
  if (comma >= 0 && (hash < 0 || comma < hash)) {
    if (hash > comma) return { ok: false, reason: MIXED, code: 'mixed_tags' };
    return { ok: true, name: raw.slice(0, comma), tags: raw.slice(comma + 1) };
  }
  return { ok: true, name: raw.slice(0, hash), tags: raw.slice(hash + 1) };
}
