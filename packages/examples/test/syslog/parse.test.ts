import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parsePri, FACILITY_NAMES, SEVERITY_NAMES, parseRfc5424, parseRfc3164, parseSyslog, toRecord, recordLine } from '@shardgram/examples';
import { splitPri } from '../../src/syslog/pri.js';
import { parseSyslogOptions } from '../../src/syslog/options.js';

const NOW = new Date(2025, 5, 15, 12, 0, 0); // 15 June 2025, local time
const p = (text: string | Buffer): ReturnType<typeof parseSyslog> => parseSyslog(typeof text === 'string' ? Buffer.from(text) : text, NOW);

describe('PRI', () => {
  it('splits PRIVAL into facility and severity names', () => {
    expect(splitPri(0)).toEqual({ value: 0, facility: 'kern', severity: 'emerg' });
    expect(splitPri(13)).toEqual({ value: 13, facility: 'user', severity: 'notice' });
    expect(splitPri(34)).toEqual({ value: 34, facility: 'auth', severity: 'crit' });
    expect(splitPri(165)).toEqual({ value: 165, facility: 'local4', severity: 'notice' });
    expect(splitPri(191)).toEqual({ value: 191, facility: 'local7', severity: 'debug' });
    expect(FACILITY_NAMES).toHaveLength(24);
    expect(SEVERITY_NAMES).toHaveLength(8);
    expect(() => splitPri(192)).toThrow(RangeError);
  });

  it('reads <PRIVAL> and rejects what RFC 5424 §6.2.1 does not allow', () => {
    expect(parsePri('<0>x')).toEqual({ ok: true, pri: splitPri(0), end: 3 });
    expect(parsePri('<191>')).toEqual({ ok: true, pri: splitPri(191), end: 5 });
    for (const bad of ['<192>', '<1000>', '<>', '<a>', '<13', '<013>', '13>', '<-1>']) {
      expect(parsePri(bad).ok, bad).toBe(false);
    }
  });
});

