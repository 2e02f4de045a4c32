/**
 * BSD syslog (RFC 3164) after the PRI, as senders really write it:
 *
 *   [TIMESTAMP SP [HOSTNAME SP]] [TAG[ "[" PID "]" ] ":" [SP]] MSG
 *
 * RFC 3164 is a description of practice rather than a grammar, so this parser never
 * fails: what it cannot place is message text. It accepts
 * - the RFC timestamp `Mmm dd hh:mm:ss` with the day space-padded (`Nov  7`), zero-padded
 *   (`Nov 07`) or not padded (`Nov 7`); a fraction of a second (`.123`, any number of
 *   digits); a year before the time (`Nov 7 2024 12:00:00`) or after it
 *   (`Apr 15 21:28:13 2007`, only from 1970 to the receiver's next year: another number
 *   there is left to the message); Cisco's `*`/`.` sync markers and a trailing `:` with
 *   or without a common time-zone name (`18:48:50.483 UTC:`, its offset kept; a name of
 *   several zones, `CST:`, is left to the message); a date that does not exist (`Feb 30`)
 *   is not a timestamp;
 * - an ISO 8601 / RFC 3339 timestamp (rsyslog's forwarding format), with `T` or a space;
 * - no timestamp at all (then no hostname either: the rest is tag and message);
 * - no hostname after the timestamp (the next word is a tag: it ends in `:` or `[pid]`;
 *   or it is the four digits that were not a plausible year: they stay in the message);
 *   a word with colons is a hostname only when it is an IPv6 address (`12:00:01` is not);
 * - a tag with or without `[pid]`, with or without the `:`, and up to 128 characters; an
 *   empty tag (`host : msg`, Cisco ASA and NX-OS) gives no app name.
 */

import { isIPv6 } from 'node:net';

export interface Rfc3164Fields {
  /**
   * ISO 8601. A BSD timestamp has no year and no zone: the year is inferred (the
   * receiver's, or the one before when that would put the message more than a month
   * in the future), and the result has no offset (it is the sender's local time),
   * unless a zone name of one offset follows the time (`UTC:` gives `Z`, `CET:`
   * `+01:00`). An impossible date (`Feb 30`) is not a timestamp. An ISO timestamp is
   * kept as sent. null when there was none.
   */
  timestamp: string | null;
  hostname: string | null;
  /** The TAG, e.g. `sshd` of `sshd[42]:`. */
  appName: string | null;
  /** The PID of `tag[pid]`. */
  procId: string | null;
  /** Cisco IOS message counter (and sequence number) as `{ meta: { sequenceId } }`, else null. */
  structuredData: Record<string, Record<string, string | string[]>> | null;
  message: string;
}

const MONTHS: Record<string, number> = {
  jan: 1,
  feb: 2,
  mar: 3,
  apr: 4,
  may: 5,
  jun: 6,
  jul: 7,
  aug: 8,
  sep: 9,
  oct: 10,
  nov: 11,
  dec: 12,
};

// Both sticky: they match at `lastIndex` only. The lookahead makes sure the timestamp is a whole word.
/**
 * Zone names Cisco-style senders put after the time (`18:48:50.483 UTC:`), with the
 * offset each one names (a list, so an upper-case tag, `CRON:`, stays a tag). null: the
 * name means more than one zone (CST is US Central or China, IST India, Ireland or
 * Israel, BST British Summer or Bangladesh): it stays in the message.
 */
const ZONE_OFFSETS: Record<string, string | null> = {
  UTC: 'Z',
  GMT: 'Z',
  WET: '+00:00',
  WEST: '+01:00',
  CET: '+01:00',
  CEST: '+02:00',
  EET: '+02:00',
  EEST: '+03:00',
  MSK: '+03:00',
  HKT: '+08:00',
  SGT: '+08:00',
  AWST: '+08:00',
  JST: '+09:00',
  KST: '+09:00',
  ACST: '+09:30',
  AEST: '+10:00',
  AEDT: '+11:00',
  NZST: '+12:00',
  NZDT: '+13:00',
  HST: '-10:00',
  AKST: '-09:00',
  AKDT: '-08:00',
  PST: '-08:00',
  PDT: '-07:00',
  MST: '-07:00',
  MDT: '-06:00',
  EST: '-05:00',
  EDT: '-04:00',
  CST: null,
  CDT: null,
  IST: null,
  BST: null,
};
const ZONES = Object.keys(ZONE_OFFSETS).join('|');
/** Any number of fraction digits, as for an ISO time (syslog-ng reads them all). */
const BSD_TIME = `[*.]?([A-Za-z]{3}) {1,2}(\\d{1,2}) (?:(\\d{4}) )?(\\d{2}):(\\d{2}):(\\d{2})(\\.\\d*)?`;
/** The zone is the last group: 9 in BSD_TS, 8 in BSD_TS_NO_YEAR. */
const BSD_END = `(?:(?: (${ZONES}))?:)?(?= |$)`;
const BSD_TS = new RegExp(`${BSD_TIME}(?: (\\d{4})(?=[ :]|$))?${BSD_END}`, 'y');
/** The same without a year after the time: for when the number there is not a plausible year. */
const BSD_TS_NO_YEAR = new RegExp(`${BSD_TIME}${BSD_END}`, 'y');
/** A year after the time is one from 1970 to the receiver's next year; another number there is message text. */
const FIRST_YEAR = 1970;

