/**
 * A deterministic StatsD workload sent by real `hot-shots` clients (several instances,
 * so several source sockets; half of them buffer several metrics per datagram), plus
 * a few raw datagrams with bad lines — and a model of what any correct StatsD server
 * must flush for it, computed independently of the code under test.
 *
 * Sends are paced (a few ms every few dozen metrics) so that a receiver with the
 * default socket buffer (Etsy statsd) loses nothing; the tests check that by comparing
 * metrics_received with the model.
 */
import dgram from 'node:dgram';
import { StatsD } from 'hot-shots';
import { sleep } from '@shardgram/test-kit/wait';

export interface Expected {
  counters: Map<string, number>;
  gauges: Map<string, number>;
  timers: Map<string, { values: number[]; count: number }>;
  sets: Map<string, Set<string>>;
  /** The histogram (|h) key: a timer here, a counter in Etsy statsd 0.9.0. */
  histogram: string;
  badLines: number;
  /** Non-empty lines sent. */
  metrics: number;
}

// 16 clients (16 source ports). 16 × 150 steps is the same workload size as 6 × 400, and
// the pause below keeps the total send rate the same. Under `--policy hash` the kernel
// hashes each source port to a worker: see `sources` below for a test that needs both.
export const CLIENTS = 16;
export const STEPS = 150;
export const PERCENTILES = [90, 95, 99];

function model() {
  const e: Expected = { counters: new Map(), gauges: new Map(), timers: new Map(), sets: new Map(), histogram: 'wl.size', badLines: 0, metrics: 0 };
  return {
    e,
    count(k: string, v: number): void {
      e.metrics++;
      e.counters.set(k, (e.counters.get(k) ?? 0) + v);
    },
    gauge(k: string, v: number, delta: boolean): void {
      e.metrics++;
      e.gauges.set(k, delta ? (e.gauges.get(k) ?? 0) + v : v);
    },
    time(k: string, v: number, rate: number): void {
      e.metrics++;
      const t = e.timers.get(k) ?? { values: [], count: 0 };
      t.values.push(v);
      t.count += 1 / rate;
      e.timers.set(k, t);
    },
    member(k: string, mem: string): void {
      e.metrics++;
      const set = e.sets.get(k) ?? new Set();
      set.add(mem);
      e.sets.set(k, set);
    },
  };
}

export interface WorkloadOptions {
  /** Called after each of the CLIENTS × STEPS steps with the number done so far. */
  onStep?: (done: number) => void;
  /**
   * More source ports: this many sockets of their own, each sending one `wl.sources:1|c`
   * (in the model) first, all kept open until the clients have closed so that every port
   * differs from every client's. Under the kernel hash each of the CLIENTS + sources ports
   * lands on either of 2 workers independently: all on one has odds 2^-(CLIENTS + sources - 1).
   */
  sources?: number;
}

