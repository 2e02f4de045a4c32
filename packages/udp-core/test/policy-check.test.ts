/**
 * The steering policy is checked once, by checkPolicy, for the Supervisor's `policy`
 * option and for `shardgram serve`'s --policy, --key-delimiter and --key-max-length:
 * what the command refuses, `new Supervisor` refuses too, before anything starts, with
 * the same message but for the option's name as each spells it; and a `key` policy
 * given without its options gets their defaults instead of failing at start().
 */
import { describe, expect, it } from 'vitest';
import { thrownBy } from '@shardgram/test-kit/throws';
import { runCli } from '@shardgram/test-kit/cli';
import { ShardgramError, Supervisor } from '@shardgram/udp-core';
import { DEFAULTS } from '../src/defaults.js';

const base = { app: 'echo', port: 0, workers: 2, log: () => {} };

/** The CLI's one-line refusal of `serve echo` with `flags` (exit 2, before anything starts). */
async function cliRefusal(flags: string[]): Promise<string> {
  const r = await runCli(['serve', 'echo', '--port', '0', ...flags], { timeoutMs: 20_000 });
  expect(r.code, r.stderr).toBe(2);
  return r.stderr.split('\n')[0]!.replace(/^shardgram: /, '');
}

describe('a bad policy: refused by the API as by the CLI, with the same message', () => {
  const cases: [what: string, policy: unknown, flags: string[], option: string, flag: string, tail: string][] = [
    ['an unknown name', { name: 'bogus' }, ['--policy', 'bogus'], 'policy.name', '--policy', 'must be one of hash, random, cpu, key; got "bogus"'],
    [
      'a key length past the limit',
      { name: 'key', delimiter: 58, maxLength: 300 },
      ['--policy', 'key', '--key-max-length', '300'],
      'policy.maxLength',
      '--key-max-length',
      'must be an integer from 1 to 256; got 300',
    ],
    [
      'a delimiter of two bytes',
      { name: 'key', delimiter: '::' },
      ['--policy', 'key', '--key-delimiter', '::'],
      'policy.delimiter',
      '--key-delimiter',
      'must be one byte: a single ASCII character such as ":", or a number 0–255 (e.g. 10 or 0x0a); got "::"',
    ],
  ];
  for (const [what, policy, flags, option, flag, tail] of cases) {
    it(`${what}: ERR_SHARDGRAM_INVALID_ARG naming ${option}, as ${flags.join(' ')} is refused naming ${flag}`, async () => {
      const e = thrownBy(ShardgramError, () => new Supervisor({ ...base, policy: policy as never }));
      expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
      expect(e.option).toBe(option);
      expect(e.message).toBe(`${option} ${tail}`);
      expect(await cliRefusal(flags)).toBe(`${flag} ${tail}`);
    });
  }

  it('key options beside another policy: refused by both', async () => {
    const e = thrownBy(ShardgramError, () => new Supervisor({ ...base, policy: { name: 'hash', maxLength: 8 } as never }));
    expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(e.message).toBe('policy.delimiter and policy.maxLength go with policy.name key');
    expect(await cliRefusal(['--policy', 'hash', '--key-max-length', '8'])).toBe('--key-delimiter and --key-max-length go with --policy key');
  });

  it('a policy that is not an object is refused', () => {
    const e = thrownBy(ShardgramError, () => new Supervisor({ ...base, policy: 'random' as never }));
    expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(e.option).toBe('policy');
  });
});

describe('a key policy without its options', () => {
  it('gets the defaults, as --policy key does, and starts (not a TypeError at start())', async () => {
    const sup = new Supervisor({ ...base, policy: { name: 'key' } as never });
    try {
      await sup.start();
      expect(sup.policy).toEqual({ name: 'key', delimiter: DEFAULTS.keyDelimiter.charCodeAt(0), maxLength: DEFAULTS.keyMaxLength });
    } finally {
      await sup.stop();
    }
  });
});
