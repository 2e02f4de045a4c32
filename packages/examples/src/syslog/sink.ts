/**
 * Where a worker puts its records: the shared file (O_APPEND, one write(2) per
 * record, before the message handler returns), or, without a file, the supervisor's
 * standard output (batched through the app IPC channel; the workers' own stdout is
 * the supervisor's log).
 */
import type { AppContext } from '@shardgram/udp-core';
import type { ToSyslogSupervisor } from './messages.js';
import { AppendWriter, type FileId } from './writer.js';

export interface RecordSink {
  /** Appends whole lines; returns the bytes taken. Throws on an I/O error (a `WriteFailure` for the file: nothing of the record was kept, unless `torn`). */
  write(lines: string): number;
  /** The file written to, or null (standard output). */
  readonly fileId: FileId | null;
  /** The supervisor rotated the file: move to the new one. Returns whether it moved. */
  reopen(): boolean;
  /** Everything written and durable (file) or handed on (stdout). */
  close(): void;
}

export class FileSink implements RecordSink {
  private readonly writer: AppendWriter;
  private sinceCheck = 0;
  private reported = false;
  private readonly checkEvery: number;

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

  write(lines: string): number {
    const bytes = this.writer.write(Buffer.from(lines, 'utf8'));
    if (this.maxBytes > 0) {
      this.sinceCheck += bytes;
      if (this.sinceCheck >= this.checkEvery) {
        this.sinceCheck = 0;
        if (!this.reported && this.writer.size() >= this.maxBytes) {
          this.reported = true; // once per file
          this.ctx.send({ t: 'syslog.full', pid: this.ctx.pid, file: this.writer.fileId } satisfies ToSyslogSupervisor);
        }
      }
    }
    return bytes;
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
  readonly fileId = null;

  constructor(private readonly ctx: Pick<AppContext, 'send'>) {}

  write(lines: string): number {
    this.buffered.push(lines);
    this.bufferedBytes += lines.length;
    if (this.bufferedBytes >= 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return Buffer.byteLength(lines);
  }

  reopen(): boolean {
    return false;
  }

  flush(): void {
    this.scheduled = false;
    if (!this.buffered.length) return;
    const text = this.buffered.join('');
    this.buffered = [];
    this.bufferedBytes = 0;
    this.ctx.send({ t: 'syslog.lines', text } satisfies ToSyslogSupervisor);
  }

  close(): void {
    this.flush();
  }
}
