/**
 * The new side of a hand-over waits for its workers to be warm on the real condition:
 * it looks at their counts when one of their snapshots arrives, and at nothing else
 * (no polling); it ends at the snapshot that shows every worker has read, after a
 * quiet WARM_TIMEOUT_MS (said in the log), or when the old side is gone.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WARM_TIMEOUT_MS, waitWarm } from '../src/supervisor/takeover.js';

/** A new side with `workers` cold workers, whose snapshots the test delivers by hand. */
function fakeSide(workers: number) {
  let cold = workers;
  const listeners = new Set<() => void>();
  const side = {
    lines: [] as string[],
    looks: 0,
    log: (line: string) => void side.lines.push(line),
    coldWorkers: () => {
      side.looks++;
      return cold;
    },
    onSnapshot: (l: () => void) => {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    /** One worker's snapshot arrives; `warmed`: it shows that worker's first datagram. */
    snapshot: (warmed: boolean) => {
      if (warmed) cold--;
      for (const l of listeners) l();
    },
    listening: () => listeners.size,
  };
  return side;
}

/** Whether `p` has settled once pending callbacks have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe('waitWarm', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('ends at the snapshot that shows the last cold worker has read, and looks at the counts only then', async () => {
    const side = fakeSide(2);
    const wait = waitWarm(side, new Promise(() => undefined));
    expect(side.looks).toBe(1);
    // Time alone brings no look (no polling) and no end.
    await vi.advanceTimersByTimeAsync(WARM_TIMEOUT_MS / 2);
    expect(side.looks).toBe(1);
    side.snapshot(true);
    side.snapshot(false);
    expect(side.looks).toBe(3);
    expect(await settled(wait)).toBe(false);
    side.snapshot(true);
    expect(await settled(wait)).toBe(true);
    expect(side.listening()).toBe(0);
    expect(side.lines).toEqual([]);
  });

  it('ends at once when every worker has already read', async () => {
    const side = fakeSide(0);
    expect(await settled(waitWarm(side, new Promise(() => undefined)))).toBe(true);
    expect(side.listening()).toBe(0);
  });

  it('goes on after a quiet WARM_TIMEOUT_MS and says how many workers had no datagram', async () => {
    const side = fakeSide(3);
    const wait = waitWarm(side, new Promise(() => undefined));
    side.snapshot(true);
    await vi.advanceTimersByTimeAsync(WARM_TIMEOUT_MS - 1);
    expect(await settled(wait)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(wait)).toBe(true);
    expect(side.lines).toEqual([`takeover: 2 new workers have had no datagram in ${WARM_TIMEOUT_MS / 1000} s (little traffic); going on`]);
    expect(side.listening()).toBe(0);
  });

  it('ends without a word when the old side is gone', async () => {
    const side = fakeSide(1);
    let gone!: () => void;
    const wait = waitWarm(side, new Promise<void>((r) => (gone = r)));
    expect(await settled(wait)).toBe(false);
    gone();
    expect(await settled(wait)).toBe(true);
    expect(side.lines).toEqual([]);
    expect(side.listening()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