describe('RFC 5424', () => {
  it('parses the RFC examples (§6.5)', () => {
    expect(p("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{FEFF}'su root' failed for lonvick on /dev/pts/8")).toMatchObject({
      format: 'rfc5424',
      pri: 34,
      facility: 'auth',
      severity: 'crit',
      version: 1,
      timestamp: '2003-10-11T22:14:15.003Z',
      hostname: 'mymachine.example.com',
      appName: 'su',
      procId: null,
      msgId: 'ID47',
      structuredData: null,
      message: "'su root' failed for lonvick on /dev/pts/8",
      error: null,
      utf8: true,
    });
    expect(p("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.")).toMatchObject({
      facility: 'local4',
      severity: 'notice',
      timestamp: '2003-08-24T05:14:15.000003-07:00',
      hostname: '192.0.2.1',
      appName: 'myproc',
      procId: '8710',
      msgId: null,
      structuredData: null,
      message: "%% It's time to make the do-nuts.",
    });
    const ex3 = p(
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \u{FEFF}An application event log entry...',
    );
    expect(ex3).toMatchObject({ appName: 'evntslog', msgId: 'ID47', message: 'An application event log entry...', error: null });
    expect(ex3.structuredData).toEqual({ 'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' } });
    const ex4 = p(
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
    );
    expect(ex4.structuredData).toEqual({
      'exampleSDID@32473': { iut: '3', eventSource: 'Application', eventID: '1011' },
      'examplePriority@32473': { class: 'high' },
    });
    expect(ex4.message).toBeNull();
  });

  it('unescapes \\" \\\\ \\] in PARAM-VALUE and keeps any other backslash', () => {
    const r = p(String.raw`<13>1 - - - - - [x@1 q="a\"b" s="c\\d" b="e\]f" n="g\nh" t="end\\"] msg`);
    expect(r.error).toBeNull();
    expect(r.structuredData).toEqual({ 'x@1': { q: 'a"b', s: 'c\\d', b: 'e]f', n: 'g\\nh', t: 'end\\' } });
    expect(r.message).toBe('msg');
  });

  it('collects a repeated PARAM-NAME into an array, UTF-8 values, and keys that are Object.prototype names', () => {
    const r = p('<13>1 - - - - - [x@1 a="1" a="2" a="3" u="ø"][__proto__ constructor="c" toString="t"]');
    expect(r.error).toBeNull();
    expect(r.structuredData?.['x@1']).toEqual({ a: ['1', '2', '3'], u: 'ø' });
    expect(Object.keys(r.structuredData!)).toEqual(['x@1', '__proto__']);
    expect(Object.getPrototypeOf(r.structuredData)).toBe(Object.prototype); // not replaced by "__proto__"
    expect(p('<13>1 - - - - - [y@1 toString="a" toString="b" hasOwnProperty="c"] m').structuredData).toEqual({
      'y@1': { toString: ['a', 'b'], hasOwnProperty: 'c' },
    });
    expect(JSON.parse(JSON.stringify(r.structuredData))).toEqual({ 'x@1': { a: ['1', '2', '3'], u: 'ø' }, ['__proto__']: { constructor: 'c', toString: 't' } });
  });

  it('NILVALUE everywhere, and no MSG', () => {
    expect(p('<13>1 - - - - - -')).toMatchObject({
      format: 'rfc5424',
      timestamp: null,
      hostname: null,
      appName: null,
      procId: null,
      msgId: null,
      structuredData: null,
      message: null,
      error: null,
    });
    expect(p('<13>1 - - - - - - ')).toMatchObject({ message: '', error: null });
  });

  it('timestamps with fractions and offsets; strict ranges', () => {
    for (const ts of [
      '1985-04-12T23:20:50.52Z',
      '1985-04-12T19:20:50.52-04:00',
      '2003-10-11T22:14:15.003Z',
      '2003-08-24T05:14:15.000003-07:00',
      '2024-02-29T00:00:00+14:00',
      '2003-10-11T22:14:15.123456789Z',
    ]) {
      expect(p(`<13>1 ${ts} h a p m - x`), ts).toMatchObject({ timestamp: ts, error: null });
    }
    for (const ts of [
      '2003-10-11T22:14:15',
      '2003-10-11 22:14:15Z',
      '2003-10-11t22:14:15z',
      '2003-13-11T22:14:15Z',
      '2023-02-29T00:00:00Z',
      '2003-10-11T24:00:00Z',
      '2003-10-11T22:14:60Z',
      '2003-10-11T22:14:15.Z',
      '2003-10-11T22:14:15+0100',
      '2003-10-11T22:14:15.1234567890Z',
    ]) {
      const r = p(`<13>1 ${ts} h a p m - x`);
      expect(r.error, ts).toMatch(/TIMESTAMP/);
      expect(r.format).toBe('rfc5424');
      expect(r.facility).toBe('user'); // the PRI is still read
    }
  });

  it('reports the first grammar error with its place, and keeps what was read', () => {
    const cases: [string, RegExp][] = [
      ['<13>1 - host app 1 ID', /message ends after MSGID/],
      ['<13>1 - host app 1 ID msg', /STRUCTURED-DATA \("-" or "\["\) expected/],
      ['<13>1 - host app 1 ID [x@1 a="1"', /SD-ELEMENT "x@1" is not closed/],
      ['<13>1 - host app 1 ID [x@1 a="1] m', /PARAM-VALUE has no closing quote/],
      ['<13>1 - host app 1 ID [x@1 a=1] m', /'"' expected before the value of "a"/],
      ['<13>1 - host app 1 ID [x@1 a] m', /"=" expected after PARAM-NAME "a"/],
      ['<13>1 - host app 1 ID [x@1][x@1] m', /SD-ID "x@1" occurs twice/],
      ['<13>1 - host app 1 ID [] m', /SD-ID expected/],
      ['<13>1 - host app 1 ID -msg', /SP expected after STRUCTURED-DATA/],
      ['<13>1  - host app 1 ID - m', /TIMESTAMP is empty/],
      ['<13>1 - hôst app 1 ID - m', /HOSTNAME has a character that is not printable US-ASCII \(U\+00F4\)/],
      [`<13>1 - h ${'a'.repeat(49)} 1 ID - m`, /APP-NAME is longer than 48/],
      [`<13>1 - h a 1 ${'m'.repeat(33)} - m`, /MSGID is longer than 32/],
      [`<13>1 - h a 1 m [${'s'.repeat(33)}] m`, /SD-ID is longer than 32/],
    ];
    for (const [text, why] of cases) {
      const r = p(text);
      expect(r.error, text).toMatch(why);
      expect(r.error, text).toMatch(/^RFC 5424: .* at offset \d+$/);
      expect(r.message, text).toBe(text);
    }
    expect(p('<13>1 - h a 1 ID [x@1 ü="1"] m').error).toMatch(/PARAM-NAME has a character that is not printable US-ASCII/);
    expect(p('<13>01 - h a 1 m - x')).toMatchObject({ format: 'rfc3164', message: '01 - h a 1 m - x' }); // not a VERSION: BSD text
    expect(p('<13>1 - host app 1 ID [x@1 a="1"')).toMatchObject({ hostname: 'host', appName: 'app', procId: '1', msgId: 'ID', structuredData: null });
  });

  it('VERSION other than 1: parsed by the 5424 grammar with its version; when that fails, read as BSD', () => {
    expect(p('<13>2 - h a 1 m - x')).toMatchObject({
      format: 'rfc5424',
      version: 2,
      hostname: 'h',
      appName: 'a',
      procId: '1',
      msgId: 'm',
      message: 'x',
      error: null,
    });
    // rsyslog takes only `1 ` for RFC 5424: another number that does not start a 5424 header is BSD text.
    const bsd = { format: 'rfc3164', version: null, timestamp: null, hostname: null, appName: null, procId: null, error: null };
    expect(p('<13>10 - minute job done')).toMatchObject({ ...bsd, message: '10 - minute job done' });
    expect(p('<13>3  disks failed')).toMatchObject({ ...bsd, message: '3  disks failed' });
    expect(p('<13>2 - h a 1 m -x')).toMatchObject({ ...bsd, message: '2 - h a 1 m -x' });
    // VERSION 1 that breaks the grammar stays a malformed RFC 5424 message.
    expect(p('<13>1 - minute job done')).toMatchObject({ format: 'rfc5424', version: 1, error: expect.stringMatching(/^RFC 5424: /) });
  });

  it('parseRfc5424 on its own, from an offset', () => {
    const r = parseRfc5424('<14>1 - h a - - - hi', 4);
    expect(r).toMatchObject({ ok: true, fields: { version: 1, hostname: 'h', appName: 'a', message: 'hi', bom: false } });
    expect(parseRfc5424('1 - h a - - - \u{FEFF}hi')).toMatchObject({ ok: true, fields: { message: 'hi', bom: true } });
  });
});

