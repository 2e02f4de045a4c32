/**
 * The name-embedded tag styles as options: each of influxdbTags, libratoTags and
 * signalfxTags reads on/off (and the usual spellings), reaches the parser, and a value
 * that is neither is refused with a stable code naming the option.
 */
import { describe, expect, it } from 'vitest';
import { parseStatsdOptions } from '../../src/statsd/options.js';
import { parseLine } from '../../src/statsd/parser.js';

describe('tag style options', () => {
  it('on by default; each switched off alone', () => {
    expect(parseStatsdOptions({}).tagStyles).toEqual({ influxdbTags: true, libratoTags: true, signalfxTags: true });
    expect(parseStatsdOptions({ influxdbTags: 'off' }).tagStyles).toEqual({ influxdbTags: false, libratoTags: true, signalfxTags: true });
    expect(parseStatsdOptions({ libratoTags: 'false' }).tagStyles).toEqual({ influxdbTags: true, libratoTags: false, signalfxTags: true });
    expect(parseStatsdOptions({ signalfxTags: 'no', influxdbTags: 'ON' }).tagStyles).toEqual({ influxdbTags: true, libratoTags: true, signalfxTags: false });
  });

  it('what the options give is what the parser reads', () => {
    const styles = parseStatsdOptions({ influxdbTags: 'off' }).tagStyles;
    expect(parseLine('a,k=v:1|c', styles)).toMatchObject({ ok: true, key: 'a,k%3Dv' });
    expect(parseLine('a#k=v:1|c', styles)).toMatchObject({ ok: true, key: 'a;k=v' });
  });

  it.each(['influxdbTags', 'libratoTags', 'signalfxTags'])('%s: a value that is not on or off is refused', (name) => {
    let err: unknown;
    try {
      parseStatsdOptions({ [name]: 'maybe' });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'ERR_SHARDGRAM_INVALID_ARG' });
    expect(String((err as Error).message)).toMatch(new RegExp(`${name}.*on or off`));
  });
});
