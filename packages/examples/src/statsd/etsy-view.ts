/**
 * A flush as the Etsy-compatible outputs (JSON lines, Graphite) write it: every key
 * replaced by its Etsy statsd key (keys.ts etsyKey: name and tags sanitized), while the
 * flush itself (and the Prometheus side) keeps the raw keys.
 *
 * Two raw keys can share one Etsy key (`route:/a` and `route:-a`). Their counters are
 * then added (what Etsy statsd, aggregating by the sanitized key, would have counted);
 * of their gauges, sets and timers, whose figures cannot be combined after the flush,
 * the first (in the flush's key order) is written and each other one is counted in
 * `key_collisions` (a field of the JSON line and a `<prefix>.statsd.key_collisions`
 * Graphite line, both present only when not 0).
 */
import { etsyKey } from './keys.js';
import { record, type FlushResult } from './merge.js';

/** A flush with Etsy keys, and how many series were left out for sharing one. */
export type EtsyFlush = FlushResult & { key_collisions?: number };

/** `rec` with its keys made Etsy keys (the same object when none changes). */
function rekey<T>(rec: Record<string, T>, add: ((a: T, b: T) => T) | undefined, lost: { n: number }): Record<string, T> {
  let same = true;
  for (const k in rec) {
    if (etsyKey(k) !== k) {
      same = false;
      break;
    }
  }
  if (same) return rec;
  const out = record<T>();
  for (const k in rec) {
    const e = etsyKey(k);
    const v = rec[k]!;
    if (!Object.hasOwn(out, e)) out[e] = v;
    else if (add) out[e] = add(out[e]!, v);
    else lost.n++;
  }
  return out;
}

/** Each flush's Etsy view, made once for the outputs that write it (JSON and Graphite both). */
const made = new WeakMap<FlushResult, EtsyFlush>();

/** `r` with Etsy keys (r itself when every key already is one). */
export function etsyFlush(r: FlushResult): EtsyFlush {
  let out = made.get(r);
  if (!out) made.set(r, (out = rekeyed(r)));
  return out;
}

function rekeyed(r: FlushResult): EtsyFlush {
  const lost = { n: 0 };
  const counters = rekey(r.counters, (a, b) => a + b, lost);
  const gauges = rekey(r.gauges, undefined, lost);
  const sets = rekey(r.sets, undefined, lost);
  const timers = rekey(r.timers, undefined, lost);
  if (counters === r.counters && gauges === r.gauges && sets === r.sets && timers === r.timers) return r;
  const out: EtsyFlush = { ...r, counters, gauges, sets, timers };
  if (lost.n > 0) out.key_collisions = lost.n;
  return out;
}
