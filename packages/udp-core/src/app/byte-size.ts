/**
 * The one grammar for sizes in bytes, wherever a size is taken (`--rcvbuf`, an app's
 * file size limit, …): a whole number, optionally followed by a binary multiple.
 *
 *   4194304   4096k   4096K   4096KiB   4m   4M   4MiB   4mb   1g   1GiB   512b
 *
 * Every unit is a power of 1024 (k = KiB = 1024, m = MiB = 1024², g, t), whatever its
 * case or spelling: `4MB` means 4 MiB, as `-Xmx4m` does. No fractions, no signs.
 */
import { OptionValueError } from './option-error.js';

const UNITS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 } as const;
const GRAMMAR = /^(\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/i;

/** What a size must look like, for error messages. */
export const BYTE_SIZE_EXPECTED = 'a number of bytes such as 4194304, 4096k, 4m or 4MiB';

export interface ByteSizeRange {
  /** Smallest size accepted (default 0). */
  min?: number;
  /** Largest size accepted (default 2^53 - 1). */
  max?: number;
}

/**
 * Parses a size; throws an `OptionValueError` (what was expected) on a malformed or
 * out-of-range one, for the caller to name the option.
 */
export function parseByteSize(text: string, range: ByteSizeRange = {}): number {
  const m = GRAMMAR.exec(text.trim());
  if (!m) throw new OptionValueError(BYTE_SIZE_EXPECTED);
  const unit = (m[2] ?? '').toLowerCase() as keyof typeof UNITS;
  const n = Number(m[1]) * UNITS[unit];
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new OptionValueError(`from ${formatByteSize(min)} to ${formatByteSize(max)}`, JSON.stringify(text));
  }
  return n;
}

/** A size in the shortest exact form of the grammar: `4m`, `1536k`, `100`. */
export function formatByteSize(n: number): string {
  if (n === Number.MAX_SAFE_INTEGER) return '2^53-1 bytes';
  for (const [unit, mult] of [
    ['t', UNITS.t],
    ['g', UNITS.g],
    ['m', UNITS.m],
    ['k', UNITS.k],
  ] as const) {
    if (n >= mult && n % mult === 0) return `${n / mult}${unit}`;
  }
  return n === 1 ? '1 byte' : `${n}`;
}
