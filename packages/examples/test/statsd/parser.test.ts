/**
 * The StatsD line parser: the protocol by example, then property tests (fast-check)
 * on random bytes and near-valid lines: it never throws, every bad line is counted,
 * and the valid lines of the same datagram are still parsed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDatagram, type MetricSink } from '@shardgram/examples';
import { etsyKey, metricKey, splitKey } from '../../src/statsd/keys.js';
import { parseLine, parseSimpleDatagram } from '../../src/statsd/parser.js';

type Ev = [string, ...unknown[]];

/** A sink that records every call. */
function recorder(): MetricSink & { events: Ev[]; badLines: string[] } {
  const events: Ev[] = [];
  const badLines: string[] = [];
  return {
    events,
    badLines,
    counter: (k, v, r) => void events.push(['c', k, v, r]),
    gauge: (k, v, rel) => void events.push(['g', k, v, rel]),
    timer: (k, v, r) => void events.push(['t', k, v, r]),
    set: (k, m) => void events.push(['s', k, m]),
    bad: (line) => void badLines.push(line),
    event: (e) => void events.push(['e', e]),
    serviceCheck: (c) => void events.push(['sc', c]),
    ignoredFields: (n) => void events.push(['ignored', n]),
  };
}

/** Each line alone: exactly one of "parsed (≥ 1 call)" and "counted bad". */
function eachLineParsedOrBad(text: string): void {
  for (const line of text.split('\n').filter((l) => l.length > 0)) {
    const r = recorder();
    expect(parseDatagram(line, r)).toBe(1);
    const parsed = r.events.filter((e) => e[0] !== 'ignored').length;
    expect(r.badLines.length === 1 ? parsed === 0 : parsed >= 1 && r.badLines.length === 0, line).toBe(true);
  }
}

