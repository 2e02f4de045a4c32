/** A clock for FlushCollector tests: time moves only when the test says so; no real timers. */
import type { CollectorClock } from '../../src/statsd/collector.js';

/** One turn of the event loop (I/O-like callbacks, such as the fake workers' replies, run). */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Turns the event loop until `fn()` holds; throws after `turns` turns (no time involved). */
export async function until(fn: () => boolean, turns = 1000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (fn()) return;
    await turn();
  }
  if (!fn()) throw new Error(`condition not met within ${turns} event-loop turns`);
}

/** Event-loop turns after each timer: enough for a chain of promises and an immediate or two. */
const SETTLE_TURNS = 10;

async function settle(): Promise<void> {
  for (let i = 0; i < SETTLE_TURNS; i++) await turn();
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class ManualClock implements CollectorClock {
  private t: number;
  private seq = 0;
  private readonly timers = new Set<Timer>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return () => void this.timers.delete(timer);
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way in order.
   * After each, a few event-loop turns let what it set off (e.g. fake IPC replies sent
   * with setImmediate) happen before the next timer, as it would in real time; timers
   * set meanwhile can fall due within the same advance.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const x of this.timers) if (x.at <= end && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      if (!next) break;
      this.timers.delete(next);
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}
