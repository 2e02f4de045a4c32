/**
 * One datagram, one message (RFC 5426 §3.1): decode it, tell RFC 5424 from BSD
 * syslog, and parse it. Never throws, whatever the bytes.
 */
import { isUtf8 } from 'node:buffer';
import { DEFAULT_PRIVAL, parsePri, splitPri, type FacilityName, type SeverityName } from './pri.js';
import { parseRfc3164 } from './rfc3164.js';
import { parseRfc5424, type Rfc5424Fields } from './rfc5424.js';

export type SyslogFormat = 'rfc5424' | 'rfc3164' | 'unknown';

/** The header fields both formats fill (RFC 3164 leaves some null); see Rfc5424Fields. */
type HeaderFields = Pick<Rfc5424Fields, 'timestamp' | 'hostname' | 'appName' | 'procId' | 'msgId' | 'structuredData'>;

export interface ParsedSyslog extends HeaderFields {
  /** `unknown` only for a datagram that could not be placed at all (empty, broken PRI). */
  format: SyslogFormat;
  /** The PRIVAL sent, or null when there was none (then facility and severity are RFC 3164's default, user.notice). */
  pri: number | null;
  facility: FacilityName | null;
  severity: SeverityName | null;
  /** RFC 5424 VERSION (1, or any other 1–999 parsed by the same grammar); null otherwise. */
  version: number | null;
  /**
   * The MSG part; for a malformed message, the whole text. Bytes that are not UTF-8
   * are U+FFFD here, and trailing CR, LF and NUL characters are dropped.
   */
  message: string | null;
  /** Why the message is malformed, or null. */
  error: string | null;
  /** Whether the datagram's bytes are valid UTF-8 (when not, the record keeps them in base64). */
  utf8: boolean;
}

/**
 * VERSION SP, then `-` SP, a date, or a stray SP: an RFC 5424 header. (A BSD message
 * without a timestamp can start with a number too: `<13>3 disks failed`; and when
 * the VERSION is not 1 and the rest does not follow the 5424 grammar, the message is
 * read as BSD, see parseSyslog.)
 */
const RFC5424_START = /[1-9]\d{0,2} (?:- | |\d{4}-)/y;

function trimEnd(text: string): string {
  let end = text.length;
  while (end > 0) {
    const c = text.charCodeAt(end - 1);
    if (c !== 0x0a && c !== 0x0d && c !== 0x00) break;
    end--;
  }
  return end === text.length ? text : text.slice(0, end);
}

type Header = Omit<ParsedSyslog, 'message' | 'error' | 'utf8'>;
const NO_HEADER: Header = {
  format: 'unknown',
  pri: null,
  facility: null,
  severity: null,
  version: null,
  timestamp: null,
  hostname: null,
  appName: null,
  procId: null,
  msgId: null,
  structuredData: null,
};

function malformed(text: string, utf8: boolean, error: string, header: Header = NO_HEADER): ParsedSyslog {
  return { ...header, message: text, error, utf8 };
}

export function parseSyslog(datagram: Uint8Array, now: Date = new Date()): ParsedSyslog {
  const bytes = Buffer.isBuffer(datagram) ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const utf8 = isUtf8(bytes);
  const text = trimEnd(bytes.toString('utf8'));
  if (bytes.length === 0) return malformed('', utf8, 'empty datagram');
  if (text.length === 0) return malformed(text, utf8, 'only line ends and NUL bytes');

  if (text.charCodeAt(0) !== 0x3c /* < */) {
    // No PRI: RFC 3164 §4.3.3 has a relay treat the whole as MSG of user.notice.
    const def = splitPri(DEFAULT_PRIVAL);
    return bsdRecord(parseRfc3164(text, 0, now), null, def.facility, def.severity, utf8);
  }
  const pri = parsePri(text);
  if (!pri.ok) return malformed(text, utf8, pri.error);
  const { value, facility, severity } = pri.pri;

  RFC5424_START.lastIndex = pri.end;
  if (RFC5424_START.test(text)) {
    const r = parseRfc5424(text, pri.end);
    // VERSION other than 1 and not the 5424 grammar: a BSD message that starts with a
    // number (`<13>10 - minute job done`, `<13>3  disks failed`), as rsyslog takes
    // only `1 ` for RFC 5424. VERSION 1 that fails stays a malformed RFC 5424 message.
    if (!r.ok && !text.startsWith('1 ', pri.end)) return bsdRecord(parseRfc3164(text, pri.end, now), value, facility, severity, utf8);
    if (!r.ok) {
      const f = r.fields;
      return malformed(text, utf8, r.error, {
        format: 'rfc5424',
        pri: value,
        facility,
        severity,
        version: f.version ?? null,
        timestamp: f.timestamp ?? null,
        hostname: f.hostname ?? null,
        appName: f.appName ?? null,
        procId: f.procId ?? null,
        msgId: f.msgId ?? null,
        structuredData: f.structuredData ?? null,
      });
    }
    const f = r.fields;
    return {
      format: 'rfc5424',
      pri: value,
      facility,
      severity,
      version: f.version,
      timestamp: f.timestamp,
      hostname: f.hostname,
      appName: f.appName,
      procId: f.procId,
      msgId: f.msgId,
      structuredData: f.structuredData,
      message: f.message,
      error: null,
      utf8,
    };
  }
  return bsdRecord(parseRfc3164(text, pri.end, now), value, facility, severity, utf8);
}

/** A BSD (RFC 3164) message's record: its PRI (null when it had none, then user.notice) and the fields parsed. */
function bsdRecord(
  f: ReturnType<typeof parseRfc3164>,
  pri: number | null,
  facility: ParsedSyslog['facility'],
  severity: ParsedSyslog['severity'],
  utf8: boolean,
): ParsedSyslog {
  return {
    format: 'rfc3164',
    pri,
    facility,
    severity,
    version: null,
    timestamp: f.timestamp,
    hostname: f.hostname,
    appName: f.appName,
    procId: f.procId,
    msgId: null,
    structuredData: f.structuredData,
    message: f.message,
    error: null,
    utf8,
  };
}
