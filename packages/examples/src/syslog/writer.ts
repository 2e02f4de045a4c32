/**
 * A worker's handle on the shared output file: opened with O_APPEND, so every write
 * lands at the current end of the file whichever process makes it; each call of
 * `write` is one write(2) of whole lines, so lines of different workers never
 * interleave (on a local file system the kernel serializes writes to one inode).
 *
 * Rotation is the supervisor's (rotation.ts decides when, `rotateFiles` below does the
 * renames): it renames the file and asks every worker to `reopen`, which moves to the new file only if the path names another file
 * now, and makes sure what was written to the old one is on disk before closing it.
 */
import { closeSync, constants, fstatSync, fsyncSync, openSync, renameSync, statSync, writeSync } from 'node:fs';

/** `dev:ino`: which file a path or descriptor is, across renames. */
export type FileId = string;

// libuv adds O_CLOEXEC to every open.
const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;
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

export interface WriteResult {
  /** Bytes written (all of them unless an error interrupted a partial write). */
  bytes: number;
  /** The data took more than one write(2) (only on a short write: disk full, quota). */
  split: boolean;
}

export class AppendWriter {
  private fd: number;
  private id: FileId;

  constructor(readonly path: string) {
    this.fd = openAppend(path);
    this.id = fileIdOfFd(this.fd);
  }

  /** The file this writer appends to. */
  get fileId(): FileId {
    return this.id;
  }

  /** Appends `data` (whole lines) with one write(2); throws on an I/O error. */
  write(data: Buffer): WriteResult {
    let done = writeSync(this.fd, data);
    let split = false;
    // A regular file takes the whole buffer in one call unless the disk is full (then
    // the next call throws ENOSPC); finishing a short write keeps the line whole in the file.
    while (done < data.length) {
      split = true;
      done += writeSync(this.fd, data, done, data.length - done);
    }
    return { bytes: done, split };
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
    const fd = openAppend(this.path);
    const old = this.fd;
    this.fd = fd;
    this.id = fileIdOfFd(fd);
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
