/**
 * The Prometheus writer refuses a bad metric or label name as every bad argument is
 * refused: a ShardgramError with ERR_SHARDGRAM_INVALID_ARG, naming what was wrong and
 * what a valid one looks like (not a plain Error without a code).
 */
import { describe, expect, it } from 'vitest';
import { thrownBy } from '@shardgram/test-kit/throws';
import { ShardgramError } from '@shardgram/udp-core';
import { PromWriter } from '@shardgram/udp-core/prom';

const refusal = (fn: () => unknown): ShardgramError => thrownBy(ShardgramError, fn);

describe('PromWriter', () => {
  it('refuses a bad metric name with ERR_SHARDGRAM_INVALID_ARG, naming it', () => {
    const e = refusal(() => new PromWriter().family('9 lives', 'gauge', 'x'));
    expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(e.option).toBe('metric name');
    expect(e.message).toMatch(/^metric name must be a Prometheus metric name .*; got "9 lives"$/);
    expect(refusal(() => new PromWriter().sample('a-b', {}, 1)).code).toBe('ERR_SHARDGRAM_INVALID_ARG');
  });

  it('refuses a bad label name with ERR_SHARDGRAM_INVALID_ARG, naming it', () => {
    const w = new PromWriter().family('ok_total', 'counter', 'x');
    const e = refusal(() => w.sample('ok_total', { 'bad-label': 'v' }, 1));
    expect(e.code).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(e.option).toBe('label name');
    expect(e.message).toMatch(/^label name must be a Prometheus label name .*; got "bad-label"$/);
    expect(w.sample('ok_total', { good_label: 'v' }, 1).text()).toContain('ok_total{good_label="v"} 1');
  });
});