describe('the line protocol', () => {
  it('counters, with and without a sample rate', () => {
    expect(parseLine('gorets:1|c')).toEqual({ ok: true, type: 'c', key: 'gorets', value: 1, sampleRate: 1 });
    expect(parseLine('gorets:3|c|@0.1')).toEqual({ ok: true, type: 'c', key: 'gorets', value: 3, sampleRate: 0.1 });
    expect(parseLine('neg:-2.5|c')).toMatchObject({ ok: true, value: -2.5 });
  });

  it('gauges: absolute, and +/- deltas', () => {
    expect(parseLine('g:333|g')).toEqual({ ok: true, type: 'g', key: 'g', value: 333, relative: false });
    expect(parseLine('g:-10|g')).toEqual({ ok: true, type: 'g', key: 'g', value: -10, relative: true });
    expect(parseLine('g:+4|g')).toEqual({ ok: true, type: 'g', key: 'g', value: 4, relative: true });
  });

  it('timers and histograms (ms, h, d), sampled', () => {
    expect(parseLine('glork:320|ms|@0.5')).toEqual({ ok: true, type: 'ms', key: 'glork', value: 320, sampleRate: 0.5 });
    expect(parseLine('h:1.25|h')).toMatchObject({ ok: true, type: 'h', value: 1.25 });
    expect(parseLine('d:7|d')).toMatchObject({ ok: true, type: 'd', value: 7 });
  });

  it('sets keep the member verbatim; an empty member is "0" (as Etsy)', () => {
    expect(parseLine('uniques:765|s')).toEqual({ ok: true, type: 's', key: 'uniques', member: '765' });
    expect(parseLine('u:a:b|s')).toEqual({ ok: true, type: 's', key: 'u', member: 'a:b' });
    expect(parseLine('u:|s')).toEqual({ ok: true, type: 's', key: 'u', member: '0' });
  });

  it('DogStatsD tags: sorted into the key, raw values after "="; extension fields ignored; the Etsy key sanitized', () => {
    expect(parseLine('api.hits:1|c|#route:/a,env:prod')).toMatchObject({ key: 'api.hits;env=prod;route=/a' });
    expect(etsyKey('api.hits;env=prod;route=/a')).toBe('api.hits;env=prod;route=-a');
    expect(parseLine('api.hits:1|c|@0.5|#env:prod,env:prod,canary')).toMatchObject({ key: 'api.hits;canary;env=prod', sampleRate: 0.5 });
    expect(parseLine('x:1|c|#url:http://h:8/p')).toMatchObject({ key: 'x;url=http://h:8/p' });
    expect(etsyKey('x;url=http://h:8/p')).toBe('x;url=http--h8-p');
    expect(parseLine('x:1|c|#a:1|T1700000000|c:abc123')).toMatchObject({ ok: true, key: 'x;a=1' });
    // Graphite-style tags in the name are the same thing.
    expect(parseLine('x;b=2;a=1:1|c')).toMatchObject({ key: 'x;a=1;b=2' });
    expect(splitKey('x;a=1;flag')).toEqual({
      name: 'x',
      tags: [
        ['a', '1'],
        ['flag', undefined],
      ],
    });
    // The key's own separators inside a name, tag key or value are escaped, and split back exactly.
    const k = metricKey('n%=x', 'a;b:c=d%3B,e=:f');
    expect(k).toBe('n%25%3Dx;a%3Bb=c%3Dd%253B;e%3D=f');
    expect(splitKey(k)).toEqual({
      name: 'n%=x',
      tags: [
        ['a;b', 'c=d%3B'],
        ['e=', 'f'],
      ],
    });
    expect(etsyKey(k)).toBe('n=x;a_b=c=d3B;e==f');
  });

  it('keeps raw names in the key; the Etsy key sanitizes them as Etsy statsd does', () => {
    expect(metricKey('my metric/name!')).toBe('my metric/name!');
    expect(etsyKey('my metric/name!')).toBe('my_metric-name');
    expect(parseLine('(!):1|c')).toMatchObject({ ok: false, code: 'name' });
    expect(metricKey('ok.name-1_x')).toBe('ok.name-1_x');
    expect(parseLine('a.b:1|c\r')).toMatchObject({ ok: true, key: 'a.b' });
  });

  it.each([
    ['nocolon', 'no ":"', 'syntax'],
    ['x:1', 'no "|type"', 'syntax'],
    ['x:abc|c', 'not a number', 'value'],
    ['x:|c', 'not a number', 'value'],
    ['x:0x10|c', 'not a number', 'value'],
    ['x:Infinity|g', 'not a number', 'value'],
    ['x:-1|ms', '≥ 0', 'value'],
    ['x:1|zz', 'unknown type', 'type'],
    ['x:1|c|@0', 'sample rate', 'rate'],
    ['x:1|c|@abc', 'sample rate', 'rate'],
    ['x:1|c|@0.5|@0.5', 'two sample rates', 'rate'],
    ['x:1e300|c|@1e-300', 'out of range', 'value'],
    ['x:1|c|TABCD', 'timestamp', 'timestamp'],
    ['x:1|c|T', 'timestamp', 'timestamp'],
    ['x:1|c|T-102348932', 'timestamp', 'timestamp'],
    ['x:1|c|T0', 'timestamp', 'timestamp'],
    ['x:1|g|T1|T2', 'two timestamps', 'timestamp'],
    ['x:1|c|#a|#b', 'two tag fields', 'tags'],
    ['name[a=b][c=d]:1|c', 'brackets twice', 'tags'],
    ['x,a=b:1|c|#c:d', 'two tag styles', 'mixed_tags'],
    ['x,a=b#c=d:1|c', 'mixes two tag styles', 'mixed_tags'],
    ['x::|c', 'no value', 'value'],
    ['x:1|c:2|c', 'unknown', 'type'],
    [':1|c', 'empty name', 'name'],
    ['!!!:1|c', 'empty name', 'name'],
    ['_e{5,4}:title|tex', 'do not fit', 'event'],
    ['_sc|x|7', 'status', 'service_check'],
  ])('rejects %j (%s, code %s)', (line, reason, code) => {
    const p = parseLine(line);
    expect(p).toMatchObject({ ok: false, code });
    if (!p.ok) expect(p.reason).toContain(reason);
  });

  it('a name longer than maxName is a bad line of code name_length', () => {
    expect(parseLine('abcdef:1|c', { maxName: 3 })).toMatchObject({ ok: false, code: 'name_length' });
  });

  it('trailing blanks are dropped from every line but an event, whose text has a length', () => {
    for (const end of [' ', '\t', ' \t ', '\r']) {
      expect(parseLine(`foo:1|c${end}`), JSON.stringify(end)).toMatchObject({ ok: true, type: 'c', key: 'foo' });
      // A name that starts with "_" is still a metric, not an event or a check.
      expect(parseLine(`_foo:1|c${end}`), JSON.stringify(end)).toMatchObject({ ok: true, type: 'c', key: '_foo' });
      expect(parseLine(`_sc|x|0${end}`), JSON.stringify(end)).toMatchObject({ ok: true, type: '_sc', check: { name: 'x', status: 'ok' } });
    }
    // Event: blanks inside the text length are text; blanks after it are dropped, as the agent ignores them.
    expect(parseLine('_e{5,5}:title|text ')).toMatchObject({ ok: true, type: '_e', event: { title: 'title', text: 'text ' } });
    expect(parseLine('_e{5,4}:title|text  \t')).toMatchObject({ ok: true, type: '_e', event: { title: 'title', text: 'text' } });
    expect(parseLine('_e{5,4}:title|text|t:error ')).toMatchObject({ ok: true, type: '_e', event: { alert_type: 'info' }, ignoredFields: 1 });
    expect(parseLine('_e{5,4}:title|texts')).toMatchObject({ ok: false, code: 'event' });
    // Blanks between the text and its fields are skipped too, as the agent skips them.
    expect(parseLine('_e{5,4}:title|text |t:error|#a:b')).toMatchObject({ ok: true, type: '_e', event: { text: 'text', alert_type: 'error', tags: ['a:b'] } });
    expect(parseLine('_e{5,4}:title|text \t|p:low')).toMatchObject({ ok: true, type: '_e', event: { priority: 'low' } });
    expect(parseLine('_e{5,4}:title|text x|t:error')).toMatchObject({ ok: false, code: 'event' });
  });

  it('each name-embedded tag style can be switched off: the name is then left alone', () => {
    expect(parseLine('a,k=v:1|c')).toMatchObject({ key: 'a;k=v' });
    expect(parseLine('a#k=v:1|c')).toMatchObject({ key: 'a;k=v' });
    expect(parseLine('a[k=v]:1|c')).toMatchObject({ key: 'a;k=v' });
    // Off: the text stays in the name (the Etsy key sanitizes it there: "," "#" "[" "]" are dropped).
    expect(parseLine('a,k=v:1|c', { influxdbTags: false })).toMatchObject({ ok: true, key: 'a,k%3Dv' });
    expect(parseLine('a#k=v:1|c', { libratoTags: false })).toMatchObject({ ok: true, key: 'a#k%3Dv' });
    expect(parseLine('a[k=v]:1|c', { signalfxTags: false })).toMatchObject({ ok: true, key: 'a[k%3Dv]' });
    for (const k of ['a,k%3Dv', 'a#k%3Dv', 'a[k%3Dv]']) expect(etsyKey(k)).toBe('ak=v');
    // One style off leaves the others on; with it off, its character is no longer a second style.
    expect(parseLine('a#k=v:1|c', { influxdbTags: false })).toMatchObject({ ok: true, key: 'a;k=v' });
    expect(parseLine('a[k=v]x,y:1|c', { influxdbTags: false })).toMatchObject({ ok: true, key: 'ax,y;k=v' });
    expect(parseLine('a[k=v]x,y:1|c')).toMatchObject({ ok: false, code: 'mixed_tags' });
    // All off: DogStatsD |# tags are the only tags, and a name with "," is not a second style.
    const off = { influxdbTags: false, libratoTags: false, signalfxTags: false };
    expect(parseLine('a,b:1|c|#k:v', off)).toMatchObject({ ok: true, key: 'a,b;k=v' });
    expect(etsyKey('a,b;k=v')).toBe('ab;k=v');
  });

  it('several metrics per datagram; empty lines are skipped, bad ones counted, the rest parsed', () => {
    const r = recorder();
    const lines = parseDatagram('a:1|c\n\nbad line\nb:2|ms\r\nc:+1|g\nd:x|s\n', r);
    expect(lines).toBe(5);
    expect(r.badLines).toEqual(['bad line']);
    expect(r.events).toEqual([
      ['c', 'a', 1, 1],
      ['t', 'b', 2, 1],
      ['g', 'c', 1, true],
      ['s', 'd', 'x'],
    ]);
  });
});

