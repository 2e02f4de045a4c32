/**
 * Paces worker starts: at most a few processes of the group are starting (spawned,
 * not yet ready) at any time, the others wait their turn before they are spawned.
 * A Node process takes a good part of a second of CPU to start; a few hundred of them
 * spawned at once on a small machine share the CPU so thinly that none gets ready
 * within its limit. Each process's ready limit runs from its own spawn, so the time a
 * whole group takes to start grows with its size, not against a fixed limit.
 */
import { availableParallelism } from 'node:os';

/** Starts in flight at once: two per core (one loading while another waits on I/O), at least 2. */
export function defaultStartConcurrency(cores = availableParallelism()): number {
  return Math.max(2, 2 * cores);
}

export class StartGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly concurrency = defaultStartConcurrency()) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`start concurrency must be a positive integer, not ${concurrency}`);
  }

  /** Starts in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Starts waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /** A turn now if one is free (call the returned function once the start has ended: ready or failed), else undefined. */
  tryEnter(): (() => void) | undefined {
    if (this.running >= this.concurrency) return undefined;
    this.running++;
    return this.leaver();
  }

  /** Resolves with a turn once one is free (at once if one is); see tryEnter. */
  async enter(): Promise<() => void> {
    const now = this.tryEnter();
    if (now) return now;
    // The leaving start hands its turn over: running stays the same.
    await new Promise<void>((r) => this.waiting.push(r));
    return this.leaver();
  }

  private leaver(): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }
}
