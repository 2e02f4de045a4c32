/** Command-line parsing on node:util parseArgs, with one-line errors. */
import { parseArgs } from 'node:util';
import { byteSize, wholeNumber } from '../app/app-options.js';
import { parseByteSize, type ByteSizeRange } from '../app/byte-size.js';
import { ShardgramError, describeError } from '../errors.js';
import { checkLimit, isByteLimit, type LimitName } from '../supervisor/config.js';
import { OptionValueError, optionMessage } from '../app/option-error.js';
import { optionsOf, retiredGiven, type FlagTable, type Options } from './flags.js';

export type { Options } from './flags.js';

/** A mistake in the command line: printed as one line plus the usage, exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * `--workers -3` as `--workers=-3`: parseArgs takes a value that starts with a dash
 * for an option of its own ("ambiguous"); a negative number is a value, which the
 * option's own check then refuses with its range.
 */
export function joinNegativeValues(argv: readonly string[], options: Options): string[] {
  const takesValue = (arg: string): boolean => {
    if (arg.startsWith('--')) return options[arg.slice(2)]?.type === 'string';
    if (/^-[A-Za-z]$/.test(arg)) return Object.values(options).some((o) => o.short === arg[1] && o.type === 'string');
    return false;
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (next !== undefined && /^-\d/.test(next) && takesValue(arg)) {
      out.push(arg.startsWith('--') ? `${arg}=${next}` : `${arg}${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

export function parse(argv: string[], options: Options, usage: string): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({
      args: joinNegativeValues(argv, options),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (err) {
    // parseArgs' messages are long and mention internals; keep their first sentence.
    const msg = describeError(err).split('. ')[0]!.replace(/\.$/, '');
    throw new UsageError(msg, usage);
  }
}

/**
 * The flags of a command that takes no positional arguments: parsed (a retired flag
 * refused with what to do instead), or a UsageError; undefined once `--help` has
 * printed `usage` (the command then exits 0).
 */
export function parseFlags(argv: string[], flags: FlagTable, usage: string): Values | undefined {
  const { values, positionals } = parse(argv, optionsOf(flags), usage);
  if (values.help) {
    process.stdout.write(usage);
    return undefined;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, usage);
  const retired = retiredGiven(flags, values);
  if (retired !== undefined) throw new UsageError(retired, usage);
  return values;
}

/** Runs a value parser on flag `--name`, turning a bad value into a UsageError in the one option-error style. */
export function flagValue<T>(values: Record<string, unknown>, name: string, parse: (text: string) => T, usage: string): T | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  try {
    return parse(String(raw));
  } catch (err) {
    if (err instanceof OptionValueError) throw new UsageError(optionMessage(`--${name}`, String(raw), err), usage);
    throw err;
  }
}

export function intOption(values: Record<string, unknown>, name: string, min: number, max: number, usage: string, fallback?: number): number | undefined {
  return flagValue(values, name, wholeNumber(min, max), usage) ?? fallback;
}

/**
 * A flag whose range is in LIMITS (`--drain-timeout` is `drainTimeoutMs`'s): parsed
 * (a size in the size grammar for the byte limits, else a whole number), then checked
 * by the same checkLimit as the API's option, its error a UsageError.
 */
export function limitOption(values: Record<string, unknown>, name: string, key: LimitName, usage: string, fallback?: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw);
  const bytes = isByteLimit(key);
  let n: number;
  try {
    n = bytes ? parseByteSize(text) : /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  } catch (err) {
    if (err instanceof OptionValueError) throw new UsageError(optionMessage(`--${name}`, text, err), usage);
    throw err;
  }
  try {
    return checkLimit(key, n, `--${name}`, bytes || Number.isNaN(n) ? JSON.stringify(text) : undefined);
  } catch (err) {
    if (err instanceof ShardgramError) throw new UsageError(err.message, usage);
    throw err;
  }
}

/** Sizes in the one grammar (byte-size.ts): 4194304, 4096k, 4m, 4MiB. */
export function byteOption(values: Record<string, unknown>, name: string, usage: string, range: ByteSizeRange): number | undefined {
  return flagValue(values, name, byteSize(range), usage);
}

export function choice<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[], usage: string, fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; got "${String(raw)}"`, usage);
  return raw as T;
}
