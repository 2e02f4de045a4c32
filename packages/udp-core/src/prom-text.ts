/**
 * One writer for the Prometheus text exposition format (version 0.0.4): every
 * `/metrics` line of the service and of its apps goes through it, so names, label
 * escaping and special values are right in one place.
 */

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
export type PromLabels = Readonly<Record<string, string | number>>;

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

export class PromWriter {
  private readonly lines: string[] = [];
  private readonly declared = new Set<string>();

  /** Declares a metric family: `# HELP` and `# TYPE`, once per name. */
  family(name: string, type: PromType, help: string): this {
    if (!NAME.test(name)) throw new Error(`invalid Prometheus metric name "${name}"`);
    if (this.declared.has(name)) return this;
    this.declared.add(name);
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  /** One sample; `name` may carry a family's suffix (`_bucket`, `_sum`, `_count`). */
  sample(name: string, labels: PromLabels, value: number): this {
    if (!NAME.test(name)) throw new Error(`invalid Prometheus metric name "${name}"`);
    const parts: string[] = [];
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL.test(k)) throw new Error(`invalid Prometheus label name "${k}"`);
      parts.push(`${k}="${escapeLabelValue(String(v))}"`);
    }
    this.lines.push(`${name}${parts.length ? `{${parts.join(',')}}` : ''} ${formatValue(value)}`);
    return this;
  }

  /** The exposition text, ending in a newline (empty when nothing was written). */
  text(): string {
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }
}