// ---------------------------------------------------------------- properties

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789._-';
const name = fc.string({ unit: fc.constantFrom(...NAME_CHARS.split('')), minLength: 1, maxLength: 12 }).filter((s) => metricKey(s) === s);
const num = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }).map(String),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }).map((d) => d.toFixed(3)),
);
const posNum = fc.oneof(
  fc.integer({ min: 0, max: 1e6 }).map(String),
  fc.double({ min: 0, max: 1e6, noNaN: true }).map((d) => d.toFixed(3)),
);
const rate = fc.constantFrom('', '|@0.1', '|@0.5', '|@1', '|@0.25');
const tags = fc.constantFrom('', '|#env:prod', '|#a:1,b', '|#k:v,k2:v2');

/** A valid line and what it must parse to. */
const validLine = fc.oneof(
  fc.tuple(name, num, rate, tags).map(([n, v, r, t]) => `${n}:${v}|c${r}${t}`),
  fc.tuple(name, num, tags).map(([n, v, t]) => `${n}:${v}|g${t}`),
  fc.tuple(name, posNum, fc.constantFrom('ms', 'h', 'd'), rate, tags).map(([n, v, ty, r, t]) => `${n}:${v}|${ty}${r}${t}`),
  fc.tuple(name, fc.string({ unit: fc.constantFrom(...'abcxyz0123'.split('')), minLength: 1, maxLength: 6 }), tags).map(([n, m, t]) => `${n}:${m}|s${t}`),
);

