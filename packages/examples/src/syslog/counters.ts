/**
 * The app's counters: kept per worker process, reported to the supervisor side,
 * summed there per worker slot and exposed on /metrics.
 */
import { PromWriter } from '@shardgram/udp-core/prom';
import type { SyslogFormat } from './parse.js';

export interface SyslogCounters {
  /** Datagrams received (one record each). */
  messages: number;
  rfc5424: number;
  rfc3164: number;
  /** Datagrams with no recognizable start (empty, broken PRI). */
  unknown: number;
  /** Records with a parse error (any format); stored with their bytes. */
  malformed: number;
  /** Datagrams whose bytes are not valid UTF-8 (stored with their bytes too). */
  notUtf8: number;
  /** Records written to the file or handed on for standard output. */
  written: number;
  /** Bytes of those records. */
  writtenBytes: number;
  /** Records not written: an I/O error, a full disk (the partial record rolled back), a removed file that cannot be created again (logged, sampled). */
  writeErrors: number;
  /** Of those, records whose fragment could not be rolled back after a short write: a broken line is in the file. */
  torn: number;
}

export const COUNTER_NAMES = [
  'messages',
  'rfc5424',
  'rfc3164',
  'unknown',
  'malformed',
  'notUtf8',
  'written',
  'writtenBytes',
  'writeErrors',
  'torn',
] as const satisfies readonly (keyof SyslogCounters)[];

export function newSyslogCounters(): SyslogCounters {
  return { messages: 0, rfc5424: 0, rfc3164: 0, unknown: 0, malformed: 0, notUtf8: 0, written: 0, writtenBytes: 0, writeErrors: 0, torn: 0 };
}

export function countFormat(c: SyslogCounters, format: SyslogFormat): void {
  c[format]++;
}

function sum(a: SyslogCounters, b: SyslogCounters): SyslogCounters {
  const out = newSyslogCounters();
  for (const k of COUNTER_NAMES) out[k] = a[k] + b[k];
  return out;
}

/**
 * Sums the latest cumulative report of every worker process, by slot. A process's
 * last report stays counted after it exits (a worker killed with SIGKILL loses at
 * most its last 500 ms from here; its records are in the file).
 */
export class SyslogTotals {
  private readonly byPid = new Map<number, { index: number; counters: SyslogCounters }>();

  update(index: number, pid: number, counters: SyslogCounters): void {
    this.byPid.set(pid, { index, counters: { ...counters } });
  }

  byWorker(): Map<number, SyslogCounters> {
    const out = new Map<number, SyslogCounters>();
    for (const { index, counters } of this.byPid.values()) out.set(index, sum(out.get(index) ?? newSyslogCounters(), counters));
    return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
  }

  total(): SyslogCounters {
    let t = newSyslogCounters();
    for (const { counters } of this.byPid.values()) t = sum(t, counters);
    return t;
  }

  /** Prometheus text of the counters (through core's PromWriter), plus rotation figures when writing a file and what standard output lost. */
  prometheus(file?: { rotations: number; bytes: number }, stdoutUnwritten?: number): string {
    const rows = [...this.byWorker().entries()];
    const w = new PromWriter();
    const perWorker = (name: string, help: string, value: (c: SyslogCounters) => number): void => {
      w.family(name, 'counter', help);
      for (const [worker, c] of rows) w.sample(name, { worker }, value(c));
    };
    w.family('shardgram_syslog_messages_total', 'counter', 'Syslog datagrams received, by worker and format.');
    for (const [worker, c] of rows)
      for (const format of ['rfc5424', 'rfc3164', 'unknown'] as const) w.sample('shardgram_syslog_messages_total', { worker, format }, c[format]);
    perWorker('shardgram_syslog_malformed_total', 'Datagrams stored as malformed: text, bytes in base64 and the parse error.', (c) => c.malformed);
    perWorker('shardgram_syslog_not_utf8_total', 'Datagrams whose bytes are not valid UTF-8 (stored with their bytes in base64).', (c) => c.notUtf8);
    perWorker('shardgram_syslog_written_total', 'Records written.', (c) => c.written);
    perWorker('shardgram_syslog_written_bytes_total', 'Bytes of records written.', (c) => c.writtenBytes);
    perWorker(
      'shardgram_syslog_write_errors_total',
      'Records not written: an I/O error, a full disk (partial record rolled back), a removed output that cannot be created again.',
      (c) => c.writeErrors,
    );
    perWorker(
      'shardgram_syslog_torn_records_total',
      'Records cut by a short write whose fragment could not be rolled back (a broken line in the file).',
      (c) => c.torn,
    );
    if (file) {
      w.family('shardgram_syslog_rotations_total', 'counter', 'Size-based rotations of the output file.').sample(
        'shardgram_syslog_rotations_total',
        {},
        file.rotations,
      );
      w.family('shardgram_syslog_file_bytes', 'gauge', 'Size of the current output file.').sample('shardgram_syslog_file_bytes', {}, file.bytes);
    }
    if (stdoutUnwritten !== undefined) {
      w.family('shardgram_syslog_stdout_unwritten_total', 'counter', 'Records not written because standard output was closed (EPIPE).').sample(
        'shardgram_syslog_stdout_unwritten_total',
        {},
        stdoutUnwritten,
      );
    }
    return w.text();
  }
}
