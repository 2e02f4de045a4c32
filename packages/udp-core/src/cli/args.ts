/** Command-line parsing on node:util parseArgs, with one-line errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line: printed as one line plus the usage, exit status 2. */
export class UsageError extends Error {
  constructor(message: string, readonly usage: string) {
    super(message);
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(argv: string[], options: Options, usage: string): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | string[] | undefined>, positionals: r.positionals };
  } catch (err) {
    // parseArgs' messages are long and mention internals; keep their first sentence.
    const msg = err instanceof Error ? err.message.split('. ')[0]!.replace(/\.$/, '') : String(err);
    throw new UsageError(msg, usage);
  }
}

export function intOption(values: Record<string, unknown>, name: string, min: number, max: number, usage: string, fallback?: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw);
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}; got "${text}"`, usage);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`--${name} must be from ${min} to ${max}; got ${n}`, usage);
  return n;
}

/** Sizes like 4194304, 4096k, 4m. */
export function byteOption(values: Record<string, unknown>, name: string, usage: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const m = /^(\d+)([kKmMgG]?)$/.exec(String(raw));
  if (!m) throw new UsageError(`--${name} must be a number of bytes, optionally with k, m or g (e.g. 4m); got "${String(raw)}"`, usage);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const n = Number(m[1]) * mult;
  if (n < 1 || n > 2 ** 30) throw new UsageError(`--${name} must be from 1 byte to 1g; got "${String(raw)}"`, usage);
  return n;
}

export function choice<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[], usage: string, fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; got "${String(raw)}"`, usage);
  return raw as T;
}