describe('RFC 3164 and its real-world deviations', () => {
  it('the RFC examples (§5.4)', () => {
    expect(p("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")).toMatchObject({
      format: 'rfc3164',
      pri: 34,
      facility: 'auth',
      severity: 'crit',
      version: null,
      timestamp: '2024-10-11T22:14:15',
      hostname: 'mymachine',
      appName: 'su',
      procId: null,
      msgId: null,
      structuredData: null,
      message: "'su root' failed for lonvick on /dev/pts/8",
    });
    expect(p('<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!')).toMatchObject({
      timestamp: '2025-02-05T17:32:18',
      hostname: '10.0.0.99',
      appName: null,
      message: 'Use the BFG!',
    });
  });

  it('day padding: two spaces, a zero, or none', () => {
    for (const ts of ['Jun  5 01:02:03', 'Jun 05 01:02:03', 'Jun 5 01:02:03']) {
      expect(p(`<13>${ts} host app: x`), ts).toMatchObject({ timestamp: '2025-06-05T01:02:03', hostname: 'host', appName: 'app', message: 'x' });
    }
  });

  it('infers the year: this one, or the last when the date would be more than a month ahead', () => {
    expect(p('<13>Jul 10 00:00:00 h a: x').timestamp).toBe('2025-07-10T00:00:00');
    expect(p('<13>Dec 31 23:59:59 h a: x').timestamp).toBe('2024-12-31T23:59:59');
    expect(parseRfc3164('Dec 31 23:59:59 h a: x', 0, new Date(2026, 0, 1, 0, 0, 5)).timestamp).toBe('2025-12-31T23:59:59');
  });

  it('tag with [pid], tag without colon, and no hostname', () => {
    expect(p('<13>Jun 15 10:00:00 web1 sshd[4242]: Accepted publickey')).toMatchObject({
      hostname: 'web1',
      appName: 'sshd',
      procId: '4242',
      message: 'Accepted publickey',
    });
    expect(p('<13>Jun 15 10:00:00 sshd[4242]: Accepted')).toMatchObject({ hostname: null, appName: 'sshd', procId: '4242', message: 'Accepted' });
    expect(p('<13>Jun 15 10:00:00 kernel: oops')).toMatchObject({ hostname: null, appName: 'kernel', message: 'oops' });
    expect(p('<13>Jun 15 10:00:00 web1 cron[7] started')).toMatchObject({ hostname: 'web1', appName: 'cron', procId: '7', message: 'started' });
    expect(p('<13>Jun 15 10:00:00 web1 app:no-space')).toMatchObject({ appName: 'app', message: 'no-space' });
    expect(p('<13>Jun 15 10:00:00 web1 just words here')).toMatchObject({ hostname: 'web1', appName: null, message: 'just words here' });
    expect(p('<13>Jun 15 10:00:00 lonely')).toMatchObject({ hostname: null, appName: null, message: 'lonely' });
    expect(p('<13>Jun 15 10:00:00 fe80::1 app[3]: v6 host')).toMatchObject({ hostname: 'fe80::1', appName: 'app', procId: '3', message: 'v6 host' });
  });

  it('ISO 8601 timestamps (rsyslog forwarding format), with T or a space', () => {
    expect(p('<13>2025-06-15T10:00:00.123456+02:00 host app[9]: iso')).toMatchObject({
      timestamp: '2025-06-15T10:00:00.123456+02:00',
      hostname: 'host',
      appName: 'app',
      procId: '9',
      message: 'iso',
    });
    expect(p('<13>2025-06-15 10:00:00 host app: spaced')).toMatchObject({ timestamp: '2025-06-15 10:00:00', hostname: 'host', appName: 'app' });
  });

  it('year in the timestamp, fractions, Cisco markers and a time zone before a colon', () => {
    expect(p('<13>Jun 15 2019 10:00:00 host app: y')).toMatchObject({ timestamp: '2019-06-15T10:00:00', hostname: 'host' });
    // A year after the time: 1970 to the receiver's next year (NOW is 2025); another number is message text, never the year or the host.
    expect(p('<190>Apr 15 21:28:13 2007 linksys app: msg')).toMatchObject({ timestamp: '2007-04-15T21:28:13', hostname: 'linksys', appName: 'app' });
    expect(p('<13>Apr 15 21:28:13 1970 h app: m')).toMatchObject({ timestamp: '1970-04-15T21:28:13', hostname: 'h' });
    expect(p('<13>Apr 15 21:28:13 2026 h app: m')).toMatchObject({ timestamp: '2026-04-15T21:28:13', hostname: 'h' });
    const noYear = { timestamp: '2025-04-15T21:28:13', hostname: null, appName: null, error: null };
    expect(p('<13>Apr 15 21:28:13 1024 bytes free')).toMatchObject({ ...noYear, message: '1024 bytes free' });
    expect(p('<13>Apr 15 21:28:13 1969 h app: m')).toMatchObject({ ...noYear, message: '1969 h app: m' });
    expect(p('<13>Apr 15 21:28:13 2027 h app: m')).toMatchObject({ ...noYear, message: '2027 h app: m' });
    expect(p('<13>Apr 15 21:28:13 9999')).toMatchObject({ ...noYear, message: '9999' });
    expect(p('<13>Jun 15 10:00:00.250 host app: f')).toMatchObject({ timestamp: '2025-06-15T10:00:00.250', hostname: 'host' });
    expect(p('<189>*Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: Configured from console')).toMatchObject({
      facility: 'local7',
      severity: 'notice',
      timestamp: '2025-03-01T18:48:50.483Z',
      hostname: null,
      appName: '%SYS-5-CONFIG_I',
      message: 'Configured from console',
    });
    // An upper-case hostname or tag is not taken for a time zone.
    expect(p('<13>Jun 15 10:00:00 HOST app: x')).toMatchObject({ hostname: 'HOST', appName: 'app' });
    expect(p('<13>Jun 15 10:00:00 CRON: x')).toMatchObject({ hostname: null, appName: 'CRON', message: 'x' });
    expect(p('<13>Jun 15 10:00:00.5 CET: %LINK-3-UPDOWN: down')).toMatchObject({
      timestamp: '2025-06-15T10:00:00.5+01:00',
      appName: '%LINK-3-UPDOWN',
      message: 'down',
    });
  });

  it('no timestamp, no PRI, nothing but text', () => {
    expect(p('<13>sshd[12]: no time')).toMatchObject({ format: 'rfc3164', timestamp: null, hostname: null, appName: 'sshd', procId: '12', message: 'no time' });
    expect(p('<13>1 apple fell')).toMatchObject({ format: 'rfc3164', message: '1 apple fell', error: null });
    expect(p('just text, no PRI')).toMatchObject({
      format: 'rfc3164',
      pri: null,
      facility: 'user',
      severity: 'notice',
      message: 'just text, no PRI',
      error: null,
    });
    expect(p('Jun 15 10:00:00 host app: no PRI')).toMatchObject({ pri: null, timestamp: '2025-06-15T10:00:00', hostname: 'host', appName: 'app' });
    expect(p('<13>Jun 31 99:00:00 host app: bad time')).toMatchObject({ timestamp: null, message: 'Jun 31 99:00:00 host app: bad time' });
  });

  it('drops trailing CR, LF and NUL bytes', () => {
    expect(p('<13>Jun 15 10:00:00 host app: line\r\n').message).toBe('line');
    expect(p('<13>1 - h a - - - m\n\0').message).toBe('m');
  });
});