const ISO_TS = /(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?(?= |$)/y;
/** Cisco IOS: message counter (maybe empty), sequence number, hostname, each followed by ":" and spaces. */
const CISCO_PREFIX = /(\d{0,10}): +(?:(\d{1,10}): +)?(?:([A-Za-z0-9._-]{1,255}): +)?/y;
/** A tag that is really part of a time or a date: `2006-11-10T10`, `10` of `10:43:21`. */
const TIMEISH_TAG = /^(?:\d{4}-\d{2}-\d{2}(?:[T ]\d{2})?|\d{1,2})$/;
/** `tag:` or `tag[pid]:`; what follows the colon is message (one SP after it is dropped). */
const TAG_COLON = /([^\s[\]:]{1,128})(?:\[([^\]\s]{0,128})\])?:/y;
/** `tag[pid]` followed by SP or the end. */
const TAG_PID = /([^\s[\]:]{1,128})\[([^\]\s]{0,128})\](?= |$)/y;
const HOSTNAME = /^[A-Za-z0-9._-]{1,255}$/;
/** Looks like IPv6; then isIPv6 decides (`12:00:01`, a time, is not an address). */
const IPV6ISH = /^[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

interface Stamp {
  iso: string;
  end: number;
  /** Four digits follow that are not a plausible year: they may be a year or a host, so they stay message text. */
  numberAfter?: true;
  /** A zone name of several zones follows (`CST:`): neither host nor tag, it starts the message. */
  zoneAfter?: true;
}

/** Days in a month (1–12) of a year: a date past them (`Feb 30`) is not a timestamp. */
function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function bsdTimestamp(text: string, at: number, now: Date): Stamp | null {
  let re = BSD_TS;
  re.lastIndex = at;
  let m = re.exec(text);
  let numberAfter = false;
  let zoneGroup = 9;
  if (m?.[8] !== undefined) {
    const y = Number(m[8]);
    if (y < FIRST_YEAR || y > now.getFullYear() + 1) {
      // `Apr 15 21:28:13 1024 bytes free`: the time ends before the number.
      re = BSD_TS_NO_YEAR;
      re.lastIndex = at;
      m = re.exec(text);
      numberAfter = true;
      zoneGroup = 8;
    }
  }
  if (!m) return null;
  const month = MONTHS[m[1]!.toLowerCase()];
  const day = Number(m[2]);
  const [hour, minute, second] = [Number(m[4]), Number(m[5]), Number(m[6])];
  if (month === undefined || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let year: number;
  const given = m[3] ?? m[8];
  if (given !== undefined) {
    year = Number(given);
  } else {
    // The receiver's year, unless that puts the message more than 31 days ahead (a
    // December message read in January). Compared as local wall-clock times.
    year = now.getFullYear();
    const wall = Date.UTC(year, month - 1, day, hour, minute, second);
    const nowWall = Date.UTC(now.getFullYear(), now.getMonth(), now.getDate(), now.getHours(), now.getMinutes(), now.getSeconds());
    if (wall - nowWall > 31 * 86_400_000) year--;
  }
  if (day > daysIn(year, month)) return null;
  const frac = m[7] !== undefined && m[7].length > 1 ? m[7] : ''; // a bare "." (syslog-ng accepts it) adds nothing
  let iso = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:${pad(second)}${frac}`;
  const end = re.lastIndex;
  const zone = m[zoneGroup];
  if (zone !== undefined) {
    const offset = ZONE_OFFSETS[zone]!;
    // A zone name of several zones: the time ends before it, and `CST: …` stays in the message.
    if (offset === null) return { iso, end: text.lastIndexOf(' ', end - 1), zoneAfter: true };
    iso += offset;
  }
  return numberAfter ? { iso, end, numberAfter } : { iso, end };
}

function isoTimestamp(text: string, at: number): Stamp | null {
  ISO_TS.lastIndex = at;
  const m = ISO_TS.exec(text);
  if (!m) return null;
  const [month, day, hour, minute, second] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(Number(m[1]), month) || hour > 23 || minute > 59 || second > 60) return null;
  return { iso: m[0], end: ISO_TS.lastIndex };
}

function tagAt(text: string, at: number): { appName: string; procId: string | null; end: number } | null {
  TAG_COLON.lastIndex = at;
  let m = TAG_COLON.exec(text);
  if (!m) {
    TAG_PID.lastIndex = at;
    m = TAG_PID.exec(text);
    if (!m) return null;
  }
  const end = m.index + m[0].length;
  // `10:43:21` or `2006-11-10T10:43` after a broken timestamp: not a tag, leave it in the message.
  if (TIMEISH_TAG.test(m[1]!) && /^\d{2}[:.]/.test(text.slice(end, end + 3))) return null;
  return { appName: m[1]!, procId: m[2] ? m[2] : null, end };
}

/**
 * An empty tag after the time and host (Cisco ASA, NX-OS: `host : %ASA-4-713903: …`), as
 * rsyslog and syslog-ng read it: no app name. Without a host, only `: ` or a last `:`
 * (rsyslog's empty tag); `:x` there is message text.
 */
function emptyTagAt(text: string, i: number, afterHost: boolean): boolean {
  if (text.charCodeAt(i) !== 0x3a /* : */) return false;
  return afterHost || i + 1 === text.length || text.charCodeAt(i + 1) === 0x20;
}

function skipSpaces(text: string, i: number): number {
  while (text.charCodeAt(i) === 0x20) i++;
  return i;
}

/** Parses a BSD syslog message from `start` (just after the PRI, or 0 when it has none). */
function stampAt(text: string, at: number, now: Date): Stamp | null {
  return bsdTimestamp(text, at, now) ?? isoTimestamp(text, at);
}

export function parseRfc3164(text: string, start = 0, now: Date = new Date()): Rfc3164Fields {
  let i = start;
  let timestamp: string | null = null;
  let hostname: string | null = null;
  let structuredData: Rfc3164Fields['structuredData'] = null;
  // Spaces after the PRI, then maybe Cisco's counter / sequence / host prefix, then the timestamp.
  const from = skipSpaces(text, i);
  let stamp = stampAt(text, from, now);
  if (!stamp) {
    CISCO_PREFIX.lastIndex = from;
    const c = CISCO_PREFIX.exec(text);
    const after = c ? stampAt(text, CISCO_PREFIX.lastIndex, now) : null;
    if (c && after) {
      stamp = after;
      const seq = [c[1]!, c[2]].filter((x): x is string => x !== undefined && x !== '');
      if (seq.length > 0) structuredData = { meta: { sequenceId: seq.length === 1 ? seq[0]! : seq } };
      if (c[3] !== undefined) hostname = c[3];
    }
  }
  if (stamp) {
    timestamp = stamp.iso;
    i = skipSpaces(text, stamp.end);
    // HOSTNAME, unless the next word is already the tag (`sshd:`, `sshd[42]:`, `sshd[42]`).
    // A last word is message, not a hostname.
    const wordEnd = text.indexOf(' ', i);
    if (hostname === null && wordEnd > i) {
      const word = text.slice(i, wordEnd);
      const ipv6 = IPV6ISH.test(word) && isIPv6(word);
      if (!stamp.numberAfter && !stamp.zoneAfter && (ipv6 || (HOSTNAME.test(word) && !tagAt(text, i)))) {
        hostname = word;
        i = skipSpaces(text, wordEnd);
      }
    }
  }
  let appName: string | null = null;
  let procId: string | null = null;
  // No timestamp: spaces after the PRI still come before a tag (`<15> openvpn[2499]: …`).
  if (!stamp && from > i && tagAt(text, from)) i = from;
  const tag = stamp?.zoneAfter ? null : tagAt(text, i);
  if (tag) {
    appName = tag.appName;
    procId = tag.procId;
    i = tag.end;
    if (text.charCodeAt(i) === 0x20) i++;
  } else if (stamp && !stamp.zoneAfter && emptyTagAt(text, i, hostname !== null)) {
    i++;
    if (text.charCodeAt(i) === 0x20) i++;
  }
  return { timestamp, hostname, appName, procId, structuredData, message: text.slice(i) };
}
