/**
 * DogStatsD events and service checks (the two line kinds that are not metrics), as
 * the Datadog agent parses them (comp/dogstatsd/server/parse_events.go,
 * parse_service_checks.go):
 *
 *   _e{<title length>,<text length>}:<title>|<text>[|d:<ts>][|h:<host>][|k:<aggregation key>]
 *        [|p:normal|low][|s:<source type>][|t:info|warning|error|success][|#tags][|c:…][|e:…][|card:…]
 *   _sc|<name>|<status 0-3>[|d:<ts>][|h:<host>][|#tags][|c:…][|e:…][|card:…][|m:<message>]
 *
 * Title and text are cut by their lengths (so they may hold "|"); the lengths are
 * UTF-8 bytes, as the agent counts them; when they do not fit in bytes but do in
 * UTF-16 code units (the npm hot-shots client counts those), those are used. In title
 * and text `\n` stands for a line break. Blanks in the text count (the line is not
 * trimmed); blanks after the text are dropped, as the agent ignores them. An optional field with an invalid value
 * (`p:urgent`, `d:abc`) or an unknown one is ignored and counted, as the agent ignores
 * it; a bad header, title, status or a missing field makes the line bad.
 */

export type AlertType = 'info' | 'warning' | 'error' | 'success';
export type ServiceCheckStatus = 'ok' | 'warning' | 'critical' | 'unknown';

export const ALERT_TYPES: readonly AlertType[] = ['info', 'warning', 'error', 'success'];
/** By the number sent: 0 ok, 1 warning, 2 critical, 3 unknown. */
export const SERVICE_CHECK_STATUSES: readonly ServiceCheckStatus[] = ['ok', 'warning', 'critical', 'unknown'];

export interface DogEvent {
  title: string;
  text: string;
  /** Unix seconds (`d:`), or null. */
  timestamp: number | null;
  hostname: string | null;
  aggregation_key: string | null;
  priority: 'normal' | 'low';
  source_type: string | null;
  alert_type: AlertType;
  /** The tags as sent (`k:v` or `k`). */
  tags: string[];
}

export interface ServiceCheck {
  name: string;
  status: ServiceCheckStatus;
  timestamp: number | null;
  hostname: string | null;
  message: string | null;
  tags: string[];
}

export type DogParse<T> = { ok: true; value: T; ignoredFields: number } | { ok: false; reason: string };

const INT = /^-?\d{1,15}$/;

function tagList(raw: string): string[] {
  return raw === '' ? [] : raw.split(',').filter((t) => t !== '');
}

/** Origin-detection fields the agent reads and this receiver drops (they are not ignored as unknown). */
function isOriginField(f: string): boolean {
  return f.startsWith('c:') || f.startsWith('e:') || f.startsWith('card:');
}

const unescapeText = (s: string): string => s.replace(/\\n/g, '\n');

/** Spaces and tabs at the start. */
const LEADING_BLANKS = /^[ \t]+/;

/**
 * What follows the text: "" or `|fields…`. Blanks right after the text are dropped,
 * alone or before the fields (the agent skips the byte after the text and reads the
 * blanks as an optional field it does not know, and ignores it); anything else means
 * the lengths did not fit (null).
 */
function afterText(rest: string): string | null {
  if (rest === '' || rest.charCodeAt(0) === 0x7c /* | */) return rest;
  const m = LEADING_BLANKS.exec(rest);
  const after = rest.slice(m ? m[0].length : 0);
  return m && (after === '' || after.charCodeAt(0) === 0x7c) ? after : null;
}

/** Title and text cut by their lengths in UTF-8 bytes. */
function cutByBytes(body: string, tl: number, xl: number): { title: string; text: string; rest: string } | null {
  const b = Buffer.from(body, 'utf8');
  if (b.length < tl + 1 + xl || b[tl] !== 0x7c /* | */) return null;
  const rest = afterText(b.toString('utf8', tl + 1 + xl));
  if (rest === null) return null;
  return { title: b.toString('utf8', 0, tl), text: b.toString('utf8', tl + 1, tl + 1 + xl), rest };
}

/** The same in UTF-16 code units. */
function cutByUnits(body: string, tl: number, xl: number): { title: string; text: string; rest: string } | null {
  if (body.length < tl + 1 + xl || body.charCodeAt(tl) !== 0x7c) return null;
  const rest = afterText(body.slice(tl + 1 + xl));
  if (rest === null) return null;
  return { title: body.slice(0, tl), text: body.slice(tl + 1, tl + 1 + xl), rest };
}

/** Parses a line starting `_e{`. */
export function parseEvent(line: string): DogParse<DogEvent> {
  const m = /^_e\{(\d{1,9}),(\d{1,9})\}:/.exec(line);
  if (!m) return { ok: false, reason: 'event header is not _e{<title length>,<text length>}:' };
  const tl = Number(m[1]);
  const xl = Number(m[2]);
  if (tl === 0) return { ok: false, reason: 'event title is empty' };
  const body = line.slice(m[0].length);
  const cut = cutByBytes(body, tl, xl) ?? cutByUnits(body, tl, xl);
  if (!cut) return { ok: false, reason: `event title and text do not fit the lengths ${tl},${xl}` };
  const e: DogEvent = {
    title: unescapeText(cut.title),
    text: unescapeText(cut.text),
    timestamp: null,
    hostname: null,
    aggregation_key: null,
    priority: 'normal',
    source_type: null,
    alert_type: 'info',
    tags: [],
  };
  let ignored = 0;
  const fields = cut.rest === '' ? [] : cut.rest.slice(1).split('|');
  for (const f of fields) {
    const v = f.slice(2);
    if (f.startsWith('d:') && INT.test(v)) e.timestamp = Number(v);
    else if (f.startsWith('h:')) e.hostname = v;
    else if (f.startsWith('k:')) e.aggregation_key = v;
    else if (f.startsWith('p:') && (v === 'normal' || v === 'low')) e.priority = v;
    else if (f.startsWith('s:')) e.source_type = v;
    else if (f.startsWith('t:') && (ALERT_TYPES as readonly string[]).includes(v)) e.alert_type = v as AlertType;
    else if (f.startsWith('#')) e.tags = tagList(f.slice(1));
    else if (!isOriginField(f)) ignored++;
  }
  return { ok: true, value: e, ignoredFields: ignored };
}

/** Parses a line starting `_sc|`. */
export function parseServiceCheck(line: string): DogParse<ServiceCheck> {
  const fields = line.split('|');
  if (fields.length < 3) return { ok: false, reason: 'service check needs _sc|<name>|<status>' };
  const name = fields[1]!;
  if (name === '') return { ok: false, reason: 'service check name is empty' };
  const st = fields[2]!;
  const status = st.length === 1 ? SERVICE_CHECK_STATUSES[st.charCodeAt(0) - 48] : undefined;
  if (status === undefined) return { ok: false, reason: `service check status "${st}" is not 0, 1, 2 or 3` };
  const sc: ServiceCheck = { name, status, timestamp: null, hostname: null, message: null, tags: [] };
  let ignored = 0;
  for (let i = 3; i < fields.length; i++) {
    const f = fields[i]!;
    const v = f.slice(2);
    if (f.startsWith('d:') && INT.test(v)) sc.timestamp = Number(v);
    else if (f.startsWith('h:')) sc.hostname = v;
    else if (f.startsWith('m:')) sc.message = v;
    else if (f.startsWith('#')) sc.tags = tagList(f.slice(1));
    else if (!isOriginField(f)) ignored++;
  }
  return { ok: true, value: sc, ignoredFields: ignored };
}
