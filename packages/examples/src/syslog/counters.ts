/**
 * The app's counters: kept per worker process, reported to the supervisor side,
 * summed there per worker slot and exposed on /metrics.
 */
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
  /** Records lost to an I/O error (logged). */
  writeErrors: number;
}

export const COUNTER_NAMES = ['messages', 'rfc5424', 'rfc3164', 'unknown', 'malformed', 'notUtf8', 'written', 'writtenBytes', 'writeErrors'] as const satisfies readonly (keyof SyslogCounters)[];

export function newSyslogCounters(): SyslogCounters {
  return { messages: 0, rfc5424: 0, rfc3164: 0, unknown: 0, malformed: 0, notUtf8: 0, written: 0, writtenBytes: 0, writeErrors: 0 };
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

  /** Prometheus text exposition of the counters, plus rotation figures when writing a file. */
  prometheus(file?: { rotations: number; bytes: number }): string {
    const rows = [...this.byWorker().entries()];
    const lines: string[] = [];
    const metric = (name: string, help: string, type: 'counter' | 'gauge', samples: [string, number][]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
    };
    metric('shardgram_syslog_messages_total', 'Syslog datagrams received, by worker and format.', 'counter',
      rows.flatMap(([w, c]) => (['rfc5424', 'rfc3164', 'unknown'] as const).map((f): [string, number] => [`{worker="${w}",format="${f}"}`, c[f]])));
    metric('shardgram_syslog_malformed_total', 'Datagrams stored as malformed: text, bytes in base64 and the parse error.', 'counter',
      rows.map(([w, c]) => [`{worker="${w}"}`, c.malformed]));
    metric('shardgram_syslog_not_utf8_total', 'Datagrams whose bytes are not valid UTF-8 (stored with their bytes in base64).', 'counter',
      rows.map(([w, c]) => [`{worker="${w}"}`, c.notUtf8]));
    metric('shardgram_syslog_written_total', 'Records written.', 'counter', rows.map(([w, c]) => [`{worker="${w}"}`, c.written]));
    metric('shardgram_syslog_written_bytes_total', 'Bytes of records written.', 'counter', rows.map(([w, c]) => [`{worker="${w}"}`, c.writtenBytes]));
    metric('shardgram_syslog_write_errors_total', 'Records lost to an I/O error.', 'counter', rows.map(([w, c]) => [`{worker="${w}"}`, c.writeErrors]));
    if (file) {
      metric('shardgram_syslog_rotations_total', 'Size-based rotations of the output file.', 'counter', [['', file.rotations]]);
      metric('shardgram_syslog_file_bytes', 'Size of the current output file.', 'gauge', [['', file.bytes]]);
    }
    return `${lines.join('\n')}\n`;
  }
}
