/**
 * StatsD names and tags as Prometheus names and labels, by statsd_exporter's rules
 * (pkg/mapper/escape.go, pkg/line/line.go): every character outside [a-zA-Z0-9_]
 * becomes `_` (a `-` right after a `-` is dropped instead), a leading digit gets a `_`
 * in front, no suffix is added; a tag `k:v` (here `k=v`) becomes the label
 * escape(k)="v", and a tag with an empty key or value, or without a value, is an error
 * (not a label); so is one named `__…` (Prometheus reserves those: client_golang would
 * refuse the series).
 */
import { splitKey } from './keys.js';

/** statsd_exporter's EscapeMetricName. */
export function escapeMetricName(name: string): string {
  if (name === '') return '';
  let out = /^[0-9]/.test(name) ? '_' : '';
  let prev = '';
  for (const c of name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '_') out += c;
    else if (c === '-' && prev === '-') continue;
    else out += '_';
    prev = c;
  }
  return out;
}

/**
 * A statsd key (keys.ts) as its raw name and its tag labels (values raw, as sent);
 * `tagErrors` counts tags that are no label.
 */
export function splitTags(key: string): { name: string; labels: Map<string, string>; tagErrors: number } {
  const { name, tags } = splitKey(key);
  const labels = new Map<string, string>();
  let tagErrors = 0;
  for (const [k, v] of tags) {
    const name = escapeMetricName(k);
    if (k === '' || v === undefined || v === '' || name.startsWith('__')) tagErrors++;
    else labels.set(name, v);
  }
  return { name, labels, tagErrors };
}
