/**
 * The app's options, from `--app-option key=value` (strings): where to write and
 * when to rotate.
 */
import { isAbsolute, resolve } from 'node:path';
import { ShardgramError } from '@shardgram/udp-core';

export interface SyslogOptions {
  /** Absolute path of the output file, or null for standard output (through the supervisor). */
  out: string | null;
  /** Rotate when the file reaches this many bytes; 0: never. */
  maxBytes: number;
  /** Rotated files kept (`out.1` … `out.keep`). */
  keep: number;
}

export const OPTION_NAMES = ['out', 'maxBytes', 'keep'] as const;
export const DEFAULT_KEEP = 5;

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function bad(key: string, value: string, expected: string): ShardgramError {
  return new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `syslog: --app-option ${key} must be ${expected}; got "${value}"`, { option: key });
}

/** `1048576`, `64k`, `10m`, `1g` (also `10M`, `10MiB`, `10mb`): bytes, powers of 1024. */
export function parseBytes(key: string, value: string): number {
  const m = /^(\d+)\s*([kmg]?)(?:i?b)?$/i.exec(value.trim());
  if (!m) throw bad(key, value, 'a number of bytes, e.g. 10m, 64k or 1048576');
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(n)) throw bad(key, value, 'a number of bytes below 2^53');
  return n;
}

/** Reads and checks the options; relative paths are against the working directory (the supervisor's, which workers share). */
export function parseSyslogOptions(options: Readonly<Record<string, string>>, cwd: string = process.cwd()): SyslogOptions {
  for (const key of Object.keys(options)) {
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `syslog: unknown --app-option "${key}"; the options are ${OPTION_NAMES.join(', ')}`, { option: key });
    }
  }
  const rawOut = options.out?.trim();
  const out = rawOut === undefined || rawOut === '' || rawOut === '-' ? null : isAbsolute(rawOut) ? rawOut : resolve(cwd, rawOut);
  const maxBytes = options.maxBytes === undefined ? 0 : parseBytes('maxBytes', options.maxBytes);
  let keep = DEFAULT_KEEP;
  if (options.keep !== undefined) {
    if (!/^\d+$/.test(options.keep.trim())) throw bad('keep', options.keep, 'a whole number from 1 to 1000');
    keep = Number(options.keep.trim());
    if (keep < 1 || keep > 1000) throw bad('keep', options.keep, 'a whole number from 1 to 1000');
  }
  if (out === null && options.maxBytes !== undefined && maxBytes > 0) {
    throw bad('maxBytes', options.maxBytes, 'used with out=FILE (standard output is not rotated)');
  }
  return { out, maxBytes, keep };
}
