/** What the app's workers and its supervisor side tell each other (through the app IPC channel). */
import type { FileId } from './writer.js';
import type { SyslogCounters } from './counters.js';

export type ToSyslogSupervisor =
  /** Every 500 ms, after a reopen, and at a graceful stop (`final`): counters and which file the worker appends to. */
  | { t: 'syslog.status'; pid: number; file: FileId | null; counters: SyslogCounters; final: boolean }
  /** The file reached maxBytes (seen by a worker before the supervisor's own check). */
  | { t: 'syslog.full'; pid: number; file: FileId }
  /** Records for standard output (no out= file): whole lines. */
  | { t: 'syslog.lines'; text: string };

export type ToSyslogWorker =
  /** The path may name a new file: reopen it if so, then send a status. */
  { t: 'syslog.reopen' };

function tagged(m: unknown): m is { t: unknown } {
  return typeof m === 'object' && m !== null && 't' in m;
}

export function isToSyslogSupervisor(m: unknown): m is ToSyslogSupervisor {
  return tagged(m) && (m.t === 'syslog.status' || m.t === 'syslog.full' || m.t === 'syslog.lines');
}

export function isToSyslogWorker(m: unknown): m is ToSyslogWorker {
  return tagged(m) && m.t === 'syslog.reopen';
}
