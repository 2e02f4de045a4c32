/**
 * The pieces of the apps' contract that need no process: the byte-size grammar, the
 * option schema and its one error style, the sampled log, and an output that closes.
 */
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { guardOutput, sampledLog, ShardgramError } from '@shardgram/udp-core';
import {
  byteSize,
  defineAppOptions,
  formatByteSize,
  OptionValueError,
  outputFile,
  parseAppOptions,
  parseByteSize,
  wholeNumber,
} from '@shardgram/udp-core/app-options';

describe('parseByteSize: one grammar, binary multiples', () => {
  it.each([
    ['4194304', 4 * 1024 ** 2],
    ['4096k', 4 * 1024 ** 2],
    ['4096K', 4 * 1024 ** 2],
    ['4096KiB', 4 * 1024 ** 2],
    ['4096kb', 4 * 1024 ** 2],
    ['4m', 4 * 1024 ** 2],
    ['4M', 4 * 1024 ** 2],
    ['4MiB', 4 * 1024 ** 2],
    ['4MB', 4 * 1024 ** 2],
    ['4KiB', 4096],
    ['1g', 1024 ** 3],
    ['1GiB', 1024 ** 3],
    ['2t', 2 * 1024 ** 4],
    ['512b', 512],
    [' 10 m ', 10 * 1024 ** 2],
    ['0', 0],
  ])('%j is %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  it.each(['', 'lots', '4x', '-4m', '1.5m', '4mib2', 'm', '0x10', '4 MiBs'])('refuses %j, saying what a size looks like', (text) => {
    expect(() => parseByteSize(text)).toThrow(OptionValueError);
    expect(() => parseByteSize(text)).toThrow(/must be a number of bytes such as 4194304, 4096k, 4m or 4MiB/);
  });

  it('checks a range and names it in the same grammar', () => {
    expect(() => parseByteSize('2g', { min: 1, max: 2 ** 30 })).toThrow(expect.objectContaining({ expected: 'from 1 byte to 1g', shown: '"2g"' }));
    expect(parseByteSize('1g', { min: 1, max: 2 ** 30 })).toBe(2 ** 30);
  });

  it('formats sizes back in the shortest exact form', () => {
    expect([4 * 1024 ** 2, 1536 * 1024, 100, 1, 2 ** 30].map(formatByteSize)).toEqual(['4m', '1536k', '100', '1 byte', '1g']);
    for (const n of [1, 1023, 1024, 65536, 3 * 1024 ** 3, 5 * 1024 ** 4 + 1024]) expect(parseByteSize(formatByteSize(n).replace(' byte', ''))).toBe(n);
  });
});

describe('parseAppOptions: a schema checks raw options with one error style', () => {
  const schema = defineAppOptions({
    every: { flag: 'every', value: 'MS', help: 'period', parse: wholeNumber(10, 1000, 'milliseconds'), default: 100 },
    limit: { flag: 'limit', value: 'SIZE', help: 'cap', parse: byteSize({ min: 1 }), default: 1024 },
    note: { value: 'TEXT', help: 'free text', parse: (t: string) => t, default: undefined },
  });

  it('fills defaults and parses what is given', () => {
    expect(parseAppOptions('demo', schema, {})).toEqual({ every: 100, limit: 1024, note: undefined });
    expect(parseAppOptions('demo', schema, { every: '20', limit: '4KiB', note: 'hi' })).toEqual({ every: 20, limit: 4096, note: 'hi' });
  });

  it('names the bad option, by key through the API and as the caller names it on a command line', () => {
    const err = (() => {
      try {
        parseAppOptions('demo', schema, { every: 'soon' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ShardgramError);
    expect(err).toMatchObject({
      code: 'ERR_SHARDGRAM_INVALID_ARG',
      option: 'every',
      message: 'every must be a whole number of milliseconds from 10 to 1000; got "soon"',
    });
    expect(() => parseAppOptions('demo', schema, { every: '5' }, { name: (k) => `--${k}` })).toThrow(/^--every must be from 10 to 1000 milliseconds; got 5$/);
    expect(() => parseAppOptions('demo', schema, { limit: '0' })).toThrow(/^limit must be from 1 byte to /);
    expect(() => parseAppOptions('demo', schema, { evrey: '5' })).toThrow(/^unknown demo option "evrey"; the options are every, limit, note$/);
  });

  it('an output file must be in a directory that exists', () => {
    const here = fileURLToPath(new URL('.', import.meta.url)); // a directory that exists; nothing is written
    expect(outputFile(here)('x.jsonl')).toBe(join(here, 'x.jsonl'));
    expect(() => outputFile()('/no/such/dir/x.jsonl')).toThrow(
      expect.objectContaining({ expected: 'a file in an existing directory', shown: '"/no/such/dir/x.jsonl" (directory /no/such/dir does not exist)' }),
    );
  });
});

describe('sampledLog: the first few with detail, then one line per N with the count', () => {
  it('logs #1..#first in full, then every Nth with what was skipped, and calls detail only when it logs', () => {
    const lines: string[] = [];
    const log = sampledLog((l) => lines.push(l), 'bad line', { first: 3, every: 10, keepLines: true });
    let built = 0;
    for (let i = 1; i <= 35; i++) {
      log.note(() => {
        built++;
        return `line ${i}\n  at somewhere`;
      });
    }
    expect(log.count).toBe(35);
    expect(lines).toEqual([
      'bad line #1: line 1\n  at somewhere',
      'bad line #2: line 2\n  at somewhere',
      'bad line #3: line 3\n  at somewhere (further ones: one line per 10, with the count)',
      'bad line #10 (6 not logged since #3): line 10',
      'bad line #20 (9 not logged since #10): line 20',
      'bad line #30 (9 not logged since #20): line 30',
    ]);
    expect(built).toBe(lines.length);
  });
});

describe('guardOutput: a closed output stops, is counted, and does not throw', () => {
  it('after EPIPE, one log line; the failed write and every later one are counted as unwritten', async () => {
    const lines: string[] = [];
    let writes = 0;
    const sink = new Writable({
      write(_chunk, _enc, cb) {
        writes++;
        if (writes === 1) cb();
        else cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const out = guardOutput(sink, 'standard output', (l) => lines.push(l), 'records are only counted');
    out.write('a\nb\n', 2);
    out.write('c\n', 1); // this one fails
    await new Promise((r) => sink.once('error', r));
    out.write('d\ne\nf\n', 3);
    expect(out.closed).toBe(true);
    expect(out.unwritten).toBe(4);
    expect(writes).toBe(2);
    expect(lines).toEqual(['standard output is closed (EPIPE): no longer writing to it; records are only counted']);
  });

  it('passes everything through while the stream is open', async () => {
    const sink = new PassThrough();
    const out = guardOutput(sink, 'x', () => {}, '');
    out.write('hello\n');
    expect(String(sink.read())).toBe('hello\n');
    expect(out.unwritten).toBe(0);
  });
});
