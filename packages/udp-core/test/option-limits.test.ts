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
import { runLoad } from '@shardgram/udp-core/load';

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
});