describe('malformed input and records', () => {
  const at = { receivedAt: new Date('2025-06-15T10:00:00Z'), worker: 1, workerPid: 4242, senderAddress: '127.0.0.1', senderPort: 5000 };

  it('keeps the text (invalid bytes replaced), the exact bytes in base64, and the error', () => {
    const bytes = Buffer.concat([Buffer.from('<999>bad '), Buffer.from([0xff, 0xfe, 0x00, 0xc3]), Buffer.from(' tail')]);
    const r = toRecord(bytes, at);
    expect(r).toMatchObject({
      format: 'unknown',
      facility: null,
      severity: null,
      error: 'PRI: 999 is more than 191',
      worker: 1,
      workerPid: 4242,
      senderAddress: '127.0.0.1',
      senderPort: 5000,
      bytes: bytes.length,
    });
    expect(r.message).toBe('<999>bad \uFFFD\uFFFD\u0000\uFFFD tail');
    expect(Buffer.from(r.raw!, 'base64').equals(bytes)).toBe(true);
    const line = recordLine(r);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/\n/);
    expect(JSON.parse(line)).toEqual(r);
  });

  it('a well-formed message that is not UTF-8 keeps its bytes too; a UTF-8 one does not need to', () => {
    const latin1 = Buffer.concat([Buffer.from('<13>Jun 15 10:00:00 host app: caf'), Buffer.from([0xe9])]);
    const r = toRecord(latin1, at);
    expect(r).toMatchObject({ format: 'rfc3164', error: null, message: 'caf\uFFFD' });
    expect(Buffer.from(r.raw!, 'base64').equals(latin1)).toBe(true);
    expect(toRecord(Buffer.from('<13>1 - h a - - - ünïcödé ✓'), at)).toMatchObject({ raw: null, message: 'ünïcödé ✓' });
  });

  it('empty and line-end-only datagrams', () => {
    expect(toRecord(Buffer.alloc(0), at)).toMatchObject({ format: 'unknown', error: 'empty datagram', message: '', raw: '' });
    expect(toRecord(Buffer.from('\r\n'), at)).toMatchObject({ error: 'only line ends and NUL bytes', raw: Buffer.from('\r\n').toString('base64') });
  });

  it('every record has the same keys in the same order', () => {
    const keys = Object.keys(toRecord(Buffer.from('<13>1 - h a - - - m'), at));
    for (const text of ['<13>Jun 15 10:00:00 host app: x', '<300>x', '', 'plain']) expect(Object.keys(toRecord(Buffer.from(text), at))).toEqual(keys);
    expect(keys).toEqual([
      'receivedAt',
      'worker',
      'workerPid',
      'senderAddress',
      'senderPort',
      'bytes',
      'format',
      'pri',
      'facility',
      'severity',
      'version',
      'timestamp',
      'hostname',
      'appName',
      'procId',
      'msgId',
      'structuredData',
      'message',
      'error',
      'raw',
    ]);
  });
});

