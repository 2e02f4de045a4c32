/**
 * Lines of one control connection, in order, none missed: a reader made as soon as
 * the connection exists keeps every line, and its close, until they are asked for.
 * (A listener attached later would miss a close that came first: that is how a
 * new service once waited 60 s for an old one that had died.) Used by the control
 * server, its client, and both sides of a hand-over.
 */
import type net from 'node:net';

export type Next = { line: string } | { closed: true } | { timeout: true } | { tooLong: true };

export class LineReader {
  private buf = '';
  private readonly lines: string[] = [];
  private ended = false;
  private overflow = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly conn: net.Socket,
    maxLine: number,
  ) {
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.lines.push(line);
      }
      if (this.buf.length > maxLine) {
        // The reader says so (tooLong); what to answer and when to close is the caller's.
        this.overflow = true;
        this.buf = '';
      }
      this.notify();
    });
    conn.once('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  /** Whether the connection has closed (lines may still be waiting). */
  get closed(): boolean {
    return this.ended;
  }

  /** A line already here, without waiting. */
  take(): string | undefined {
    return this.lines.shift();
  }

  /**
   * The next line; or that the connection closed (every line before the close comes
   * first), that a line grew past the limit, or that `timeoutMs` passed with none.
   * A timeout is only said after the lines that had arrived by then were looked at: a
   * process that was stopped for a while wakes with its timers due and its lines
   * unread, and the lines win.
   */
  next(timeoutMs: number): Promise<Next> {
    return new Promise<Next>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): boolean => {
        const line = this.lines.shift();
        const r: Next | undefined = line !== undefined ? { line } : this.overflow ? { tooLong: true } : this.ended ? { closed: true } : undefined;
        if (!r) return false;
        if (timer) clearTimeout(timer);
        this.wake = undefined;
        resolve(r);
        return true;
      };
      if (settle()) return;
      this.wake = () => void settle();
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          // After the poll phase: lines already readable are read first.
          setImmediate(() => {
            if (this.wake && !settle()) {
              this.wake = undefined;
              resolve({ timeout: true });
            }
          });
        }, timeoutMs);
      }
    });
  }

  private notify(): void {
    this.wake?.();
  }

  /** Writes one JSON message as a line (nothing once the connection is gone). */
  send(message: object, then?: () => void): void {
    if (this.conn.destroyed) return;
    this.conn.write(`${JSON.stringify(message)}\n`, then ? () => then() : undefined);
  }
}
