/**
 * Property-based tests: whatever arrives, parsing never throws, the record is one JSON
 * line, and the datagram can be given back exactly; valid messages built from random
 * fields parse back to those fields; near-valid ones (one edit away) are kept too.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseSyslog, toRecord, recordLine, FACILITY_NAMES, SEVERITY_NAMES } from '@shardgram/examples';

const AT = { receivedAt: new Date('2025-06-15T10:00:00Z'), worker: 0, workerPid: 1, senderAddress: '::1', senderPort: 514 };
const NOW = new Date(2025, 5, 15, 12, 0, 0);
const RUNS = { numRuns: 3000 } as const;

/** What must hold for any datagram. */
function checkAnyDatagram(bytes: Buffer): void {
  const parsed = parseSyslog(bytes, NOW);
  const record = toRecord(bytes, AT, parsed);
  const line = recordLine(record);
  // The hand-built line is exactly what JSON.stringify writes.
  expect(line).toBe(`${JSON.stringify(record)}\n`);
  expect(line.indexOf('\n')).toBe(line.length - 1);
  expect(JSON.parse(line)).toEqual(record);
  expect(['rfc5424', 'rfc3164', 'unknown']).toContain(record.format);
  if (record.facility !== null) expect(FACILITY_NAMES).toContain(record.facility);
  if (record.severity !== null) expect(SEVERITY_NAMES).toContain(record.severity);
  if (record.error !== null || !parsed.utf8) {
    // Kept exactly.
    expect(record.raw).not.toBeNull();
    expect(Buffer.from(record.raw!, 'base64').equals(bytes)).toBe(true);
    if (record.error !== null) expect(record.message).toBe(bytes.toString('utf8').replace(/[\r\n\0]+$/, ''));
  } else {
    // Valid UTF-8 and parsed: the text is all there is, so no bytes needed.
    expect(record.raw).toBeNull();
  }
}

// --- generators ---------------------------------------------------------------

const printAscii = (min: number, max: number, exclude = ''): fc.Arbitrary<string> =>
  fc.string({
    unit: fc
      .integer({ min: 33, max: 126 })
      .map((c) => String.fromCharCode(c))
      .filter((c) => !exclude.includes(c)),
    minLength: min,
    maxLength: max,
  });
const nilOr = (a: fc.Arbitrary<string>): fc.Arbitrary<string | null> =>
  fc.option(
    a.filter((s) => s !== '-'),
    { nil: null },
  );
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

