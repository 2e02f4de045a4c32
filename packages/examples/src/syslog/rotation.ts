/**
 * Size-based rotation of the one output file that every worker appends to, run by
 * the supervisor side of the app (one process, so one rotator: no lock needed).
 *
 * - The supervisor checks the file's size every 250 ms, and at once when a worker
 *   says it saw the file reach maxBytes.
 * - To rotate it renames `file.(keep-1)` → `file.keep`, …, `file` → `file.1`, creates a
 *   new `file`, fsyncs the directory, and broadcasts `reopen`. Until a worker has
 *   reopened, its writes go on landing in the renamed file (`file.1`), which is where
 *   they belong: nothing is lost, `file.1` just ends a few lines past maxBytes.
 * - It rotates again only when every live worker has reported appending to the new
 *   file (and then at once, if the file filled up meanwhile), so a file is never
 *   renamed out of the kept set (deleted) while a worker still writes into it. Workers report every 500 ms; one silent for 2 s is taken to
 *   be gone (dead, or being restarted — a new worker opens the current file).
 * - A report naming an older file makes it broadcast `reopen` again (a worker that was
 *   starting when the first one went out can miss it).
 * - If something else renames or removes the file (logrotate without copytruncate),
 *   the next check creates a new one and has the workers reopen. If it cannot (the
 *   directory was removed), it says so once and tries again at every check, quietly,
 *   until it can; meanwhile the workers count their records as write errors
 *   (writer.ts). Any other failing check is also logged once, not every 250 ms.
 */
import { closeSync, fsyncSync, openSync, statSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { fileIdOfFd, fileIdOfPath, openAppend, rotateFiles, type FileId } from './writer.js';
import { describeError } from '@shardgram/udp-core';

export interface RotationOptions {
  path: string;
  /** 0: never rotate (the external-rename check still runs). */
  maxBytes: number;
  keep: number;
  log(line: string): void;
  /** Tells every worker to reopen the path. */
  broadcast(): void;
  checkIntervalMs?: number;
  /** A worker not heard from for this long does not hold rotation back. */
  liveMs?: number;
  now?: () => number;
}

interface WriterState {
  file: FileId | null;
  seen: number;
}

function fsyncPath(path: string, directory: boolean): void {
  const fd = openSync(path, directory ? constants.O_RDONLY | constants.O_DIRECTORY : constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class RotationCoordinator {
  private current: FileId = '';
  private readonly writers = new Map<number, WriterState>();
  private timer: NodeJS.Timeout | undefined;
  private heldSince = 0;
  /** The file is full but rotation waits for a worker to reopen: rotate as soon as the last one has. */
  private pending = false;
  private lastBroadcast = 0;
  /** The path cannot be created (since when, and why), or the last failure of a check: said once, not at every check. */
  private unavailable: { why: string; since: number } | undefined;
  private lastFailure: string | undefined;
  private readonly now: () => number;
  private readonly liveMs: number;
  rotations = 0;

  private get intervalMs(): number {
    return this.o.checkIntervalMs ?? 250;
  }

  constructor(private readonly o: RotationOptions) {
    this.now = o.now ?? Date.now;
    this.liveMs = o.liveMs ?? 2000;
  }

  /** Creates the file if needed (failing early on a bad path) and starts the periodic check. */
  start(): void {
    this.current = this.create();
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  /** The file workers should be appending to now. */
  get currentFile(): FileId {
    return this.current;
  }

  /** Size of the current file (0 if it is missing for a moment). */
  size(): number {
    return statSync(this.o.path, { throwIfNoEntry: false })?.size ?? 0;
  }

  /** A worker's status: which file it appends to. */
  report(pid: number, file: FileId | null, final = false): void {
    if (final) {
      this.writers.delete(pid);
      return;
    }
    this.writers.set(pid, { file, seen: this.now() });
    if (file !== this.current) this.askReopen();
    else if (this.pending && this.lagging().length === 0) this.check();
  }

  /** A worker saw the file reach maxBytes. */
  full(): void {
    this.check();
  }

  /** Workers heard from lately that still append to an older file. */
  lagging(): number[] {
    const t = this.now();
    return [...this.writers.entries()].filter(([, w]) => t - w.seen <= this.liveMs && w.file !== this.current).map(([pid]) => pid);
  }

  check(): void {
    try {
      const id = fileIdOfPath(this.o.path);
      if (id !== this.current) {
        this.replaced(id);
        this.lastFailure = undefined;
        return;
      }
      this.lastFailure = undefined;
      if (this.o.maxBytes <= 0 || this.size() < this.o.maxBytes) {
        this.heldSince = 0;
        this.pending = false;
        return;
      }
      const lagging = this.lagging();
      if (lagging.length) {
        this.pending = true;
        // The previous rotation is not finished: renaming again could drop a file a worker still writes to.
        if (!this.heldSince) this.heldSince = this.now();
        else if (this.now() - this.heldSince > 5000) {
          this.o.log(
            `rotation of ${this.o.path} held back for ${((this.now() - this.heldSince) / 1000).toFixed(0)} s: worker pid ${lagging.join(', ')} has not reopened`,
          );
          this.heldSince = this.now();
        }
        this.askReopen();
        return;
      }
      this.rotate();
    } catch (err) {
      const why = describeError(err);
      if (why !== this.lastFailure) this.o.log(`rotation check of ${this.o.path} failed: ${why} (said once; checks go on every ${this.intervalMs} ms)`);
      this.lastFailure = why;
    }
  }

  /** Renamed or removed by someone else: start a new file there, or say once why it cannot be. */
  private replaced(id: FileId | null): void {
    let created: FileId;
    try {
      created = this.create();
    } catch (err) {
      const why = describeError(err);
      if (this.unavailable?.why !== why) {
        this.o.log(
          `${this.o.path} was ${id === null ? 'removed' : 'replaced'} from outside and cannot be created again (${why}); ` +
            `workers count their records as write errors until it can be (trying again every ${this.intervalMs} ms)`,
        );
        this.unavailable = { why, since: this.unavailable?.since ?? this.now() };
      }
      return;
    }
    if (this.unavailable) {
      this.o.log(`${this.o.path} created again after ${((this.now() - this.unavailable.since) / 1000).toFixed(1)} s; workers reopen it`);
      this.unavailable = undefined;
    } else this.o.log(`${this.o.path} was ${id === null ? 'removed' : 'replaced'} from outside; workers reopen it`);
    this.current = created;
    this.askReopen(true);
  }

  /** Rotates now (the size check's doing; exposed for tests). */
  rotate(): void {
    const before = this.size();
    rotateFiles(this.o.path, this.o.keep);
    this.current = this.create();
    this.rotations++;
    this.heldSince = 0;
    this.pending = false;
    this.o.log(`rotated ${this.o.path} at ${before} bytes (rotation ${this.rotations}, keeping ${this.o.keep})`);
    this.askReopen(true);
  }

  /** Stops checking; makes the file and the directory's renames durable. Call after every worker has exited. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    try {
      fsyncPath(this.o.path, false);
      fsyncPath(dirname(this.o.path), true);
    } catch (err) {
      this.o.log(`final fsync of ${this.o.path} failed: ${describeError(err)}`);
    }
  }

  private create(): FileId {
    const fd = openAppend(this.o.path);
    try {
      fsyncPath(dirname(this.o.path), true);
      return fileIdOfFd(fd);
    } finally {
      closeSync(fd);
    }
  }

  private askReopen(force = false): void {
    const t = this.now();
    if (!force && t - this.lastBroadcast < 100) return;
    this.lastBroadcast = t;
    this.o.broadcast();
  }
}
