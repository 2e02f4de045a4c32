/**
 * RFC 5424 after the PRI:
 *
 *   VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
 *
 * Strict where the RFC is (field characters and lengths, timestamp syntax and ranges,
 * structured data), with two documented allowances: TIME-SECFRAC of up to 9 digits
 * (the RFC says 6) and an unescaped `]` inside a quoted PARAM-VALUE (unambiguous there).
 */

/** SD-ID → PARAM-NAME → value; a name that occurs more than once gets an array. */
export type StructuredData = Record<string, Record<string, string | string[]>>;

export interface Rfc5424Fields {
  /** VERSION as sent: 1 is RFC 5424's; another (1–999) is parsed by the same grammar. */
  version: number;
  /** The TIMESTAMP as sent (RFC 3339, offset and fraction kept), or null for `-`. */
  timestamp: string | null;
  hostname: string | null;
  appName: string | null;
  procId: string | null;
  msgId: string | null;
  /** null for `-`. Every SD-ID and PARAM-NAME is an own key (test with Object.hasOwn: `toString` can be one). */
  structuredData: StructuredData | null;
  /** null when the message has no MSG part; a leading UTF-8 BOM is removed. */
  message: string | null;
  /** The MSG began with a UTF-8 BOM (RFC 5424 §6.4: it is then UTF-8). */
  bom: boolean;
}

export type Rfc5424Result =
  | { ok: true; fields: Rfc5424Fields }
  | { ok: false; error: string /** What was read before the error. */; fields: Partial<Rfc5424Fields> };

const SP = 0x20;

/** Longest field values, RFC 5424 §6 (HOSTNAME, APP-NAME, PROCID, MSGID) and §6.3.2/6.3.3 (SD-NAME). */
export const LIMITS = { hostname: 255, appName: 48, procId: 128, msgId: 32, sdName: 32 } as const;

function daysInMonth(year: number, month: number): number {
  return month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
}

/** The number written by `len` digits at `at`, or -1 if one is not a digit. */
function digits(s: string, at: number, len: number): number {
  let v = 0;
  for (let k = at; k < at + len; k++) {
    const c = s.charCodeAt(k) - 0x30;
    if (!(c >= 0 && c <= 9)) return -1; // NaN past the end fails too
    v = v * 10 + c;
  }
  return v;
}

/**
 * Why `ts` is not an RFC 5424 TIMESTAMP — `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)`,
 * "T" and "Z" upper case, ranges checked, no leap second (§6.2.3) — or null if it is one.
 */
