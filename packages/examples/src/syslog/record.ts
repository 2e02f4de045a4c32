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

/** One line of the output: the record as JSON (no raw line break inside) and `\n`. */
export function recordLine(record: SyslogRecord): string {
  return `${JSON.stringify(record)}\n`;
}
