import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SpaceSaving } from '../src/stats/heavy-hitters.js';
import { TopSenders, mergeTopSenders } from '../src/stats/top-senders.js';

/** Streams with a few heavy keys among many light ones, in any order. */
const streams = fc.record({
  capacity: fc.integer({ min: 1, max: 24 }),
  keys: fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 3000 }),
  heavy: fc.array(fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 800 })), { maxLength: 4 }),
  seed: fc.integer(),
  // Small keys, and keys as large as the IPv4 (2^48) and IPv6 (2^52+) ones of top-senders.ts.
  scale: fc.constantFrom(1, 65536, 2 ** 32 + 7, 2 ** 44 + 3),
});

function shuffled<T>(items: T[], seed: number): T[] {
  let s = seed >>> 0 || 1;
  for (let i = items.length - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

describe('Space-Saving sketch', () => {
  it('reports every key above N/k, each count within N/k of the truth (property, against an exact count)', () => {
    fc.assert(
      fc.property(streams, ({ capacity, keys, heavy, seed, scale }) => {
        const stream = shuffled([...keys, ...heavy.flatMap(([k, n]) => Array<number>(n).fill(k))], seed).map((k) => k * scale);
        const exact = new Map<number, number>();
        const sketch = new SpaceSaving(capacity);
        for (const k of stream) {
          exact.set(k, (exact.get(k) ?? 0) + 1);
          sketch.offer(k);
        }
        const n = stream.length;
        expect(sketch.total).toBe(n);
        const reported = sketch.top();
        expect(reported.length).toBe(Math.min(capacity, exact.size));
        // Every offer adds one to exactly one counter.
        expect(reported.reduce((a, h) => a + h.count, 0)).toBe(n);
        const byKey = new Map(reported.map((h) => [h.key, h]));
        expect(byKey.size).toBe(reported.length);
        for (const [k, truth] of exact) if (truth > n / capacity) expect(byKey.has(k)).toBe(true);
        for (const h of reported) {
          const truth = exact.get(h.key)!;
          expect(h.count).toBeGreaterThanOrEqual(truth);
          expect(h.count - h.error).toBeLessThanOrEqual(truth);
          expect(h.error).toBeLessThanOrEqual(sketch.errorBound);
          expect(h.count - truth).toBeLessThanOrEqual(n / capacity);
        }
        // Largest first.
        for (let i = 1; i < reported.length; i++) expect(reported[i - 1]!.count).toBeGreaterThanOrEqual(reported[i]!.count);
      }),
      { numRuns: 300 },
    );
  });

  it('is exact while every key has its own counter', () => {
    const s = new SpaceSaving(4);
    // offer() names the counter a key just took, and -1 for a key it already holds.
    expect([7, 9, 7, 2 ** 50, 7, 9].map((k) => s.offer(k))).toEqual([0, 1, -1, 2, -1, -1]);
    expect(s.top()).toEqual([
      { key: 7, count: 3, error: 0, entry: 0 },
      { key: 9, count: 2, error: 0, entry: 1 },
      { key: 2 ** 50, count: 1, error: 0, entry: 2 },
    ]);
    expect(s.errorBound).toBe(0);
    expect(s.top(1)).toHaveLength(1);
  });

  it('hands the smallest counter to a new key once full, with the count it inherits as its error', () => {
    const s = new SpaceSaving(2);
    for (const k of [1, 1, 1, 2, 2, 3]) s.offer(k);
    // 3 took over 2's counter (count 2): reported as 3 with error 2.
    expect(s.top()).toEqual([
      { key: 1, count: 3, error: 0, entry: 0 },
      { key: 3, count: 3, error: 2, entry: 1 },
    ]);
    expect(s.errorBound).toBe(3);
  });

  it('counts a run of one key given at once (offer(key, count)) with the guarantees of that many single offers (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 70 })), { minLength: 1, maxLength: 200 }),
        (capacity, runs) => {
          const once = new SpaceSaving(capacity);
          const single = new SpaceSaving(capacity);
          const exact = new Map<number, number>();
          for (const [key, count] of runs) {
            once.offer(key, count);
            for (let i = 0; i < count; i++) single.offer(key);
            exact.set(key, (exact.get(key) ?? 0) + count);
          }
          const n = runs.reduce((a, [, c]) => a + c, 0);
          expect(once.total).toBe(n);
          expect(once.errorBound).toBe(single.errorBound);
          const reported = once.top();
          expect(reported.reduce((a, h) => a + h.count, 0)).toBe(n);
          for (const [k, truth] of exact) if (truth > n / capacity) expect(reported.some((h) => h.key === k)).toBe(true);
          for (const h of reported) {
            const truth = exact.get(h.key)!;
            expect(h.count).toBeGreaterThanOrEqual(truth);
            expect(h.count - h.error).toBeLessThanOrEqual(truth);
          }
          // Until counters are taken over the sketch is exact, and both ways agree entry for entry
          // (after that, counters tied for the smallest may be taken over in another order).
          if (exact.size <= capacity) expect(once.top()).toEqual(single.top());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a capacity it cannot keep', () => {
    expect(() => new SpaceSaving(0)).toThrow(RangeError);
    expect(() => new SpaceSaving(1.5)).toThrow(/integer/);
  });
});

describe('top senders', () => {
  it('names IPv4 sources from the numeric key and text sources alike, and merges workers', () => {
    const a = new TopSenders(8);
    // 10.0.0.5 as the little-endian reading of its network-order bytes.
    const le = Buffer.from([10, 0, 0, 5]).readUInt32LE(0);
    for (let i = 0; i < 5; i++) a.offerV4(le, 8125);
    a.offer('10.0.0.5', 8125, 'IPv4');
    a.offer('255.254.253.252', 65535, 'IPv4');
    a.offer('::1', 53, 'IPv6');
    a.offer('::1', 53, 'IPv6');
    const r = a.report();
    expect(r.senders[0]).toEqual({ sender: '10.0.0.5:8125', count: 6, error: 0 });
    expect(r.senders.map((s) => s.sender).sort()).toEqual(['10.0.0.5:8125', '255.254.253.252:65535', '[::1]:53']);
    expect(r).toMatchObject({ total: 9, capacity: 8, errorBound: 0 });
    expect(r.senders[1]).toEqual({ sender: '[::1]:53', count: 2, error: 0 });

    const b = new TopSenders(8);
    b.offer('10.0.0.5', 8125, 'IPv4');
    b.offer('10.0.0.6', 1, 'IPv4');
    const m = mergeTopSenders([r, b.report()], 2);
    expect(m.senders).toEqual([
      { sender: '10.0.0.5:8125', count: 7, error: 0 },
      { sender: '[::1]:53', count: 2, error: 0 },
    ]);
    expect(m.total).toBe(11);
  });

  it("keeps IPv6 names right while senders take over each other's counters", () => {
    const t = new TopSenders(2);
    for (let round = 0; round < 3; round++) for (const p of [1, 2, 3, 4]) t.offer(`fd00::${p}`, 1000 + p, 'IPv6');
    for (let i = 0; i < 20; i++) t.offer('fd00::9', 9, 'IPv6');
    const r = t.report();
    expect(r.senders[0]).toMatchObject({ sender: '[fd00::9]:9' });
    expect(r.senders[0]!.count - r.senders[0]!.error).toBeLessThanOrEqual(20);
    expect(r.senders[0]!.count).toBeGreaterThanOrEqual(20);
    for (const s of r.senders) expect(s.sender).toMatch(/^\[fd00::\d\]:\d+$/);
  });
});