export function timestampProblem(ts: string): string | null {
  const shape = `TIMESTAMP "${ts}" is not YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm)`;
  const year = digits(ts, 0, 4);
  const month = digits(ts, 5, 2);
  const day = digits(ts, 8, 2);
  const hour = digits(ts, 11, 2);
  const minute = digits(ts, 14, 2);
  const second = digits(ts, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return shape;
  if (ts[4] !== '-' || ts[7] !== '-' || ts[10] !== 'T' || ts[13] !== ':' || ts[16] !== ':') return shape;
  let i = 19;
  if (ts[i] === '.') {
    const from = ++i;
    while (i < ts.length && i - from < 10 && ts.charCodeAt(i) >= 0x30 && ts.charCodeAt(i) <= 0x39) i++;
    if (i === from || i - from > 9) return shape;
  }
  let offsetOk = false;
  if (ts[i] === 'Z') offsetOk = i + 1 === ts.length;
  else if (ts[i] === '+' || ts[i] === '-') {
    if (i + 6 !== ts.length || ts[i + 3] !== ':') return shape;
    const oh = digits(ts, i + 1, 2);
    const om = digits(ts, i + 4, 2);
    if (oh < 0 || om < 0) return shape;
    if (oh > 23 || om > 59) return `TIMESTAMP offset ${ts.slice(i)} out of range`;
    offsetOk = true;
  }
  if (!offsetOk) return shape;
  if (month < 1 || month > 12) return `TIMESTAMP month ${month} out of range`;
  if (day < 1 || day > daysInMonth(year, month)) return `TIMESTAMP day ${day} out of range`;
  if (hour > 23 || minute > 59 || second > 59) return `TIMESTAMP time ${ts.slice(11, 19)} out of range`;
  return null;
}

/**
 * Sets an own property, even one named `__proto__` (plain objects are several times
 * faster here than null-prototype ones; a name like `toString` is an own key either way).
 */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** A parse failure: thrown inside the scanner, caught in parseRfc5424. */
class Fail {
  constructor(readonly message: string) {}
}

/** One pass over the text; `i` is the position. */
class Scanner {
  i: number;
  readonly n: number;

  constructor(
    readonly text: string,
    start: number,
  ) {
    this.i = start;
    this.n = text.length;
  }

  fail(why: string, at = this.i): never {
    throw new Fail(`RFC 5424: ${why} at offset ${at}`);
  }

  expectSp(after: string): void {
    if (this.text.charCodeAt(this.i) !== SP) this.fail(this.i >= this.n ? `message ends after ${after}` : `SP expected after ${after}`);
    this.i++;
  }

  /** A header field: 1 to `max` PRINTUSASCII characters up to the next SP; `-` is null. */
  field(name: string, max: number): string | null {
    const { text, n } = this;
    const from = this.i;
    let i = from;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === SP) break;
      if (c < 33 || c > 126) this.fail(`${name} has a character that is not printable US-ASCII (U+${c.toString(16).toUpperCase().padStart(4, '0')})`, i);
    }
    this.i = i;
    if (i === from) this.fail(`${name} is empty`, from);
    if (i - from > max) this.fail(`${name} is longer than ${max} characters`, from);
    if (i - from === 1 && text.charCodeAt(from) === 0x2d) return null;
    return text.slice(from, i);
  }

  /** SD-NAME: 1 to 32 PRINTUSASCII except `=`, SP, `]`, `"`. */
  sdName(what: string): string {
    const { text, n } = this;
    const from = this.i;
    let i = from;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x3d || c === SP || c === 0x5d || c === 0x22) break;
      if (c < 33 || c > 126) this.fail(`${what} has a character that is not printable US-ASCII`, i);
    }
    this.i = i;
    if (i === from) this.fail(`${what} expected`);
    if (i - from > LIMITS.sdName) this.fail(`${what} is longer than ${LIMITS.sdName} characters`, from);
    return text.slice(from, i);
  }

  /** PARAM-VALUE after its opening quote, through the closing one; `\"`, `\\`, `\]` are escapes, any other `\` is literal. */
  paramValue(): string {
    const { text, n } = this;
    let out = '';
    let from = this.i;
    for (let i = from; i < n; ) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        return out + text.slice(from, i);
      }
      if (c === 0x5c && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d === 0x22 || d === 0x5c || d === 0x5d) {
          out += text.slice(from, i);
          from = i + 1; // keep the escaped character
          i += 2;
          continue;
        }
      }
      i++;
    }
    this.i = n;
    return this.fail('PARAM-VALUE has no closing quote');
  }

  /** STRUCTURED-DATA: `-` (null) or one or more SD-ELEMENTs. */
  structuredData(): StructuredData | null {
    const { text } = this;
    const c = text.charCodeAt(this.i);
    if (c === 0x2d /* - */) {
      this.i++;
      return null;
    }
    if (c !== 0x5b /* [ */) this.fail(this.i >= this.n ? 'message ends before STRUCTURED-DATA' : 'STRUCTURED-DATA ("-" or "[") expected');
    const sd: StructuredData = {};
    while (text.charCodeAt(this.i) === 0x5b) {
      const elFrom = this.i++;
      const id = this.sdName('SD-ID');
      if (Object.hasOwn(sd, id)) this.fail(`SD-ID "${id}" occurs twice`, elFrom);
      const params: Record<string, string | string[]> = {};
      while (text.charCodeAt(this.i) === SP) {
        this.i++;
        const name = this.sdName('PARAM-NAME');
        if (text.charCodeAt(this.i) !== 0x3d) this.fail(`"=" expected after PARAM-NAME "${name}"`);
        this.i++;
        if (text.charCodeAt(this.i) !== 0x22) this.fail(`'"' expected before the value of "${name}"`);
        this.i++;
        const value = this.paramValue();
        const prev = Object.hasOwn(params, name) ? params[name] : undefined;
        if (prev === undefined) setOwn(params, name, value);
        else if (Array.isArray(prev))
          prev.push(value); // in place: repeats stay linear
        else setOwn(params, name, [prev, value]);
      }
      if (text.charCodeAt(this.i) !== 0x5d) this.fail(this.i >= this.n ? `SD-ELEMENT "${id}" is not closed` : `"]" or SP expected in SD-ELEMENT "${id}"`);
      this.i++;
      setOwn(sd, id, params);
    }
    return sd;
  }
}

/**
 * Parses an RFC 5424 message from `start` (the first character after the PRI's `>`).
 * Never throws: a message that breaks the grammar gives `ok: false` with the reason
 * and the fields read before it.
 */
export function parseRfc5424(text: string, start = 0): Rfc5424Result {
  const fields: Partial<Rfc5424Fields> = {};
  const s = new Scanner(text, start);
  try {
    // VERSION = NONZERO-DIGIT 0*2DIGIT
    const vFrom = s.i;
    let i = vFrom;
    while (i < s.n && i - vFrom < 3 && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    s.i = i;
    if (i === vFrom || text.charCodeAt(vFrom) === 0x30) s.fail('VERSION expected', vFrom);
    // Any VERSION is parsed by this grammar and recorded (docs/syslog.md): the header of
    // a future version can only be read as this one's, and a record that keeps the
    // version lets the reader tell; a message that breaks the grammar is still malformed.
    const version = Number(text.slice(vFrom, i));
    fields.version = version;
    s.expectSp('VERSION');

    const tsFrom = s.i;
    const timestamp = s.field('TIMESTAMP', 64);
    if (timestamp !== null) {
      const problem = timestampProblem(timestamp);
      if (problem) s.fail(problem, tsFrom);
    }
    fields.timestamp = timestamp;
    s.expectSp('TIMESTAMP');
    fields.hostname = s.field('HOSTNAME', LIMITS.hostname);
    s.expectSp('HOSTNAME');
    fields.appName = s.field('APP-NAME', LIMITS.appName);
    s.expectSp('APP-NAME');
    fields.procId = s.field('PROCID', LIMITS.procId);
    s.expectSp('PROCID');
    fields.msgId = s.field('MSGID', LIMITS.msgId);
    s.expectSp('MSGID');
    fields.structuredData = s.structuredData();

    let message: string | null = null;
    let bom = false;
    if (s.i < s.n) {
      s.expectSp('STRUCTURED-DATA');
      message = text.slice(s.i);
      if (message.charCodeAt(0) === 0xfeff) {
        bom = true;
        message = message.slice(1);
      }
    }
    fields.message = message;
    fields.bom = bom;
    return { ok: true, fields: fields as Rfc5424Fields };
  } catch (err) {
    if (err instanceof Fail) return { ok: false, error: err.message, fields };
    throw err;
  }
}
