/**
 * Top senders of a worker: a Space-Saving sketch (heavy-hitters.ts) keyed by source
 * address and port, built so that the receive path makes no string per datagram
 * for IPv4: the key is the number `addr32 * 65536 + port`, turned into
 * "a.b.c.d:port" only when reported. IPv6 sources are keyed by "[addr]:port".
 */
import { SpaceSaving } from './heavy-hitters.js';

/** Counters per worker: the error bound is (datagrams received) / this. */
export const TOP_SENDERS_CAPACITY = 64;
/** Senders per worker carried in a snapshot and shown in /stats. */
export const TOP_SENDERS_REPORTED = 10;
const ADDRESS_CACHE_MAX = 4096;

export interface TopSender {
  /** "a.b.c.d:port" or "[v6]:port". */
  sender: string;
  /** Datagrams from it (an upper bound: at most `error` more than the true count). */
  count: number;
  /** Possible overestimate of `count`. */
  error: number;
}

export interface TopSendersReport {
  /** Datagrams the sketch has counted. */
  total: number;
  /** Counters kept: any sender with more than total/capacity datagrams is listed. */
  capacity: number;
  /** Largest possible overestimate of a listed count (total/capacity once the counters are full). */
  errorBound: number;
  senders: TopSender[];
}

/** IPv6 sources are keyed from here up (a 52-bit hash of "[addr]:port"); IPv4 keys stay below 2^48. */
const V6_BASE = 2 ** 52;

export class TopSenders {
  private readonly sketch: SpaceSaving;
  private readonly v4 = new Map<string, number>();
  /** Name of the IPv6 sender each entry holds (IPv4 names come from the key). */
  private readonly v6Names: (string | undefined)[] = [];

  constructor(capacity = TOP_SENDERS_CAPACITY) {
    this.sketch = new SpaceSaving(capacity);
  }

  /**
   * Counts `count` datagrams in a row (default 1) from an IPv4 source, given the address
   * as the little-endian reading of its four network-order bytes (what `readUInt32LE` on
   * sin_addr gives).
   */
  offerV4(addrLE: number, port: number, count = 1): void {
    const e = this.sketch.offer(addrLE * 65536 + port, count);
    if (e >= 0) this.v6Names[e] = undefined;
  }

  /** Counts a datagram from a source given as text (the dgram engine's rinfo). */
  offer(address: string, port: number, family: 'IPv4' | 'IPv6'): void {
    if (family === 'IPv6') {
      const name = `[${address}]:${port}`;
      const e = this.sketch.offer(V6_BASE + hash52(name));
      if (e >= 0) this.v6Names[e] = name;
      return;
    }
    let a = this.v4.get(address);
    if (a === undefined) {
      a = parseV4LE(address);
      if (this.v4.size >= ADDRESS_CACHE_MAX) this.v4.clear();
      this.v4.set(address, a);
    }
    const e = this.sketch.offer(a * 65536 + port);
    if (e >= 0) this.v6Names[e] = undefined;
  }

  report(limit = TOP_SENDERS_REPORTED): TopSendersReport {
    return {
      total: this.sketch.total,
      capacity: this.sketch.capacity,
      errorBound: this.sketch.errorBound,
      senders: this.sketch.top(limit).map((h) => ({ sender: this.v6Names[h.entry] ?? v4Name(h.key), count: h.count, error: h.error })),
    };
  }
}

function parseV4LE(address: string): number {
  const p = address.split('.');
  return ((Number(p[0]) | (Number(p[1]) << 8) | (Number(p[2]) << 16)) >>> 0) + Number(p[3]) * 2 ** 24;
}

/** Two FNV-1a passes over the text, 52 bits in all. */
function hash52(text: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x05bd1e99);
  }
  return (a >>> 0) + (b & 0xfffff) * 2 ** 32;
}

function v4Name(key: number): string {
  const port = key % 65536;
  const a = (key - port) / 65536;
  return `${a & 255}.${(a >>> 8) & 255}.${(a >>> 16) & 255}.${Math.floor(a / 2 ** 24) & 255}:${port}`;
}

/**
 * The service's top senders from its workers' reports: a sender's counts and errors
 * are added over the workers that list it. Under a hash policy a source reaches one
 * worker, so this is that worker's entry; when a source spreads over workers
 * (random policy), a worker that does not list it may hold up to its own bound more.
 */
export function mergeTopSenders(reports: readonly TopSendersReport[], limit = TOP_SENDERS_REPORTED): TopSendersReport {
  const bySender = new Map<string, TopSender>();
  for (const r of reports) {
    for (const s of r.senders) {
      const m = bySender.get(s.sender);
      if (m) {
        m.count += s.count;
        m.error += s.error;
      } else {
        bySender.set(s.sender, { ...s });
      }
    }
  }
  const senders = [...bySender.values()].sort((a, b) => b.count - a.count || a.error - b.error).slice(0, limit);
  return {
    total: reports.reduce((a, r) => a + r.total, 0),
    capacity: reports.reduce((a, r) => a + r.capacity, 0),
    errorBound: reports.reduce((a, r) => a + r.errorBound, 0),
    senders,
  };
}
