/**
 * Heavy hitters: which keys occur most in a stream, in fixed memory.
 *
 * `SpaceSaving` is the Space-Saving sketch of Metwally, Agrawal and El Abbadi
 * ("Efficient computation of frequent and top-k elements in data streams", 2005):
 * k counters; a key already counted is incremented; a new key takes over the
 * smallest counter, inheriting its count (+1), and that inherited count is its
 * possible overestimate.
 *
 * Guarantees, after N offers (whatever their order):
 * - every key whose true count exceeds N/k holds a counter (is reported);
 * - for every reported key, `count - error <= true count <= count`, and
 *   `error <= N/k` (a count overestimates by at most N/k).
 *
 * Built for a receive path: keys are numbers (non-negative safe integers), held in
 * typed arrays with an open-addressing index (linear probing, backward-shift
 * deletion) and a binary min-heap of counters, so an offer allocates nothing and
 * costs a probe or two plus a sift over at most log2(k) levels.
 */

export interface HeavyHitter {
  key: number;
  /** Upper bound of the key's true count. */
  count: number;
  /** How much `count` may exceed the true count (the true count is at least `count - error`). */
  error: number;
  /** The counter holding it (0..capacity-1), stable until the key is evicted. */
  entry: number;
}

export class SpaceSaving {
  readonly capacity: number;
  private readonly keys: Float64Array;
  private readonly counts: Float64Array;
  private readonly errors: Float64Array;
  /** Home slot of each entry's key in `index`. */
  private readonly homes: Int32Array;
  /** heap[i]: entry at heap position i (smallest count at 0); pos[entry]: its heap position. */
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  /** Open-addressing index: entry + 1, or 0 for an empty slot. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private used = 0;
  private n = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 65536) {
      throw new RangeError(`SpaceSaving capacity must be an integer from 1 to 65536; got ${capacity}`);
    }
    this.capacity = capacity;
    this.keys = new Float64Array(capacity);
    this.counts = new Float64Array(capacity);
    this.errors = new Float64Array(capacity);
    this.homes = new Int32Array(capacity);
    this.heap = new Int32Array(capacity);
    this.pos = new Int32Array(capacity);
    let size = 8;
    while (size < capacity * 4) size *= 2;
    this.index = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Offers so far (N). */
  get total(): number {
    return this.n;
  }

  /** The most a reported count can exceed the truth: N/k once every counter is taken, 0 before. */
  get errorBound(): number {
    return this.used < this.capacity ? 0 : this.n / this.capacity;
  }

  /**
   * Counts `count` occurrences in a row of `key` (a non-negative safe integer; count a
   * positive integer, default 1): the counts and errors are those of `count` single
   * offers of it. Returns the entry the key just took (a new counter, or the smallest
   * one taken over), or -1 when it already had one; a caller keeping a name per entry
   * sets it then.
   */
  offer(key: number, count = 1): number {
    this.n += count;
    const home = hash(key) & this.mask;
    const index = this.index;
    const keys = this.keys;
    for (let i = home; ; i = (i + 1) & this.mask) {
      const e = index[i]! - 1;
      if (e < 0) break;
      if (keys[e] === key) {
        this.counts[e]! += count;
        this.siftDown(this.pos[e]!);
        return -1;
      }
    }
    let e: number;
    if (this.used < this.capacity) {
      e = this.used++;
      this.counts[e] = count;
      this.errors[e] = 0;
      this.heap[e] = e;
      this.pos[e] = e;
      this.siftUp(e);
    } else {
      // Take over the smallest counter (the heap's root).
      e = this.heap[0]!;
      this.unindex(e);
      this.errors[e] = this.counts[e]!;
      this.counts[e]! += count;
    }
    keys[e] = key;
    this.homes[e] = home;
    let i = home;
    while (index[i] !== 0) i = (i + 1) & this.mask;
    index[i] = e + 1;
    this.siftDown(this.pos[e]!);
    return e;
  }

  /** The `limit` largest counters, largest first. */
  top(limit = this.capacity): HeavyHitter[] {
    const out: HeavyHitter[] = [];
    for (let e = 0; e < this.used; e++) out.push({ key: this.keys[e]!, count: this.counts[e]!, error: this.errors[e]!, entry: e });
    out.sort((a, b) => b.count - a.count || a.error - b.error);
    return out.slice(0, Math.max(0, limit));
  }

  /** Removes entry `e`'s key from the index, shifting back the keys probed past it. */
  private unindex(e: number): void {
    const index = this.index;
    const mask = this.mask;
    let hole = this.homes[e]!;
    while (index[hole] !== e + 1) hole = (hole + 1) & mask;
    index[hole] = 0;
    for (let j = (hole + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const home = this.homes[index[j]! - 1]!;
      // Move it into the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!stays) {
        index[hole] = index[j]!;
        index[j] = 0;
        hole = j;
      }
    }
  }

  private siftUp(i: number): void {
    const counts = this.counts;
    const heap = this.heap;
    const pos = this.pos;
    const e = heap[i]!;
    const c = counts[e]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pe = heap[parent]!;
      if (counts[pe]! <= c) break;
      heap[i] = pe;
      pos[pe] = i;
      i = parent;
    }
    heap[i] = e;
    pos[e] = i;
  }

  private siftDown(i: number): void {
    const counts = this.counts;
    const heap = this.heap;
    const pos = this.pos;
    const size = this.used;
    const e = heap[i]!;
    const c = counts[e]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const child = r < size && counts[heap[r]!]! < counts[heap[l]!]! ? r : l;
      const ce = heap[child]!;
      if (c <= counts[ce]!) break;
      heap[i] = ce;
      pos[ce] = i;
      i = child;
    }
    heap[i] = e;
    pos[e] = i;
  }
}

/** Mixes both 32-bit halves of a safe integer (murmur3's finaliser). */
function hash(key: number): number {
  let h = (key >>> 0) ^ Math.imul(Math.floor(key / 4294967296), 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
