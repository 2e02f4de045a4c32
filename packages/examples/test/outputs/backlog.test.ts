/** The output backlog on its own: order, retry with backoff, exact counts when full, the close deadline. */
import { describe, expect, it } from 'vitest';
import { Backlog, RetryLater, retryWaitMs, Undeliverable, type BacklogCounts } from '../../src/outputs/backlog.js';
import { waitFor } from '@shardgram/test-kit/wait';

interface Harness {
  backlog: Backlog<string[]>;
  delivered: string[];
  logs: string[];
  /** Makes the next attempts fail (true) or succeed (false). */
  failing(on: boolean): void;
  attempts(): number;
}

/** Items are arrays of lines; a unit is a line. */
function harness(capacity: number, opts: { maxBatchUnits?: number; hold?: () => Promise<void> } = {}): Harness {
  const delivered: string[] = [];
  const logs: string[] = [];
  let fail = false;
  let attempts = 0;
  const backlog = new Backlog<string[]>({
    name: 'test output',
    capacity,
    units: (i) => i.length,
    unitName: 'lines',
    retryMinMs: 5,
    retryMaxMs: 40,
    log: (l) => logs.push(l),
    ...(opts.maxBatchUnits === undefined ? {} : { maxBatchUnits: opts.maxBatchUnits }),
    send: async (batch) => {
      attempts++;
      await opts.hold?.();
      if (fail) throw new Error('connect ECONNREFUSED');
      for (const item of batch) delivered.push(...item);
    },
  });
  return { backlog, delivered, logs, failing: (on) => void (fail = on), attempts: () => attempts };
}

const balanced = (c: BacklogCounts): boolean => c.accepted === c.delivered + c.dropped + c.rejected + c.droppedAtClose + c.queued;
const lines = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => `l${from + i}`);

