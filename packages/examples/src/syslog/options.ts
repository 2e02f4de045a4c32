/**
 * The app's options, declared as a schema (`serve syslog` builds its flags, help and
 * checks from it; `--app-option key=value` sets any of them): where to write and when
 * to rotate.
 */
import { ShardgramError } from '@shardgram/udp-core';
import { byteSize, defineAppOptions, outputFile, parseAppOptions, wholeNumber } from '@shardgram/udp-core/app-options';

export interface SyslogOptions {
  /** Absolute path of the output file, or null for standard output (through the supervisor). */
  out: string | null;
  /** Rotate when the file reaches this many bytes; 0: never. */
  maxBytes: number;
  /** Rotated files kept (`out.1` … `out.keep`). */
  keep: number;
}

export const DEFAULT_KEEP = 5;

/** The schema; relative paths are against `cwd` (the supervisor's, which workers share). */
export function syslogOptionSchema(cwd?: string) {
  const file = outputFile(cwd);
  return defineAppOptions({
    out: {
      flag: 'out',
      value: 'FILE',
      help: 'append JSON records to FILE ("-": standard output)',
      parse: (t: string): string | null => (t.trim() === '' || t.trim() === '-' ? null : file(t)),
      default: null,
      defaultText: 'standard output',
    },
    maxBytes: { flag: 'max-bytes', value: 'SIZE', help: 'rotate FILE when it reaches SIZE, e.g. 100m', parse: byteSize(), default: 0, defaultText: 'never' },
    keep: { flag: 'keep', value: 'N', help: 'rotated files kept', parse: wholeNumber(1, 1000), default: DEFAULT_KEEP },
  });
}

export const syslogOptions = syslogOptionSchema();

/** Reads and checks the options. */
export function parseSyslogOptions(options: Readonly<Record<string, string>>, cwd?: string): SyslogOptions {
  const o = parseAppOptions('syslog', cwd === undefined ? syslogOptions : syslogOptionSchema(cwd), options);
  if (o.out === null && o.maxBytes > 0) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `maxBytes must be used with out=FILE (standard output is not rotated); got ${JSON.stringify(options.maxBytes)}`,
      { option: 'maxBytes' },
    );
  }
  return { out: o.out, maxBytes: o.maxBytes, keep: o.keep };
}
