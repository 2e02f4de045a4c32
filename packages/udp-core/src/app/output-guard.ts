/**
 * An output stream that may close under us (standard output piped into `head`, a
 * reader that went away): the first EPIPE (or other write error) stops that output
 * with one log line; later writes are counted, not attempted, and the process lives on.
 */
import type { Writable } from 'node:stream';

export interface GuardedOutput {
  /** Writes `text`, which holds `items` things (records, lines) for the count of what was lost. */
  write(text: string, items?: number): void;
  /** The stream failed: nothing more is written to it. */
  readonly closed: boolean;
  /** Items not written: in the write that failed, and every one after. */
  readonly unwritten: number;
}

/**
 * @param name what the output is, for the log line (e.g. "standard output")
 * @param consequence what stopping it means, for the log line (e.g. "records are only counted from now on")
 */
export function guardOutput(stream: Writable, name: string, log: (line: string) => void, consequence: string): GuardedOutput {
  let closed = false;
  let unwritten = 0;
  const close = (err: NodeJS.ErrnoException): void => {
    if (closed) return;
    closed = true;
    log(`${name} is closed (${err.code ?? err.message}): no longer writing to it; ${consequence}`);
  };
  stream.on('error', close);
  return {
    get closed() {
      return closed;
    },
    get unwritten() {
      return unwritten;
    },
    write(text, items = 1) {
      if (closed || stream.destroyed) {
        unwritten += items;
        return;
      }
      stream.write(text, (err) => {
        if (!err) return;
        unwritten += items;
        close(err);
      });
    },
  };
}
