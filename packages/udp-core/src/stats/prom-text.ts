/**
 * One writer for Prometheus exposition: every `/metrics` family of the service and of
 * its apps goes through it, so names, label escaping and special values are right in
 * one place. It keeps the families as data (`families()`), which the text format
 * (version 0.0.4, `text()`) and the protobuf format (prom-proto.ts, with native
 * histograms) are both written from.
 */

import { invalidArg } from '../errors.js';

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
export type PromLabels = Readonly<Record<string, string | number>>;

/** A native histogram's buckets in Prometheus's layout (spans, counts as deltas). */
export interface PromNativeHistogram {
  schema: number;
  zeroThreshold: number;
  zeroCount: number;
  positiveSpans: readonly { offset: number; length: number }[];
  positiveDeltas: readonly number[];
  negativeSpans: readonly { offset: number; length: number }[];
  negativeDeltas: readonly number[];
}

export interface PromHistogram {
  count: number;
  sum: number;
  /** Classic buckets: upper bound and cumulative count, ascending (`+Inf` is implied by `count`). */
  buckets: readonly (readonly [le: number, cumulative: number])[];
  /** Native buckets (protobuf exposition only: the text format shows the classic ones). */
  native?: PromNativeHistogram;
}

export interface PromSummary {
  count: number;
  sum: number;
  quantiles: readonly (readonly [quantile: number, value: number])[];
}

export type PromMetric =
  | { labels: Record<string, string>; value: number }
  | { labels: Record<string, string>; histogram: PromHistogram }
  | { labels: Record<string, string>; summary: PromSummary };

export interface PromFamily {
  name: string;
  type: PromType;
  help: string;
  metrics: PromMetric[];
  /** Samples given under a suffixed name (`x_bucket`…) with sample(): text only. */
  raw?: string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value with `\`, `"` and newlines escaped, as the format requires. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A HELP text with `\` and newlines escaped. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value: integers as they are, NaN and infinities spelled as Prometheus spells them. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Any string made into a valid metric name part (invalid characters become `_`). */
export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

function checkName(name: string): void {
  if (!NAME.test(name)) throw invalidArg('metric name', name, 'a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*; sanitizeMetricName makes one)');
}

function labelRecord(labels: PromLabels): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL.test(k)) throw invalidArg('label name', k, 'a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)');
    out[k] = String(v);
  }
  return out;
}

function labelText(labels: Readonly<Record<string, string>>, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

const SUFFIXES = ['_bucket', '_sum', '_count'];

export class PromWriter {
  private readonly byName = new Map<string, PromFamily>();
  private readonly order: PromFamily[] = [];

  /** Declares a metric family: `# HELP` and `# TYPE`, once per name. */
  family(name: string, type: PromType, help: string): this {
    checkName(name);
    if (this.byName.has(name)) return this;
    const f: PromFamily = { name, type, help, metrics: [] };
    this.byName.set(name, f);
    this.order.push(f);
    return this;
  }

  /** The declared family `name`, or one of type `untyped` declared now. */
  private get(name: string): PromFamily {
    checkName(name);
    if (!this.byName.has(name)) this.family(name, 'untyped', name);
    return this.byName.get(name)!;
  }

  /**
   * One sample of a counter, gauge or untyped family. A name with a declared family's
   * suffix (`_bucket`, `_sum`, `_count`) is written as it is, in the text format only.
   */
  sample(name: string, labels: PromLabels, value: number): this {
    checkName(name);
    const l = labelRecord(labels);
    if (!this.byName.has(name)) {
      const suffix = SUFFIXES.find((s) => name.endsWith(s) && this.byName.has(name.slice(0, -s.length)));
      if (suffix) {
        const f = this.byName.get(name.slice(0, -suffix.length))!;
        (f.raw ??= []).push(`${name}${labelText(l)} ${formatValue(value)}`);
        return this;
      }
    }
    this.get(name).metrics.push({ labels: l, value });
    return this;
  }

  /** One histogram (classic buckets, and native ones for the protobuf format). */
  histogram(name: string, labels: PromLabels, h: PromHistogram): this {
    this.get(name).metrics.push({ labels: labelRecord(labels), histogram: h });
    return this;
  }

  /** One summary. */
  summary(name: string, labels: PromLabels, s: PromSummary): this {
    this.get(name).metrics.push({ labels: labelRecord(labels), summary: s });
    return this;
  }

  /** Another writer's families, after this one's (a family already here keeps its place and gets the metrics). */
  append(families: readonly PromFamily[]): this {
    for (const f of families) {
      const mine = this.byName.get(f.name);
      if (!mine) {
        const copy: PromFamily = { ...f, metrics: [...f.metrics], ...(f.raw ? { raw: [...f.raw] } : {}) };
        this.byName.set(f.name, copy);
        this.order.push(copy);
      } else {
        mine.metrics.push(...f.metrics);
        if (f.raw) (mine.raw ??= []).push(...f.raw);
      }
    }
    return this;
  }

  /** The families, in declaration order. */
  families(): PromFamily[] {
    return [...this.order];
  }

  /** The exposition text, ending in a newline (empty when nothing was written). */
  text(): string {
    return familiesText(this.order);
  }
}

/** Families as the text format (version 0.0.4). */
export function familiesText(families: readonly PromFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const m of f.metrics) {
      if ('value' in m) {
        lines.push(`${f.name}${labelText(m.labels)} ${formatValue(m.value)}`);
      } else if ('histogram' in m) {
        const h = m.histogram;
        for (const [le, c] of h.buckets) lines.push(`${f.name}_bucket${labelText(m.labels, ['le', formatValue(le)])} ${formatValue(c)}`);
        if (h.buckets.at(-1)?.[0] !== Infinity) lines.push(`${f.name}_bucket${labelText(m.labels, ['le', '+Inf'])} ${formatValue(h.count)}`);
        lines.push(`${f.name}_sum${labelText(m.labels)} ${formatValue(h.sum)}`, `${f.name}_count${labelText(m.labels)} ${formatValue(h.count)}`);
      } else {
        const s = m.summary;
        for (const [q, v] of s.quantiles) lines.push(`${f.name}${labelText(m.labels, ['quantile', formatValue(q)])} ${formatValue(v)}`);
        lines.push(`${f.name}_sum${labelText(m.labels)} ${formatValue(s.sum)}`, `${f.name}_count${labelText(m.labels)} ${formatValue(s.count)}`);
      }
    }
    if (f.raw) lines.push(...f.raw);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
