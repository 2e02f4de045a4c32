/**
 * Where a worker puts its records: the shared file (O_APPEND; the records of one read
 * batch go out with one write(2) when the engine says the batch is done, so a record
 * is in the file before the next read), or, without a file, the supervisor's standard
 * output (batched through the app IPC channel; the workers' own stdout is the
 * supervisor's log).
 *
 * A record is either a whole line in the file and counted written, or not in the file
 * and counted failed: a batch whose write fails is written again record by record, as
 * single records were before batching (the records a torn batch left whole in the file
 * are counted written, the one it cut is the torn one).
 */
import type { AppContext } from '@shardgram/udp-core';
import type { ToSyslogSupervisor } from './messages.js';
import { AppendWriter, WriteFailure, type FileId } from './writer.js';

/** Pending bytes past which a batch is written at once, without waiting for its end. */
export const FLUSH_BYTES = 256 * 1024;

/** What a flush did: records written (and their bytes), and the ones that failed, by cause. */
export interface FlushOutcome {
  written: number;
  bytes: number;
  failed: { error: unknown; records: number }[];
}

const NOTHING: FlushOutcome = Object.freeze({ written: 0, bytes: 0, failed: Object.freeze([]) as unknown as FlushOutcome['failed'] });

export interface RecordSink {
  /** Takes one record's line (ending in `\n`); it goes out at the next `flush`. */
  add(line: string): void;
  /** Bytes (UTF-16 units) taken since the last flush. */
  readonly pendingSize: number;
  /** Writes (file) or hands on (stdout) what was added since the last flush. Never throws. */
  flush(): FlushOutcome;
  /** The file written to, or null (standard output). */
  readonly fileId: FileId | null;
  /** The supervisor rotated the file: move to the new one. Returns whether it moved. */
  reopen(): boolean;
  /** Everything flushed, written and durable (file) or handed on (stdout). */
  close(): void;
}

export class FileSink implements RecordSink {
  private readonly writer: AppendWriter;
  private sinceCheck = 0;
  private reported = false;
  private readonly checkEvery: number;
  private pending: string[] = [];
  pendingSize = 0;

  constructor(
    path: string,
    private readonly maxBytes: number,
    private readonly ctx: Pick<AppContext, 'send' | 'pid' | 'log'>,
  ) {
    this.writer = new AppendWriter(path);
    // Check the size after about 1/16 of maxBytes written by this worker (4 KiB to 256 KiB).
    this.checkEvery = Math.min(256 * 1024, Math.max(4096, Math.floor(maxBytes / 16)));
  }

  get fileId(): FileId {
    return this.writer.fileId;
  }

  add(line: string): void {
    this.pending.push(line);
    this.pendingSize += line.length;
  }

  flush(): FlushOutcome {
    const lines = this.pending;
    if (lines.length === 0) return NOTHING;
    this.pending = [];
    this.pendingSize = 0;
    const data = Buffer.from(lines.length === 1 ? lines[0]! : lines.join(''), 'utf8');
    try {
      this.writer.write(data);
      this.wrote(data.length);
      return { written: lines.length, bytes: data.length, failed: [] };
    } catch (error) {
      if (lines.length === 1) return { written: 0, bytes: 0, failed: [{ error, records: 1 }] };
      return this.oneByOne(lines, error);
    }
  }

  /** After a batch's write failed: what it left whole in the file, then each record on its own. */
  private oneByOne(lines: string[], error: unknown): FlushOutcome {
    const out: FlushOutcome = { written: 0, bytes: 0, failed: [] };
    let i = 0;
    if (error instanceof WriteFailure && error.torn) {
      // The first `kept` bytes stayed: the whole lines among them are written, the next one is the torn one.
      let at = 0;
      for (; i < lines.length; i++) {
        const len = Buffer.byteLength(lines[i]!);
        if (at + len > error.kept) break;
        at += len;
        out.written++;
        out.bytes += len;
      }
      if (i < lines.length) {
        out.failed.push({ error, records: 1 });
        i++;
      }
      this.wrote(out.bytes);
    }
    for (; i < lines.length; i++) {
      const data = Buffer.from(lines[i]!, 'utf8');
      try {
        this.writer.write(data);
        this.wrote(data.length);
        out.written++;
        out.bytes += data.length;
      } catch (err) {
        out.failed.push({ error: err, records: 1 });
      }
    }
    return out;
  }

  /** Counts bytes written towards the size check that tells the supervisor the file is full. */
  private wrote(bytes: number): void {
    if (this.maxBytes <= 0) return;
    this.sinceCheck += bytes;
    if (this.sinceCheck < this.checkEvery) return;
    this.sinceCheck = 0;
    if (!this.reported && this.writer.size() >= this.maxBytes) {
      this.reported = true; // once per file
      this.ctx.send({ t: 'syslog.full', pid: this.ctx.pid, file: this.writer.fileId } satisfies ToSyslogSupervisor);
    }
  }

  reopen(): boolean {
    const moved = this.writer.reopen();
    if (moved) this.reported = false;
    return moved;
  }

  close(): void {
    this.writer.close();
  }
}

/** Without a file: lines go to the supervisor, which writes them to its standard output. */
export class ForwardSink implements RecordSink {
  private buffered: string[] = [];
  private bufferedBytes = 0;
  private scheduled = false;
  /** Records and bytes taken since the last flush() (handed on, for the counters). */
  private taken = 0;
  private takenBytes = 0;
  pendingSize = 0;
  readonly fileId = null;

  constructor(private readonly ctx: Pick<AppContext, 'send'>) {}

  add(line: string): void {
    this.buffered.push(line);
    this.bufferedBytes += line.length;
    this.taken++;
    this.takenBytes += Buffer.byteLength(line);
    if (this.bufferedBytes >= 64 * 1024) this.send();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.send());
    }
  }

  /** The lines go to the supervisor once per event-loop turn (or per 64 KiB); this only counts them. */
  flush(): FlushOutcome {
    if (this.taken === 0) return NOTHING;
    const out = { written: this.taken, bytes: this.takenBytes, failed: [] };
    this.taken = 0;
    this.takenBytes = 0;
    return out;
  }

  reopen(): boolean {
    return false;
  }

  private send(): void {
    this.scheduled = false;
    if (!this.buffered.length) return;
    const text = this.buffered.join('');
    this.buffered = [];
    this.bufferedBytes = 0;
    this.ctx.send({ t: 'syslog.lines', text } satisfies ToSyslogSupervisor);
  }

  close(): void {
    this.send();
  }
}
