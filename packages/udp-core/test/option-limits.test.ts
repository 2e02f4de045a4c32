/**
 * The options LIMITS bounds are checked once, by checkLimit, for the API and for
 * `shardgram serve`'s flags: a `new Supervisor` given a value out of range is refused
 * as the flag with the same value is, with the same range in the message.
 */
import { describe, expect, it } from 'vitest';
import { rejectedWith, thrownBy } from '@shardgram/test-kit/throws';
import { ShardgramError, Supervisor, startStatsServer, type StatsSource } from '@shardgram/udp-core';
import { UsageError, limitOption } from '../src/cli/args.js';
import { LIMITS, LOAD_LIMITS } from '../src/defaults.js';
import { NativeSender, runLoad } from '@shardgram/udp-core/load';

const refusal = (fn: () => unknown): ShardgramError => thrownBy(ShardgramError, fn);

const usageError = (fn: () => unknown): string => thrownBy(UsageError, fn).message;

const base = { app: 'discard', port: 0, workers: 1 };

describe('the API refuses what LIMITS does not allow', () => {
  const cases = [
    ['drainTimeoutMs', 4e6, 'drain-timeout', '4000000', 'from 0 to 3600000'],
    ['stallTimeoutMs', 4e6, 'stall-timeout', '4000000', 'from 0 to 3600000'],
    ['rcvbuf', 2 ** 31, 'rcvbuf', '2g', 'from 1 byte to 1g'],
    ['changeRcvbuf', 2 ** 31, 'change-rcvbuf', '2g', 'from 0 to 1g'],
  ] as const;
  for (const [key, value, flag, text, range] of cases) {
    it(`${key}: ${value} is ERR_SHARDGRAM_INVALID_ARG naming the option and its range, as --${flag} ${text} is`, () => {
      const e = refusal(() => new Supervisor({ ...base, [key]: value }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.option).toBe(key);
      expect(e.message).toBe(`${key} must be ${range}; got ${value}`);
      const cli = usageError(() => limitOption({ [flag]: text }, flag, key, 'usage'));
      expect(cli).toBe(`--${flag} must be ${range}; got ${/^\d+$/.test(text) ? text : JSON.stringify(text)}`);
    });
  }

  it('takes the ends of each range, and refuses what is not a whole number', () => {
    for (const key of ['drainTimeoutMs', 'stallTimeoutMs', 'rcvbuf', 'changeRcvbuf'] as const) {
      expect(() => new Supervisor({ ...base, [key]: LIMITS[key].max })).not.toThrow();
      const e = refusal(() => new Supervisor({ ...base, [key]: 1.5 }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.message).toMatch(new RegExp(`^${key} must be a whole number`));
      expect(refusal(() => new Supervisor({ ...base, [key]: LIMITS[key].min - 1 })).code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    }
    expect(() => new Supervisor({ ...base, stallTimeoutMs: 0, drainTimeoutMs: 0, changeRcvbuf: 0 })).not.toThrow();
  });
});

describe("the `imbalance` option's fields: LIMITS' ranges, through the same checkLimit", () => {
  const cases = [
    ['windowMs', -1, 'imbalanceWindowMs', 'from 1000 to 3600000; got -1'],
    ['minDatagrams', 'x', 'imbalanceMinDatagrams', 'a whole number from 1 to 1000000000; got "x"'],
    ['sustainMs', Number.NaN, 'imbalanceSustainMs', 'a whole number from 0 to 3600000; got NaN'],
    ['windowMs', 999, 'imbalanceWindowMs', 'from 1000 to 3600000; got 999'],
  ] as const;
  for (const [field, value, key, tail] of cases) {
    it(`imbalance.${field}: ${String(value)} is ERR_SHARDGRAM_INVALID_ARG naming imbalance.${field}, before anything starts`, () => {
      const e = refusal(() => new Supervisor({ ...base, imbalance: { [field]: value } as never }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.option).toBe(`imbalance.${field}`);
      expect(e.message).toBe(`imbalance.${field} must be ${tail}`);
      expect(LIMITS[key]).toBeDefined();
    });
  }

  it('refuses an imbalance that is not an object, and takes the ends of each range and the defaults', () => {
    expect(refusal(() => new Supervisor({ ...base, imbalance: 5 as never })).option).toBe('imbalance');
    const ends = { windowMs: LIMITS.imbalanceWindowMs.min, minDatagrams: LIMITS.imbalanceMinDatagrams.max, sustainMs: LIMITS.imbalanceSustainMs.min };
    expect(() => new Supervisor({ ...base, imbalance: ends })).not.toThrow();
    expect(() => new Supervisor({ ...base, imbalance: {} })).not.toThrow();
  });
});

describe('the stats server and the CLI commands take a port in the same range', () => {
  it('startStatsServer refuses a port above LIMITS.port.max before it listens', async () => {
    const unread = {} as StatsSource; // refused before the source is read
    const e = await rejectedWith(ShardgramError, startStatsServer(unread, LIMITS.port.max + 1));
    expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(e.message).toBe(`--stats-port must be from 0 to ${LIMITS.port.max}; got ${LIMITS.port.max + 1}`);
  });
});

describe("the load tool's options: runLoad refuses what LOAD_LIMITS does not allow, as `shardgram load` does", () => {
  const cases = [
    ['size', 23, LOAD_LIMITS.size],
    ['replyTimeoutMs', LOAD_LIMITS.replyTimeoutMs.max + 1, LOAD_LIMITS.replyTimeoutMs],
    ['maxDurationMs', LOAD_LIMITS.maxDurationMs.min - 1, LOAD_LIMITS.maxDurationMs],
  ] as const;
  for (const [key, value, range] of cases) {
    it(`${key}: ${value} is ERR_SHARDGRAM_INVALID_ARG with the range ${range.min} to ${range.max}, before anything is sent`, async () => {
      const e = await rejectedWith(ShardgramError, runLoad({ port: 9, [key]: value }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.message).toContain(`an integer from ${range.min} to ${range.max}`);
    });
  }

  it('NativeSender.sendProbes takes the same size range as runLoad: a probe smaller than its header is refused, not sent larger', async () => {
    const sender = new NativeSender({ address: '127.0.0.1', port: 9, sources: 1 });
    try {
      const e = await rejectedWith(ShardgramError, sender.sendProbes({ count: 1, size: LOAD_LIMITS.size.min - 1 }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.message).toBe(`size must be an integer from ${LOAD_LIMITS.size.min} to ${LOAD_LIMITS.size.max}; got ${LOAD_LIMITS.size.min - 1}`);
    } finally {
      sender.close();
    }
  });
});