/** Sends the workload to 127.0.0.1:port and returns what must be flushed for it. */
export async function sendWorkload(port: number, opts: WorkloadOptions = {}): Promise<Expected> {
  let done = 0;
  const m = model();
  const sources = await Promise.all(
    Array.from({ length: opts.sources ?? 0 }, async () => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      return s;
    }),
  );
  for (const s of sources) {
    await new Promise<void>((r, j) => s.send('wl.sources:1|c', port, '127.0.0.1', (err) => (err ? j(err) : r())));
    m.count('wl.sources', 1);
  }
  // hot-shots drops sampled metrics at random (Math.random() < rate): with 0 every
  // one is sent, with its "|@rate", so the expected totals are known exactly.
  const random = Math.random;
  Math.random = () => 0;
  const errors: Error[] = [];
  try {
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) =>
        new StatsD({
          host: '127.0.0.1',
          port,
          includeDataDogTags: false,
          errorHandler: (e: Error) => void errors.push(e),
          // Odd clients buffer: several metrics per datagram, newline-separated.
          ...(i % 2 === 1 ? { maxBufferSize: 1000, bufferFlushInterval: 20 } : {}),
        }),
    );
    await Promise.all(
      clients.map(async (c, i) => {
        for (let j = 0; j < STEPS; j++) {
          c.increment('wl.hits');
          m.count('wl.hits', 1);
          if (j % 4 === 0) {
            const v = (i * 7 + j) % 50;
            c.increment('wl.bytes', v);
            m.count('wl.bytes', v);
          }
          if (j % 5 === 0) {
            c.increment('wl.sampled', 2, 0.25);
            m.count('wl.sampled', 8);
          }
          if (j % 10 === 0) {
            c.increment('wl.tagged', 1, ['route:home', 'env:prod']); // unsorted on purpose
            m.count('wl.tagged;env=prod;route=home', 1);
          } else if (j % 10 === 5) {
            c.increment('wl.tagged', 1, ['env:dev']);
            m.count('wl.tagged;env=dev', 1);
          }
          if (j % 8 === 0) {
            c.decrement('wl.balance', 3);
            m.count('wl.balance', -3);
          }
          // A gauge of this client's own: absolute values and deltas, so order matters.
          // Only unbuffered clients mix the two: a buffered client's lines of one gauge can
          // share a datagram's receive time, and the model cannot know how hot-shots packs
          // them with other clients' lines. Buffered clients' own gauges take deltas only.
          const own = `wl.conn.c${i}`;
          const buffered = i % 2 === 1;
          if (j % 50 === 0 && !buffered) {
            c.gauge(own, 100 + i);
            m.gauge(own, 100 + i, false);
          } else if (j % 3 === 0) {
            c.gaugeDelta(own, (j % 7) + 1);
            m.gauge(own, (j % 7) + 1, true);
          } else if (j % 3 === 1) {
            c.gaugeDelta(own, -((j % 5) + 1));
            m.gauge(own, -((j % 5) + 1), true);
          }
          // A gauge every client moves, with deltas only.
          const d = j % 2 === 0 ? 2 : -1;
          c.gaugeDelta('wl.inflight', d);
          m.gauge('wl.inflight', d, true);
          const lat = ((i * 131 + j * 17) % 997) / 4;
          c.timing('wl.latency', lat);
          m.time('wl.latency', lat, 1);
          if (j % 3 === 0) {
            c.timing('wl.lat_sampled', j % 100, 0.5);
            m.time('wl.lat_sampled', j % 100, 0.5);
          }
          if (j % 2 === 0) {
            c.histogram('wl.size', (i + j) % 64);
            m.time('wl.size', (i + j) % 64, 1);
          }
          const user = `u${(i * 13 + j) % 97}`;
          c.set('wl.users', user);
          m.member('wl.users', user);
          if (j % 20 === 0) {
            const ip = `10.0.${i}.${j % 7}`;
            c.set('wl.ips', ip);
            m.member('wl.ips', ip);
          }
          opts.onStep?.(++done);
          if (j % 4 === 3) await sleep(8); // pacing, 16 clients × 4 steps / 8 ms: the rate 6 clients had with 3 ms
        }
        await new Promise<void>((r) => c.close(() => r()));
      }),
    );
  } finally {
    Math.random = random;
    for (const s of sources) s.close();
  }
  if (errors.length) throw errors[0];
  // Raw datagrams: bad lines alone, and one among good lines of the same datagram.
  const raw = dgram.createSocket('udp4');
  const datagrams = ['garbage', 'wl.bad:abc|c', 'wl.bad:1|c|@x', 'wl.bad:-1|ms', 'wl.hits:1|c\nnot a metric\nwl.users:zz|s'];
  for (const d of datagrams) await new Promise<void>((r, j) => raw.send(d, port, '127.0.0.1', (err) => (err ? j(err) : r())));
  raw.close();
  m.e.badLines += 5;
  m.e.metrics += 5; // the bad lines; the two good ones are counted below
  m.count('wl.hits', 1);
  m.member('wl.users', 'zz');
  return m.e;
}

/** A timer's expected figures, computed the textbook way (ascending sum; nearest-rank percentiles). */
export function expectedTimer(values: readonly number[], count: number, percentiles: readonly number[]): Record<string, number> {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  let sum = 0;
  for (const x of v) sum += x;
  const out: Record<string, number> = {
    count,
    sum,
    mean: sum / n,
    min: v[0]!,
    max: v[n - 1]!,
    median: n % 2 ? v[(n - 1) / 2]! : (v[n / 2 - 1]! + v[n / 2]!) / 2,
  };
  for (const p of percentiles) out[`p${String(p).replace('.', '_')}`] = v[Math.round((p / 100) * n) - 1]!;
  return out;
}
