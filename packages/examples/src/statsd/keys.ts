/**
 * StatsD aggregation keys: what identifies one series (a name and its tags) between
 * the parser, the workers, the merge and the outputs.
 *
 * A key keeps the raw name and the raw tag keys and values, as the sender wrote them
 * (statsd_exporter's view, which the Prometheus outputs need): the name, then the
 * sorted, de-duplicated tags, each after a ";", a tag being `k=v` (or a bare `k`).
 * Only the key's own separators are escaped inside a name, tag key or value, so that
 * the key splits back exactly: "%" → "%25", ";" → "%3B", "=" → "%3D". A clean name
 * ([A-Za-z0-9_.-]) without tags is its own key (nothing to escape).
 *
 * The Etsy statsd key of the same line (etsyKey: the name and every tag sanitized,
 * whitespace → "_", "/" → "-", anything but [A-Za-z0-9_.;=-] dropped) is what the
 * Graphite and JSON outputs write: `api.hits|#route:/a,env:prod` has the key
 * `api.hits;env=prod;route=/a` and the Etsy key `api.hits;env=prod;route=-a`.
 */

/** The key's escaped characters and their escapes. */
const ESCAPE = /[%;=]/g;
const UNESCAPE = /%(25|3B|3D)/g;
const ESCAPES: Record<string, string> = { '%': '%25', ';': '%3B', '=': '%3D' };
const UNESCAPES: Record<string, string> = { '25': '%', '3B': ';', '3D': '=' };

function esc(s: string): string {
  return s.replace(ESCAPE, (c) => ESCAPES[c]!);
}

function unesc(s: string): string {
  return s.includes('%') ? s.replace(UNESCAPE, (_, h: string) => UNESCAPES[h]!) : s;
}

/** Etsy statsd's sanitizing of a name or a tag. */
export function sanitize(s: string): string {
  return s
    .replace(/\s+/g, '_')
    .replace(/\//g, '-')
    .replace(/[^a-zA-Z_\-0-9.;=]/g, '');
}

const CLEAN_NAME = /^[A-Za-z0-9_.-]+$/;

/** Keys already built from a raw name and raw tags; bounded (cleared when full). */
const keyCache = new Map<string, string>();
const KEY_CACHE_MAX = 20_000;

/** One tag as the key writes it: `k=v` when it had a separator, a bare `k` otherwise. */
function tagText(k: string, v: string | undefined): string {
  return v === undefined ? esc(k) : `${esc(k)}=${esc(v)}`;
}

/**
 * A raw tag split at its first ":" (DogStatsD `k:v`, as statsd_exporter splits it),
 * or, without one, at its first "=" (the name styles' `k=v`; a DogStatsD `k=v` too, as before);
 * a tag written in the name after a ";" (`colon` false) only at its first "=".
 */
function rawTag(t: string, colon = true): string {
  let i = colon ? t.indexOf(':') : -1;
  if (i < 0) i = t.indexOf('=');
  return i < 0 ? tagText(t, undefined) : tagText(t.slice(0, i), t.slice(i + 1));
}

/**
 * The aggregation key of a raw name and raw tag list (DogStatsD's, without the "#",
 * or a name style's `k=v,…`), or "" when nothing is left of the name once sanitized
 * (the line is then bad: `name`). A ";" in the name starts tags (`k=v`), as in
 * Graphite's tagged series.
 */
export function metricKey(rawName: string, rawTags?: string): string {
  if (rawTags === undefined && CLEAN_NAME.test(rawName)) return rawName;
  // "\n" cannot occur inside a line, so name and tags never run into each other here.
  const cacheKey = rawTags === undefined ? rawName : `${rawName}\n${rawTags}`;
  const hit = keyCache.get(cacheKey);
  if (hit !== undefined) return hit;
  const parts = rawName.split(';');
  const name = parts[0] ?? '';
  let key = '';
  if (sanitize(name) !== '') {
    const tags: string[] = [];
    for (let i = 1; i < parts.length; i++) tags.push(rawTag(parts[i]!, false)); // Graphite's `;k=v`
    if (rawTags !== undefined) for (const t of rawTags.split(',')) tags.push(rawTag(t));
    const kept = [...new Set(tags.filter((t) => t !== '' && t !== '='))].sort();
    key = kept.length ? `${esc(name)};${kept.join(';')}` : esc(name);
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(cacheKey, key);
  return key;
}

/** A key's raw name and raw tags (`[k, v]`, v undefined for a bare tag). */
export function splitKey(key: string): { name: string; tags: [string, string | undefined][] } {
  const parts = key.split(';');
  const tags: [string, string | undefined][] = [];
  for (let i = 1; i < parts.length; i++) {
    const t = parts[i]!;
    const eq = t.indexOf('=');
    tags.push(eq < 0 ? [unesc(t), undefined] : [unesc(t.slice(0, eq)), unesc(t.slice(eq + 1))]);
  }
  return { name: unesc(parts[0] ?? ''), tags };
}

/** Etsy keys already made from keys; bounded (cleared when full). */
const etsyCache = new Map<string, string>();

/**
 * The Etsy statsd key of a key (docs/statsd.md): the name and each tag sanitized (a
 * ";" inside a tag becomes "_"), tags that sanitize to nothing (or to "=") dropped,
 * the rest de-duplicated and sorted. Several keys can share one Etsy key.
 */
export function etsyKey(key: string): string {
  if (CLEAN_NAME.test(key)) return key;
  const hit = etsyCache.get(key);
  if (hit !== undefined) return hit;
  const { name, tags } = splitKey(key);
  const clean = tags.map(([k, v]) => sanitize((v === undefined ? k : `${k}=${v}`).replace(/;/g, '_')));
  const kept = [...new Set(clean.filter((t) => t !== '' && t !== '='))].sort();
  const out = kept.length ? `${sanitize(name)};${kept.join(';')}` : sanitize(name);
  if (etsyCache.size >= KEY_CACHE_MAX) etsyCache.clear();
  etsyCache.set(key, out);
  return out;
}

/** An Etsy key's name and its tags (`k=v` or a bare `k`), split on ";" (no escapes in an Etsy key). */
export function splitEtsyKey(key: string): { name: string; tags: string[] } {
  const parts = key.split(';');
  return { name: parts[0] ?? '', tags: parts.slice(1) };
}