const timestamp5424 = fc
  .record({
    date: fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }),
    frac: fc.option(fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 6 }), { nil: undefined }),
    offset: fc.option(fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })), { nil: undefined }),
  })
  .map(({ date, frac, offset }) => {
    const d = date;
    const base = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(Math.min(d.getUTCSeconds(), 59))}`;
    return `${base}${frac ? `.${frac}` : ''}${offset ? `${offset[0]}${pad(offset[1])}:${pad(offset[2])}` : 'Z'}`;
  });

/** Any Unicode text, including the characters that must be escaped in a PARAM-VALUE. */
const anyText = fc.string({
  unit: fc.oneof(fc.constantFrom('"', '\\', ']', '[', '=', ' ', 'é', '✓', '\u{1F600}'), fc.string({ unit: 'grapheme', maxLength: 1 })),
  maxLength: 40,
});
const escapeValue = (v: string): string => v.replace(/["\\\]]/g, (c) => `\\${c}`);

const sdElements = fc.uniqueArray(
  fc.record({
    id: printAscii(1, 32, '= ]"'),
    params: fc.array(fc.tuple(printAscii(1, 32, '= ]"'), anyText), { maxLength: 4 }),
  }),
  { selector: (e) => e.id, maxLength: 3 },
);

const rfc5424Message = fc.record({
  pri: fc.integer({ min: 0, max: 191 }),
  timestamp: fc.option(timestamp5424, { nil: null }),
  hostname: nilOr(printAscii(1, 255)),
  appName: nilOr(printAscii(1, 48)),
  procId: nilOr(printAscii(1, 128)),
  msgId: nilOr(printAscii(1, 32)),
  sd: sdElements,
  message: fc.option(
    fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => s.replace(/[\r\n\0]+$/, '')),
    { nil: null },
  ),
  bom: fc.boolean(),
});
type Gen5424 = typeof rfc5424Message extends fc.Arbitrary<infer T> ? T : never;

function build5424(m: Gen5424): string {
  const sd = m.sd.length ? m.sd.map((e) => `[${e.id}${e.params.map(([k, v]) => ` ${k}="${escapeValue(v)}"`).join('')}]`).join('') : '-';
  const head = `<${m.pri}>1 ${m.timestamp ?? '-'} ${m.hostname ?? '-'} ${m.appName ?? '-'} ${m.procId ?? '-'} ${m.msgId ?? '-'} ${sd}`;
  return m.message === null ? head : `${head} ${m.bom ? '\u{FEFF}' : ''}${m.message}`;
}

function expectedSd(m: Gen5424): Record<string, Record<string, string | string[]>> | null {
  if (!m.sd.length) return null;
  const out: Record<string, Record<string, string | string[]>> = {};
  for (const e of m.sd) {
    const params: Record<string, string | string[]> = {};
    for (const [k, v] of e.params) {
      const prev = params[k];
      params[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    out[e.id] = params;
  }
  return out;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const rfc3164Message = fc.record({
  pri: fc.option(fc.integer({ min: 0, max: 191 }), { nil: null }),
  month: fc.integer({ min: 0, max: 11 }),
  day: fc.integer({ min: 1, max: 28 }),
  dayStyle: fc.constantFrom('space', 'zero', 'none'),
  hms: fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 59 })),
  // A four-digit word after the time is the year of the form network gear sends (`Apr 15 21:28:13 2007 host …`,
  // docs/syslog.md): a host named like that cannot be told apart from it, and is read as the year.
  hostname: fc.option(
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$/).filter((h) => !/^\d{4}$/.test(h)),
    { nil: null },
  ),
  // (Not a zone name like UTC: `Jun 1 10:00:00 UTC: x` is Cisco's time zone, not a tag.)
  tag: fc.stringMatching(/^[A-Za-z0-9_./%-]{1,32}$/).filter((t) => !/^[A-Z]{3,5}$/.test(t)),
  pid: fc.option(fc.integer({ min: 1, max: 4_194_304 }).map(String), { nil: null }),
  message: fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => s.replace(/[\r\n\0]+$/, '')),
});

// --- properties ---------------------------------------------------------------

describe('parsing never fails, and malformed input is kept exactly', () => {
  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (a) => checkAnyDatagram(Buffer.from(a))),
      RUNS,
    );
  });

  it('random bytes after a plausible start', () => {
    const starts = fc.constantFrom(
      '<13>',
      '<13>1 ',
      '<13>1 - ',
      '<165>1 2003-10-11T22:14:15.003Z h a p m ',
      '<13>1 - - - - - [',
      '<34>Oct 11 22:14:15 ',
      '<0>',
      '<191>Jan  1 ',
      '<',
      '<13>1 - h a p m [x@1 a="',
    );
    fc.assert(
      fc.property(starts, fc.uint8Array({ maxLength: 200 }), (s, a) => checkAnyDatagram(Buffer.concat([Buffer.from(s), Buffer.from(a)]))),
      RUNS,
    );
  });

  it('random text from the syslog alphabet', () => {
    const alphabet = fc.constantFrom(...'<>0123456789 -[]="\\:TZ.+@abcJanOct\u{FEFF}\n\0é'.split(''), '\u{FEFF}');
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 120 }), (s) => checkAnyDatagram(Buffer.from(s))),
      RUNS,
    );
  });
});

describe('valid messages parse back to their fields', () => {
  it('RFC 5424 from random fields (escapes, NILVALUE, BOM, Unicode)', () => {
    fc.assert(
      fc.property(rfc5424Message, (m) => {
        const r = parseSyslog(Buffer.from(build5424(m)), NOW);
        expect(r.error).toBeNull();
        expect(r).toMatchObject({
          format: 'rfc5424',
          pri: m.pri,
          facility: FACILITY_NAMES[m.pri >> 3],
          severity: SEVERITY_NAMES[m.pri & 7],
          version: 1,
          timestamp: m.timestamp,
          hostname: m.hostname,
          appName: m.appName,
          procId: m.procId,
          msgId: m.msgId,
          message: m.message,
        });
        expect(r.structuredData === null ? null : JSON.parse(JSON.stringify(r.structuredData))).toEqual(expectedSd(m));
        checkAnyDatagram(Buffer.from(build5424(m)));
      }),
      RUNS,
    );
  });

  it('BSD syslog from random fields, with every day padding and with or without PRI, hostname, pid', () => {
    fc.assert(
      fc.property(rfc3164Message, (m) => {
        const dd = m.dayStyle === 'space' ? String(m.day).padStart(2, ' ') : m.dayStyle === 'zero' ? pad(m.day) : String(m.day);
        const time = `${pad(m.hms[0])}:${pad(m.hms[1])}:${pad(m.hms[2])}`;
        const text = `${m.pri === null ? '' : `<${m.pri}>`}${MONTHS[m.month]} ${dd} ${time} ${m.hostname === null ? '' : `${m.hostname} `}${m.tag}${m.pid === null ? '' : `[${m.pid}]`}: ${m.message}`;
        const r = parseSyslog(Buffer.from(text), NOW);
        const pri = m.pri ?? 13;
        expect(r).toMatchObject({
          format: 'rfc3164',
          pri: m.pri,
          facility: FACILITY_NAMES[pri >> 3],
          severity: SEVERITY_NAMES[pri & 7],
          error: null,
          hostname: m.hostname,
          appName: m.tag,
          procId: m.pid,
          message: m.message,
        });
        expect(r.timestamp).toMatch(new RegExp(`^\\d{4}-${pad(m.month + 1)}-${pad(m.day)}T${time}$`));
      }),
      RUNS,
    );
  });
});

describe('near-valid messages (one edit away from valid) are kept', () => {
  const edit = fc.record({
    kind: fc.constantFrom('insert', 'delete', 'replace', 'truncate', 'duplicate'),
    at: fc.nat(),
    ch: fc.constantFrom(' ', '-', '[', ']', '"', '\\', '=', '<', '>', '0', 'T', ':', '\u{FEFF}', '\0', '\n', 'é'),
  });
  function apply(text: string, e: { kind: string; at: number; ch: string }): string {
    const i = text.length ? e.at % text.length : 0;
    switch (e.kind) {
      case 'insert':
        return text.slice(0, i) + e.ch + text.slice(i);
      case 'delete':
        return text.slice(0, i) + text.slice(i + 1);
      case 'replace':
        return text.slice(0, i) + e.ch + text.slice(i + 1);
      case 'truncate':
        return text.slice(0, i);
      default:
        return text.slice(0, i) + text.slice(i, i + 5) + text.slice(i);
    }
  }

  it('RFC 5424 with one edit', () => {
    fc.assert(
      fc.property(rfc5424Message, edit, (m, e) => checkAnyDatagram(Buffer.from(apply(build5424(m), e)))),
      RUNS,
    );
  });

  it('an edit in the header of RFC 5424 gives an error that says where, or a message that still parses', () => {
    fc.assert(
      fc.property(rfc5424Message, edit, (m, e) => {
        const text = build5424(m);
        const headerEnd = text.indexOf(' ', text.indexOf(' ', text.indexOf(' ', text.indexOf(' ', text.indexOf(' ', 6) + 1) + 1) + 1) + 1);
        const mutated = apply(text, { ...e, at: e.at % Math.max(1, headerEnd) });
        const r = parseSyslog(Buffer.from(mutated), NOW);
        if (r.error !== null) expect(r.error).toMatch(/^(PRI: |RFC 5424: .* at offset \d+$|empty datagram$|only line ends)/);
        checkAnyDatagram(Buffer.from(mutated));
      }),
      RUNS,
    );
  });

  it('bytes that are not UTF-8 spliced into a valid message', () => {
    fc.assert(
      fc.property(
        rfc5424Message,
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 4 }).map((a) => Buffer.from(a.map((b) => b | 0x80))),
        (m, at, junk) => {
          const bytes = Buffer.from(build5424(m));
          const i = at % (bytes.length + 1);
          checkAnyDatagram(Buffer.concat([bytes.subarray(0, i), junk, bytes.subarray(i)]));
        },
      ),
      RUNS,
    );
  });
});

describe('recordLine writes what JSON.stringify writes', () => {
  // Any text: controls, quotes, backslashes, lone and paired surrogates, U+2028.
  const anyString = fc.string({
    unit: fc.oneof(
      fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '\u{1F600}', 'é'),
      fc.string({ unit: 'binary', maxLength: 1 }),
    ),
    maxLength: 30,
  });
  const orNull = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });
  // Keys like "__proto__", "toString" and integer-like ones ("10", "2": JSON.stringify puts those first).
  const key = fc.oneof(anyString, fc.constantFrom('__proto__', 'toString', '10', '2', '0', 'constructor'));
  const ownObject = <T>(entries: [string, T][]): Record<string, T> => {
    const o: Record<string, T> = {};
    for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
    return o;
  };
  const sd = fc
    .array(fc.tuple(key, fc.array(fc.tuple(key, fc.oneof(anyString, fc.array(anyString, { minLength: 2, maxLength: 3 }))), { maxLength: 4 })), { maxLength: 3 })
    .map((els) => ownObject(els.map(([id, params]) => [id, ownObject(params)])));

  it('for random records, whatever their strings and structured data', () => {
    fc.assert(
      fc.property(
        fc.record({
          receivedAt: anyString,
          worker: fc.nat(),
          workerPid: fc.nat(),
          senderAddress: anyString,
          senderPort: fc.nat(65535),
          bytes: fc.nat(),
          format: fc.constantFrom('rfc5424' as const, 'rfc3164' as const, 'unknown' as const),
          pri: orNull(fc.nat(191)),
          facility: orNull(fc.constantFrom(...FACILITY_NAMES)),
          severity: orNull(fc.constantFrom(...SEVERITY_NAMES)),
          version: orNull(fc.integer({ min: 1, max: 999 })),
          timestamp: orNull(anyString),
          hostname: orNull(anyString),
          appName: orNull(anyString),
          procId: orNull(anyString),
          msgId: orNull(anyString),
          structuredData: orNull(sd),
          message: orNull(anyString),
          error: orNull(anyString),
          raw: orNull(anyString),
        }),
        (r) => {
          expect(recordLine(r)).toBe(`${JSON.stringify(r)}\n`);
        },
      ),
      RUNS,
    );
  });
});