describe('Backlog', () => {
  it('a batch refused for good (Undeliverable) is counted as rejected, not retried, and the queue goes on', async () => {
    const logs: string[] = [];
    const sent: string[][] = [];
    let failed = 0;
    const backlog = new Backlog<string>({
      name: 'test output',
      capacity: 100,
      units: () => 2,
      unitName: 'samples',
      retryMinMs: 5,
      retryMaxMs: 40,
      maxBatchUnits: 2,
      log: (l) => logs.push(l),
      onFailedAttempt: () => void failed++,
      send: async (batch) => {
        sent.push([...batch]);
        if (batch[0]!.startsWith('bad')) throw new Undeliverable(`HTTP 400: out of order sample (${batch[0]})`);
      },
    });
    for (const item of ['ok1', 'bad1', 'bad2', 'ok2']) backlog.push(item);
    expect(await waitFor(() => backlog.counts().queued === 0, 5000, 5)).toBe(true);
    // Each sent once: the refused ones were not sent again.
    expect(sent).toEqual([['ok1'], ['bad1'], ['bad2'], ['ok2']]);
    expect(backlog.counts()).toMatchObject({ accepted: 8, delivered: 4, rejected: 4, dropped: 0, failedAttempts: 0 });
    expect(balanced(backlog.counts())).toBe(true);
    expect(failed).toBe(2);
    // Said once per reason.
    expect(logs.filter((l) => l.includes('refused, not retried'))).toEqual([
      'test output: 2 samples refused, not retried (HTTP 400: out of order sample (bad1)); every refused sample is counted (said again when the reason changes, or after a delivery)',
      'test output: 2 samples refused, not retried (HTTP 400: out of order sample (bad2)); every refused sample is counted (said again when the reason changes, or after a delivery)',
    ]);
    await backlog.close(100);
  });

  it('push never waits; everything is delivered once, in order', async () => {
    const h = harness(1000, { maxBatchUnits: 7 });
    for (let i = 0; i < 50; i++) h.backlog.push(lines(i * 3, 3));
    expect(await waitFor(() => h.backlog.counts().queued === 0, 5000, 5)).toBe(true);
    expect(h.delivered).toEqual(lines(0, 150));
    expect(h.backlog.counts()).toMatchObject({ accepted: 150, delivered: 150, dropped: 0, failedAttempts: 0 });
  });

  it('a dead destination: retried with backoff, said once; once it is back, every line is delivered in order', async () => {
    const h = harness(1000);
    h.failing(true);
    for (let i = 0; i < 10; i++) h.backlog.push(lines(i * 10, 10));
    expect(await waitFor(() => h.backlog.counts().failedAttempts >= 5, 5000, 5)).toBe(true);
    expect(h.logs.filter((l) => /ECONNREFUSED/.test(l))).toHaveLength(1);
    h.failing(false);
    for (let i = 10; i < 20; i++) h.backlog.push(lines(i * 10, 10));
    expect(await waitFor(() => h.backlog.counts().queued === 0, 5000, 5)).toBe(true);
    expect(h.delivered).toEqual(lines(0, 200));
    expect(h.backlog.counts()).toMatchObject({ accepted: 200, delivered: 200, dropped: 0 });
    expect(h.logs.at(-1)).toMatch(/delivering again after [\d.]+ s and \d+ failed attempts \(nothing dropped meanwhile\)/);
  });

  it('full: the oldest waiting items are dropped, never the batch in flight (held on top of the capacity), and every line is counted', async () => {
    let release: () => void = () => undefined;
    let held = true;
    const h = harness(25, { hold: () => (held ? new Promise<void>((r) => (release = r)) : Promise.resolve()) });
    h.backlog.push(lines(0, 10)); // in flight, held
    for (let i = 1; i < 6; i++) h.backlog.push(lines(i * 10, 10)); // room for two items of 10 waiting: each past that drops the oldest
    h.backlog.push(lines(1000, 30)); // heavier than the backlog: dropped alone
    expect(h.backlog.counts()).toMatchObject({ accepted: 90, dropped: 30 + 30, queued: 10 + 20 });
    expect(balanced(h.backlog.counts())).toBe(true);
    expect(h.logs.filter((l) => /backlog full \(25 lines\)/.test(l))).toHaveLength(1);
    held = false;
    release();
    expect(await waitFor(() => h.backlog.counts().queued === 0, 5000, 5)).toBe(true);
    expect(h.delivered).toEqual([...lines(0, 10), ...lines(40, 20)]);
    expect(h.backlog.counts()).toMatchObject({ accepted: 90, delivered: 30, dropped: 60, droppedAtClose: 0 });
  });

  it('an item as heavy as the capacity, pushed while a batch is in flight, waits and is delivered (nothing dropped while the destination keeps up)', async () => {
    let release: () => void = () => undefined;
    let held = true;
    const h = harness(10, { hold: () => (held ? new Promise<void>((r) => (release = r)) : Promise.resolve()) });
    h.backlog.push(lines(0, 10)); // in flight
    h.backlog.push(lines(10, 5)); // waits beside it
    expect(h.backlog.counts()).toMatchObject({ accepted: 15, dropped: 0, queued: 15 });
    held = false;
    release();
    expect(await waitFor(() => h.backlog.counts().queued === 0, 5000, 5)).toBe(true);
    expect(h.delivered).toEqual(lines(0, 15));
    expect(h.backlog.counts()).toMatchObject({ delivered: 15, dropped: 0 });
  });

  it('a byte cap besides the unit cap: the oldest are dropped when the bytes pass it, counted in units, said with the byte cap', async () => {
    let release: () => void = () => undefined;
    const logs: string[] = [];
    const delivered: string[] = [];
    const backlog = new Backlog<string>({
      name: 'test output',
      capacity: 1000,
      capacityBytes: 100,
      units: () => 1,
      bytes: (s) => s.length,
      unitName: 'samples',
      log: (l) => logs.push(l),
      send: async (batch) => {
        await new Promise<void>((r) => (release = r));
        delivered.push(...batch);
      },
    });
    backlog.push('a'.repeat(60)); // in flight
    backlog.push('b'.repeat(60)); // waits: 60 bytes
    backlog.push('c'.repeat(60)); // 120 > 100: drops b
    backlog.push('d'.repeat(101)); // heavier than the byte cap: dropped alone
    expect(backlog.counts()).toMatchObject({ accepted: 4, dropped: 2, queued: 2 });
    expect(logs).toEqual([expect.stringMatching(/backlog full \(100 bytes\)/)]);
    release();
    expect(await waitFor(() => delivered.length === 1, 5000, 5)).toBe(true);
    release();
    expect(await waitFor(() => backlog.counts().queued === 0, 5000, 5)).toBe(true);
    expect(delivered.map((s) => s[0])).toEqual(['a', 'c']);
    await backlog.close(100);
  });

  it('the retry wait: jittered between half and all of the backoff, at least a Retry-After, capped by retryMaxMs', () => {
    expect(retryWaitMs(1000, 0, 0, 10_000)).toBe(500);
    expect(retryWaitMs(1000, 0.5, 0, 10_000)).toBe(750);
    expect(retryWaitMs(1000, 0.999999, 0, 10_000)).toBe(1000);
    expect(retryWaitMs(1000, 0, 3000, 10_000)).toBe(3000);
    expect(retryWaitMs(1000, 0, 60_000, 10_000)).toBe(10_000);
  });

  it('retries wait a jittered backoff (from the random source given) and what a RetryLater asks, capped', async () => {
    const at: number[] = [];
    let fail: (n: number) => Error | undefined = () => undefined;
    const backlog = new Backlog<string>({
      name: 'test output',
      capacity: 100,
      units: () => 1,
      // Half the first backoff (300) and all of it (600) far enough apart that a timer late
      // by up to 250 ms on a loaded machine is still told from the whole backoff.
      retryMinMs: 600,
      retryMaxMs: 1000,
      random: () => 0, // the shortest: half the backoff
      log: () => undefined,
      send: async () => {
        at.push(performance.now());
        const err = fail(at.length);
        if (err) throw err;
      },
    });
    // 1st fails (backoff 600: waits 300), 2nd asks 800 ms (above its jittered backoff, 500),
    // 3rd asks an hour (capped: 1000; its backoff alone would wait 500), 4th succeeds.
    fail = (n) => (n === 1 ? new Error('down') : n === 2 ? new RetryLater('HTTP 429', 800) : n === 3 ? new RetryLater('HTTP 503', 3_600_000) : undefined);
    backlog.push('x');
    expect(await waitFor(() => backlog.counts().delivered === 1, 10_000, 5)).toBe(true);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(295);
    expect(gaps[0]).toBeLessThan(550); // not the whole backoff (600): the random source said half
    expect(gaps[1]).toBeGreaterThanOrEqual(795);
    expect(gaps[2]).toBeGreaterThanOrEqual(995);
    expect(gaps[2]).toBeLessThan(3000);
    await backlog.close(100);
  });

  it('close aborts the attempt it gives up on (the AbortSignal given to send)', async () => {
    let signal: AbortSignal | undefined;
    const backlog = new Backlog<string>({
      name: 'test output',
      capacity: 100,
      units: () => 1,
      log: () => undefined,
      send: (_batch, s) => {
        signal = s;
        return new Promise<void>(() => undefined); // never settles by itself
      },
    });
    backlog.push('x');
    expect(signal?.aborted).toBe(false);
    await backlog.close(50);
    expect(signal?.aborted).toBe(true);
    expect(backlog.counts()).toMatchObject({ accepted: 1, droppedAtClose: 1, delivered: 0 });
  });

  it('close: tries until the deadline, then counts what is left; later pushes are counted too', async () => {
    const h = harness(100);
    h.failing(true);
    h.backlog.push(lines(0, 4));
    h.backlog.push(lines(4, 4));
    expect(await waitFor(() => h.attempts() >= 1, 5000, 5)).toBe(true);
    await h.backlog.close(100);
    h.backlog.push(lines(8, 3));
    expect(h.backlog.counts()).toMatchObject({ accepted: 11, delivered: 0, dropped: 0, droppedAtClose: 11, queued: 0 });
    expect(h.logs.at(-1)).toMatch(/8 lines not delivered at stop \(connect ECONNREFUSED\); counted as dropped/);

    const ok = harness(100);
    ok.failing(true);
    ok.backlog.push(lines(0, 4));
    expect(await waitFor(() => ok.attempts() >= 1, 5000, 5)).toBe(true);
    ok.failing(false);
    await ok.backlog.close(5000); // tries again at once instead of waiting out the backoff
    expect(ok.backlog.counts()).toMatchObject({ accepted: 4, delivered: 4, droppedAtClose: 0 });
  });
});