/** A line one mutation away from valid: likely (not surely) bad. */
const mutated = fc.tuple(validLine, fc.nat(), fc.constantFrom('drop', 'dup', 'insert', 'replace')).map(([line, at, op]) => {
  const i = at % Math.max(1, line.length);
  const junk = '|:@#\r\t xq-+.,;=/\u00e9\u{1F600}';
  const ch = junk[at % junk.length]!;
  switch (op) {
    case 'drop':
      return line.slice(0, i) + line.slice(i + 1);
    case 'dup':
      return line.slice(0, i) + line[i]! + line.slice(i);
    case 'insert':
      return line.slice(0, i) + ch + line.slice(i);
    default:
      return line.slice(0, i) + ch + line.slice(i + 1);
  }
});

/** The key as the parser built it before keys kept raw tag values: Etsy statsd's key (the reference the Etsy key must equal). */
function etsyReference(rawName: string, rawTags?: string): string {
  const sanitize = (x: string): string =>
    x
      .replace(/\s+/g, '_')
      .replace(/\//g, '-')
      .replace(/[^a-zA-Z_\-0-9.;=]/g, '');
  const parts = sanitize(rawName).split(';');
  const n = parts[0] ?? '';
  if (n === '') return '';
  const t = parts.slice(1);
  if (rawTags !== undefined) for (const x of rawTags.split(',')) t.push(sanitize(x.replace(':', '=').replace(/;/g, '_')));
  const clean = [...new Set(t.filter((x) => x !== '' && x !== '='))].sort();
  return clean.length ? `${n};${clean.join(';')}` : n;
}

describe('keys (fast-check)', () => {
  const text = fc.string({ unit: fc.constantFrom(...'aZ9_.-/ \t;=:%,#()!üé'.split('')), maxLength: 14 });
  it('the Etsy key of a key is the Etsy statsd key of the same raw name and tags; a key splits back to its raw parts', () => {
    fc.assert(
      fc.property(text, fc.option(text, { nil: undefined }), (n, t) => {
        const k = metricKey(n, t);
        const ref = etsyReference(n, t);
        expect(k === '').toBe(ref === '');
        if (k !== '') {
          expect(etsyKey(k)).toBe(ref);
          expect(splitKey(k).name).toBe(n.split(';')[0]);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parser properties (fast-check)', () => {
  it('never throws on random bytes, and counts every non-empty line as good or bad', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const text = Buffer.from(bytes).toString();
        const r = recorder();
        const lines = parseDatagram(text, r);
        expect(lines).toBe(text.split('\n').filter((l) => l.length > 0).length);
        eachLineParsedOrBad(text);
      }),
      { numRuns: 3000 },
    );
  });

  it('never throws on near-valid lines; each is either parsed or counted bad, never both', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(validLine, mutated, fc.string({ maxLength: 40 })), { maxLength: 30 }), (lines) => {
        const text = lines.join('\n');
        expect(parseDatagram(text, recorder())).toBe(text.split('\n').filter((l) => l.length > 0).length);
        eachLineParsedOrBad(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('a bad line never poisons the valid lines of the same datagram', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), validLine, mutated), { minLength: 1, maxLength: 25 }), (spec) => {
        // Each position holds a valid line or a junk one; the valid ones must come out
        // exactly as they would alone, and in order.
        const lines = spec.map(([good, v, m]) => (good ? v : m));
        const alone = recorder();
        for (const l of lines) parseDatagram(l, alone);
        const together = recorder();
        parseDatagram(lines.join('\n'), together);
        expect(together.events).toEqual(alone.events);
        expect(together.badLines).toEqual(alone.badLines);
        for (const [good, v] of spec) if (good) expect(parseLine(v).ok).toBe(true);
      }),
      { numRuns: 1500 },
    );
  });

  it('the byte-level fast path agrees with the general parser wherever it takes a datagram', () => {
    const simple = fc
      .tuple(
        name,
        fc.constantFrom('', '-', '+', '--', '1.'),
        fc.oneof(fc.nat().map(String), fc.constant('1234567890123456'), fc.constant('')),
        fc.constantFrom('c', 'ms', 'g', 'h', 's', 'c|@0.5', 'msx'),
      )
      .map(([n, sg, v, t]) => `${n}:${sg}${v}|${t}`);
    fc.assert(
      fc.property(fc.oneof(simple, validLine, mutated), (text) => {
        const fast = recorder();
        const took = parseSimpleDatagram(Buffer.from(text), fast);
        const slow = recorder();
        parseDatagram(text, slow);
        if (took) {
          expect(fast.events).toEqual(slow.events);
          expect(slow.badLines).toEqual([]);
        } else {
          expect(fast.events).toEqual([]);
        }
      }),
      { numRuns: 3000 },
    );
    const r = recorder();
    expect(parseSimpleDatagram(Buffer.from('a.b-c_d:42|c'), r)).toBe(true);
    expect(parseSimpleDatagram(Buffer.from('g:-3|g'), r)).toBe(true);
    expect(parseSimpleDatagram(Buffer.from('t:12|ms'), r)).toBe(true);
    expect(r.events).toEqual([
      ['c', 'a.b-c_d', 42, 1],
      ['g', 'g', -3, true],
      ['t', 't', 12, 1],
    ]);
  });

  it('fast path: a name that is not clean, or a second line, rate or tags, go to the general path; a cached name is reused only for the same bytes', () => {
    const r = recorder();
    // Not clean (sanitized by the general path), even right after a clean name of the same hash slot and length.
    expect(parseSimpleDatagram(Buffer.from('ab:1|c'), r)).toBe(true);
    expect(parseSimpleDatagram(Buffer.from('a/:1|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('a b:1|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('a;env=x:1|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('\u00e9t\u00e9:1|c'), r)).toBe(false);
    // More than one line, a sample rate, tags, a set, a fraction: the general path.
    expect(parseSimpleDatagram(Buffer.from('ab:1|c\nab:2|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('ab:1|c|@0.5'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('ab:1|c|#k:v'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('ab:x|s'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('ab:1.5|ms'), r)).toBe(false);
    // No ":", or nothing before it; a name longer than maxName.
    expect(parseSimpleDatagram(Buffer.from('ab|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from(':1|c'), r)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('abcdef:1|c'), r, 5)).toBe(false);
    expect(parseSimpleDatagram(Buffer.from('abcde:1|c'), r, 5)).toBe(true);
    // The same bytes again (from a reused buffer) give the cached name; other bytes of the same length do not.
    const buf = Buffer.from('xy:2|c');
    expect(parseSimpleDatagram(buf, r)).toBe(true);
    buf.write('xz');
    expect(parseSimpleDatagram(buf, r)).toBe(true);
    expect(r.events).toEqual([
      ['c', 'ab', 1, 1],
      ['c', 'abcde', 1, 1],
      ['c', 'xy', 2, 1],
      ['c', 'xz', 2, 1],
    ]);
    expect(r.badLines).toEqual([]);
    // What the fast path declines, the general path parses (or counts as bad).
    const slow = recorder();
    expect(parseDatagram('a/:1|c\nab:1|c|@0.5\nab|c', slow)).toBe(3);
    expect(slow.events).toEqual([
      ['c', 'a/', 1, 1],
      ['c', 'ab', 1, 0.5],
    ]);
    expect(slow.badLines).toEqual(['ab|c']);
  });

  it('valid lines parse to their own name, value and rate', () => {
    fc.assert(
      fc.property(name, num, fc.constantFrom(0.1, 0.5, 1), (n, v, r) => {
        const p = parseLine(`${n}:${v}|c${r === 1 ? '' : `|@${r}`}`);
        expect(p).toEqual({ ok: true, type: 'c', key: n, value: Number(v), sampleRate: r });
      }),
      { numRuns: 1000 },
    );
  });
});
