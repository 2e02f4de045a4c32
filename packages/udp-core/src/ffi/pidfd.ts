/**
 * A handle on another process that survives its pid being reused: a pidfd
 * (pidfd_open(2)), which polls readable once that process has exited. The two sides
 * of a hand-over hold one on each other, to tell "it died" from "it is silent".
 */
import { readFileSync } from 'node:fs';
import { POLLFD_EVENTS, POLLFD_FD, POLLFD_REVENTS, POLLFD_SIZE, POLLIN } from './kernel.js';
import { libc } from './libc.js';

export class ProcessHandle {
  private fd: number;

  private constructor(
    readonly pid: number,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** A handle on `pid`, or undefined where the kernel or libc has no pidfd (Linux < 5.3, glibc < 2.36) or the process is gone. */
  static open(pid: number): ProcessHandle | undefined {
    const fd = libc().pidfdOpen(pid);
    return fd >= 0 ? new ProcessHandle(pid, fd) : undefined;
  }

  /** Whether the process has exited (a zombie counts: it holds no descriptor any more). */
  exited(waitMs = 0): boolean {
    if (this.fd < 0) return true;
    const p = Buffer.alloc(POLLFD_SIZE);
    p.writeInt32LE(this.fd, POLLFD_FD);
    p.writeInt16LE(POLLIN, POLLFD_EVENTS);
    const n = libc().poll(p, 1, waitMs);
    return n > 0 && (p.readInt16LE(POLLFD_REVENTS) & POLLIN) !== 0;
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}

/**
 * Whether `pid` has exited, judged through `handle` where there is one, else by
 * /proc (a pid that is gone or a zombie). A process whose connection just closed may
 * take a moment to finish exiting: `waitMs` allows for that.
 */
export function hasExited(pid: number, handle: ProcessHandle | undefined, waitMs: number): boolean {
  if (handle) return handle.exited(waitMs);
  const end = Date.now() + waitMs;
  for (;;) {
    let gone: boolean;
    try {
      gone = / Z /.test(readStat(pid));
    } catch {
      gone = true;
    }
    if (gone || Date.now() >= end) return gone;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

function readStat(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 1);
}