describe('app options', () => {
  it('out, maxBytes with units, keep', () => {
    const cwd = fileURLToPath(new URL('.', import.meta.url)); // a directory that exists; nothing is written
    expect(parseSyslogOptions({}, cwd)).toEqual({ out: null, maxBytes: 0, keep: 5 });
    expect(parseSyslogOptions({ out: 's.jsonl', maxBytes: '10m', keep: '3' }, cwd)).toEqual({ out: join(cwd, 's.jsonl'), maxBytes: 10 * 1024 * 1024, keep: 3 });
    expect(parseSyslogOptions({ out: join(cwd, 'x'), maxBytes: '64KiB' }).maxBytes).toBe(65536);
    expect(parseSyslogOptions({ out: '-' }).out).toBeNull();
  });

  it('rejects what it cannot use, naming the option', () => {
    expect(() => parseSyslogOptions({ file: 'x' })).toThrow(/unknown syslog option "file"; the options are out, maxBytes, keep/);
    expect(() => parseSyslogOptions({ out: 'x', maxBytes: 'lots' })).toThrow(/^maxBytes must be a number of bytes/);
    expect(() => parseSyslogOptions({ out: 'x', keep: '0' })).toThrow(/^keep must be from 1 to 1000; got 0$/);
    expect(() => parseSyslogOptions({ maxBytes: '1m' })).toThrow(/used with out=FILE/);
    expect(() => parseSyslogOptions({ out: '/nonexistent-dir/x.jsonl' })).toThrow(
      'out must be a file in an existing directory; got "/nonexistent-dir/x.jsonl" (directory /nonexistent-dir does not exist)',
    );
  });
});
