/**
 * PRI: `<PRIVAL>` at the start of a syslog message, PRIVAL = facility * 8 + severity
 * (RFC 5424 §6.2.1, RFC 3164 §4.1.1), and the names of both parts.
 */

/**
 * Facility names by code, as rsyslog's `syslogfacility-text` spells them (codes 12–15
 * are "NTP subsystem", "log audit", "log alert" and "clock daemon" in RFC 5424 Table 1).
 */
export const FACILITY_NAMES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'audit',
  'alert',
  'clock',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

/** Severity names by code, as syslog(3) and logger(1) spell them (RFC 5424 Table 2). */
export const SEVERITY_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

export type FacilityName = (typeof FACILITY_NAMES)[number];
export type SeverityName = (typeof SEVERITY_NAMES)[number];

/** Largest PRIVAL: facility 23 (local7), severity 7 (debug). */
export const MAX_PRIVAL = 191;

/** What RFC 3164 §4.3.3 says a relay assumes for a message without PRI: user.notice. */
export const DEFAULT_PRIVAL = 13;

export interface Pri {
  /** The PRIVAL, 0–191. */
  value: number;
  facility: FacilityName;
  severity: SeverityName;
}

/** Splits a PRIVAL (0–191) into facility and severity names. */
export function splitPri(value: number): Pri {
  if (!Number.isInteger(value) || value < 0 || value > MAX_PRIVAL) throw new RangeError(`PRIVAL must be an integer from 0 to ${MAX_PRIVAL}; got ${value}`);
  return { value, facility: FACILITY_NAMES[value >> 3]!, severity: SEVERITY_NAMES[value & 7]! };
}

export type PriResult = { ok: true; pri: Pri /** Index just past `>`. */; end: number } | { ok: false; error: string };

/**
 * Reads `<PRIVAL>` at the start of `text` (which must begin with `<`). PRIVAL is one to
 * three digits, at most 191; a leading zero is accepted only in `<0>` (RFC 5424 §6.2.1).
 */
export function parsePri(text: string): PriResult {
  if (text.charCodeAt(0) !== 0x3c /* < */) return { ok: false, error: 'PRI: "<" expected at offset 0' };
  let i = 1;
  let value = 0;
  while (i < text.length && i <= 4) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    value = value * 10 + (c - 0x30);
    i++;
  }
  const digits = i - 1;
  if (digits === 0) return { ok: false, error: 'PRI: digits expected after "<" at offset 1' };
  if (digits > 3) return { ok: false, error: 'PRI: more than 3 digits' };
  if (text.charCodeAt(i) !== 0x3e /* > */) return { ok: false, error: `PRI: ">" expected at offset ${i}` };
  if (digits > 1 && text.charCodeAt(1) === 0x30) return { ok: false, error: 'PRI: leading zero' };
  if (value > MAX_PRIVAL) return { ok: false, error: `PRI: ${value} is more than ${MAX_PRIVAL}` };
  return { ok: true, pri: splitPri(value), end: i + 1 };
}
