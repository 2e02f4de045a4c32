/**
 * An app declares its options as a schema (the module's `options` export): each key
 * with its command-line flag, parser, default and help line. `shardgram serve <app>`
 * builds the app's flags, its `--help` and its validation from it; the app reads
 * `context.options` through `parseAppOptions` with the same schema, so the command
 * line and the API check the same things with the same messages.
 *
 *   export const options = defineAppOptions({
 *     keep: { flag: 'keep', value: 'N', help: 'rotated files kept', parse: wholeNumber(1, 1000), default: 5 },
 *   });
 *   const o = parseAppOptions('myapp', options, ctx.options); // o.keep: number
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ShardgramError } from '../errors.js';
import { parseByteSize, formatByteSize, type ByteSizeRange } from './byte-size.js';
import { OptionValueError, parseNamed } from './option-error.js';
import { formatOptionRows } from './option-help.js';

export interface AppOption<T> {
  /** Flag of `shardgram serve <app>` (without `--`); without one, only `--app-option key=value` sets it. */
  flag?: string;
  /** Placeholder of the value in the help, e.g. `MS`, `FILE`, `SIZE`. */
  value: string;
  /** One line of help. */
  help: string;
  /** Text to value; throws an `OptionValueError` saying what was expected. */
  parse(text: string): T;
  /** The value when the option is not given. */
  default: T;
  /** The default as the help shows it, when the value does not say it (e.g. "standard output"). */
  defaultText?: string;
}

/** An app's options by key. */
export type AppOptionSchema = Readonly<Record<string, AppOption<unknown>>>;

/** The parsed values of a schema, by key. */
export type AppOptionValues<S extends AppOptionSchema> = { [K in keyof S]: S[K] extends AppOption<infer T> ? T : never };

/** Identity helper that gives an app's option schema its type. */
export function defineAppOptions<S extends AppOptionSchema>(schema: S): S {
  return schema;
}

/** Whether a module export looks like an option schema (for loading untyped modules). */
export function isAppOptionSchema(x: unknown): x is AppOptionSchema {
  if (typeof x !== 'object' || x === null) return false;
  return Object.values(x).every(
    (o: unknown) =>
      typeof o === 'object' && o !== null && typeof (o as AppOption<unknown>).parse === 'function' && typeof (o as AppOption<unknown>).help === 'string',
  );
}

export interface ParseAppOptionsHow {
  /** How a key is named in messages (default: the key; the command line names the flag). */
  name?: (key: string) => string;
}

/**
 * Checks and parses an app's raw options against its schema. Throws a ShardgramError
 * (ERR_SHARDGRAM_INVALID_ARG, `option` = the key) naming the first bad or unknown one.
 */
export function parseAppOptions<S extends AppOptionSchema>(
  app: string,
  schema: S,
  raw: Readonly<Record<string, string>>,
  how: ParseAppOptionsHow = {},
): AppOptionValues<S> {
  const name = how.name ?? ((k: string) => k);
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(schema, key)) {
      const keys = Object.keys(schema);
      throw new ShardgramError(
        'ERR_SHARDGRAM_INVALID_ARG',
        `unknown ${app} option "${key}"; ${keys.length ? `the options are ${keys.join(', ')}` : `${app} takes no options`}`,
        { option: key },
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    const text = raw[key];
    out[key] = text === undefined ? spec.default : parseNamed(key, name(key), text, (t) => spec.parse(t));
  }
  return out as AppOptionValues<S>;
}

/** `flushInterval` → `flush-interval`. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** A default as the user would write it: a list comma-separated, a switch as its `on|off` (or `yes|no`) word. */
function defaultShown(value: unknown, valueText: string): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.join(',');
  if (typeof value === 'boolean') {
    const words = /^(\w+)\|(\w+)$/.exec(valueText);
    if (words) return value ? words[1] : words[2];
  }
  return String(value);
}

/** Help lines for a schema: flag (or `-o key=`), value, help, default. */
export function appOptionsHelp(schema: AppOptionSchema, indent = '  '): string[] {
  const rows = Object.entries(schema).map(([key, o]) => {
    const left = o.flag ? `    --${o.flag} ${o.value}` : `-o ${key}=${o.value}`;
    const def = o.defaultText ?? defaultShown(o.default, o.value);
    return [left, `${o.help}${def !== undefined ? ` (default ${def})` : ''}`] as const;
  });
  return formatOptionRows(rows, { indent });
}

// ------------------------------------------------------------- value parsers

/** A whole number from `min` to `max` (decimal digits only). */
export function wholeNumber(min: number, max: number, unit = ''): (text: string) => number {
  const what = unit ? `a whole number of ${unit} from ${min} to ${max}` : `a whole number from ${min} to ${max}`;
  return (text) => {
    const t = text.trim();
    if (!/^\d+$/.test(t)) throw new OptionValueError(what);
    const n = Number(t);
    if (n < min || n > max) throw new OptionValueError(`from ${min} to ${max}${unit ? ` ${unit}` : ''}`, String(n));
    return n;
  };
}

/** A size in bytes in the one grammar (`4m`, `4MiB`, `4194304`; see byte-size.ts). */
export function byteSize(range: ByteSizeRange = {}): (text: string) => number {
  return (text) => parseByteSize(text, range);
}

/** Any non-empty text matching `pattern` (described by `what`). */
export function textMatching(pattern: RegExp = /^[\s\S]+$/, what = 'a non-empty text'): (text: string) => string {
  return (t) => {
    if (!pattern.test(t)) throw new OptionValueError(what);
    return t;
  };
}

/**
 * A file to write: made absolute against `cwd` (the supervisor's, which workers
 * share); its directory must exist, so a typo fails at start, not at the first write.
 */
export function outputFile(cwd: string = process.cwd()): (text: string) => string {
  return (t) => {
    const s = t.trim();
    if (s === '') throw new OptionValueError('a file path');
    const path = isAbsolute(s) ? s : resolve(cwd, s);
    const dir = dirname(path);
    if (!existsSync(dir)) throw new OptionValueError('a file in an existing directory', `${JSON.stringify(t)} (directory ${dir} does not exist)`);
    if (!statSync(dir).isDirectory()) throw new OptionValueError('a file in an existing directory', `${JSON.stringify(t)} (${dir} is not a directory)`);
    return path;
  };
}

export { formatByteSize };
