/**
 * A worker's handle on the shared output file: opened with O_APPEND, so every write
 * lands at the current end of the file whichever process makes it; each call of
 * `write` is one write(2) of whole lines (one record, or a batch of them: sink.ts), so
 * lines of different workers never interleave (on a local file system the kernel
 * serializes writes to one inode).
 *
 * Whole lines or nothing: a short write (disk full, quota) is rolled back with
 * ftruncate to where the data began, and the data is reported as not written
 * (`WriteFailure`), so a torn fragment never stays for the next record to be glued to.
 * A file removed under the writer (its link count is 0 after a write) is detected at
 * that write: the data is written again to the file the path names now (created if
 * need be), or reported as not written when the path cannot be opened (its directory
 * is gone), and so is every later one until it can (tried at most every 100 ms).
 *
 * Rotation is the supervisor's (rotation.ts decides when, `rotateFiles` below does the
 * renames): it renames the file and asks every worker to `reopen`, which moves to the new file only if the path names another file
 * now, and makes sure what was written to the old one is on disk before closing it.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { describeError } from '@shardgram/udp-core';

/** `dev:ino`: which file a path or descriptor is, across renames. */
export type FileId = string;

// libuv adds O_CLOEXEC to every open. Read access: a short write's fragment is compared with the record before it is rolled back.
const FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT;
/** How often a writer whose file was removed tries to open the path again. */
const REOPEN_RETRY_MS = 100;
export const FILE_MODE = 0o640;

/** Opens `path` for appending (creating it), as every writer of the output file does. */
export function openAppend(path: string): number {
  return openSync(path, FLAGS, FILE_MODE);
}

export function fileIdOfFd(fd: number): FileId {
  const s = fstatSync(fd, { bigint: true });
  return `${s.dev}:${s.ino}`;
}

/** The file `path` names now, or null if none. */
export function fileIdOfPath(path: string): FileId | null {
  const s = statSync(path, { bigint: true, throwIfNoEntry: false });
  return s ? `${s.dev}:${s.ino}` : null;
}

/** A record that is not in the file (the caller counts it as a write error). */
export class WriteFailure extends Error {
  constructor(
    message: string,
    /** What the system said (ENOSPC, ENOENT, …), when it said something. */
    readonly code: string | undefined,
    /** A fragment of the record could not be rolled back: one broken line is in the file. */
    readonly torn = false,
    /** When torn: how many bytes of the data stay in the file (whole lines of a batch, then the broken one). */
    readonly kept = 0,
  ) {
    super(message);
    this.name = 'WriteFailure';
  }
}

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

export class AppendWriter {
  private fd: number;
  private id: FileId;
  /** The file was removed under us: the reason the path could not be opened again, and when that was last tried. */
  private removed: { error: WriteFailure; triedAt: number } | undefined;

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {
    this.fd = openAppend(path);
    this.id = fileIdOfFd(this.fd);
  }

  /** The file this writer appends to. */
  get fileId(): FileId {
    return this.id;
  }

  /**
   * Appends `data` (whole lines) with one write(2) and returns its length; throws a
   * `WriteFailure` when the record is not in the file (nothing of it is, unless `torn`).
   */
  write(data: Buffer): number {
    if (this.removed) this.openAgain();
    this.writeWhole(data);
    // The file was unlinked (its directory removed, or the file deleted): what was just written went nowhere.
    if (fstatSync(this.fd).nlink === 0) {
      this.removed = { error: new WriteFailure(`${this.path} was removed`, 'ENOENT'), triedAt: -Infinity };
      this.openAgain();
      this.writeWhole(data);
    }
    return data.length;
  }

  /** One write(2) of the whole record; a short one is rolled back (the record is then not written). */
  private writeWhole(data: Buffer): void {
    let n: number;
    try {
      n = writeSync(this.fd, data);
    } catch (err) {
      throw new WriteFailure(describeError(err), errCode(err));
    }
    if (n === data.length) return;
    // A regular file takes the whole buffer unless the disk is full or a quota is reached: the
    // first n bytes are at the end of the file. Cut them off, after checking they are ours.
    const end = fstatSync(this.fd).size;
    const tail = Buffer.alloc(n);
    const read = n > 0 ? readSync(this.fd, tail, 0, n, end - n) : 0;
    if (read === n && tail.equals(data.subarray(0, n))) {
      ftruncateSync(this.fd, end - n);
      throw new WriteFailure(`short write: ${n} of ${data.length} bytes (disk full?); the partial record was removed from the file`, 'ENOSPC');
    }
    throw new WriteFailure(
      `short write: ${n} of ${data.length} bytes (disk full?); another write followed it, so the partial record stays in the file as a broken line`,
      'ENOSPC',
      true,
      n,
    );
  }

  /** After a removal: opens the path again (at most every 100 ms), or throws why it cannot. */
  private openAgain(): void {
    const r = this.removed!;
    const t = this.now();
    if (t - r.triedAt < REOPEN_RETRY_MS) throw r.error;
    r.triedAt = t;
    let fd: number;
    try {
      fd = openAppend(this.path);
    } catch (err) {
      r.error = new WriteFailure(`${this.path} was removed and cannot be created again: ${describeError(err)}`, errCode(err));
      throw r.error;
    }
    closeSync(this.fd); // the removed file: nothing in it can be read any more, no need to sync it
    this.fd = fd;
    this.id = fileIdOfFd(fd);
    this.removed = undefined;
  }

  /** Current size of the file being written (it may have been renamed meanwhile). */
  size(): number {
    return fstatSync(this.fd).size;
  }

  /**
   * If `path` names another file than ours (the supervisor rotated it), opens that
   * one, then fsyncs and closes the old one. Returns whether it moved.
   */
  reopen(): boolean {
    const now = fileIdOfPath(this.path);
    if (now === this.id) return false;
    if (now === null && this.removed) return false; // still gone: write() tries again, quietly
    const fd = openAppend(this.path);
    const old = this.fd;
    this.fd = fd;
    this.id = fileIdOfFd(fd);
    this.removed = undefined;
    try {
      fsyncSync(old);
    } finally {
      closeSync(old);
    }
    return true;
  }

  /** Makes everything written so far durable. */
  sync(): void {
    fsyncSync(this.fd);
  }

  /** fsync, then close. */
  close(): void {
    try {
      fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** `file.N` for N ≥ 1: the Nth most recent rotated file. */
export function rotatedName(path: string, n: number): string {
  return `${path}.${n}`;
}

/**
 * The renames of one size-based rotation: `file.(keep-1)` → `file.keep` (replacing
 * the oldest), …, `file.1` → `file.2`, `file` → `file.1`. Missing files are skipped.
 * The caller makes the new `file` and tells the writers to reopen.
 */
export function rotateFiles(path: string, keep: number): void {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a whole number of at least 1; got ${keep}`);
  for (let n = keep - 1; n >= 0; n--) {
    const from = n === 0 ? path : rotatedName(path, n);
    try {
      renameSync(from, rotatedName(path, n + 1));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
