/**
 * The stored record: one JSON object per line, with what was parsed, who sent it,
 * which worker received it, and — when the text alone cannot give back the datagram
 * (malformed, or not UTF-8) — the exact bytes in base64.
 */
import { parseSyslog, type ParsedSyslog } from './parse.js';

/**
 * What was parsed (everything of ParsedSyslog but `utf8`, which `raw` stands for),
 * with who sent it, which worker received it, and the exact bytes when needed.
 */
export interface SyslogRecord extends Omit<ParsedSyslog, 'utf8'> {
  /** When the worker received the datagram (ISO 8601, UTC). */
  receivedAt: string;
  /** Index of the worker (socket of the group) that received it. */
  worker: number;
  workerPid: number;
  senderAddress: string;
  senderPort: number;
  /** Datagram length in bytes. */
  bytes: number;
  /** The datagram's exact bytes in base64, when it is malformed or not valid UTF-8; else null. */
  raw: string | null;
}

/** Where and by whom a datagram was received. */
export interface Reception {
  receivedAt: Date;
  worker: number;
  workerPid: number;
  senderAddress: string;
  senderPort: number;
}

// Date#toISOString costs about half a microsecond: reuse it within a millisecond.
let lastMs = NaN;
let lastIso = '';
function isoOf(d: Date): string {
  const ms = d.getTime();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = d.toISOString();
  }
  return lastIso;
}

export function toRecord(datagram: Buffer, at: Reception, parsed: ParsedSyslog = parseSyslog(datagram, at.receivedAt)): SyslogRecord {
  // Built in one literal so every record has the same keys in the same order.
  return {
    receivedAt: isoOf(at.receivedAt),
    worker: at.worker,
    workerPid: at.workerPid,
    senderAddress: at.senderAddress,
    senderPort: at.senderPort,
    bytes: datagram.length,
    format: parsed.format,
    pri: parsed.pri,
    facility: parsed.facility,
    severity: parsed.severity,
    version: parsed.version,
    timestamp: parsed.timestamp,
    hostname: parsed.hostname,
    appName: parsed.appName,
    procId: parsed.procId,
    msgId: parsed.msgId,
    structuredData: parsed.structuredData,
    message: parsed.message,
    error: parsed.error,
    raw: parsed.error !== null || !parsed.utf8 ? datagram.toString('base64') : null,
  };
}

/** Characters JSON.stringify writes otherwise than as themselves: `"`, `\\`, controls, and lone surrogates (checked by JSON.stringify itself). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON, as JSON.stringify writes it; the common case (nothing to escape) without its machinery. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

const strOrNull = (s: string | null): string => (s === null ? 'null' : str(s));

/** Structured data as JSON.stringify writes it: own keys in Object.keys order, values a string or a list of strings. */
function sdJson(sd: NonNullable<SyslogRecord['structuredData']>): string {
  let out = '{';
  let first = true;
  for (const id of Object.keys(sd)) {
    const params = sd[id]!;
    out += `${first ? '' : ','}${str(id)}:{`;
    first = false;
    let firstParam = true;
    for (const name of Object.keys(params)) {
      const v = params[name]!;
      out += `${firstParam ? '' : ','}${str(name)}:${typeof v === 'string' ? str(v) : `[${v.map(str).join(',')}]`}`;
      firstParam = false;
    }
    out += '}';
  }
  return `${out}}`;
}

/**
 * One line of the output: the record as JSON (no raw line break inside) and `\n`.
 * Written by hand for the record's fixed shape: the same text as `JSON.stringify(record)`
 * (a test checks it on random and real records), for about two thirds of its cost.
 */
export function recordLine(r: SyslogRecord): string {
  return (
    `{"receivedAt":${str(r.receivedAt)},"worker":${r.worker},"workerPid":${r.workerPid},"senderAddress":${str(r.senderAddress)},` +
    `"senderPort":${r.senderPort},"bytes":${r.bytes},"format":${str(r.format)},"pri":${r.pri},"facility":${strOrNull(r.facility)},` +
    `"severity":${strOrNull(r.severity)},"version":${r.version},"timestamp":${strOrNull(r.timestamp)},"hostname":${strOrNull(r.hostname)},` +
    `"appName":${strOrNull(r.appName)},"procId":${strOrNull(r.procId)},"msgId":${strOrNull(r.msgId)},` +
    `"structuredData":${r.structuredData === null ? 'null' : sdJson(r.structuredData)},"message":${strOrNull(r.message)},` +
    `"error":${strOrNull(r.error)},"raw":${strOrNull(r.raw)}}\n`
  );
}
