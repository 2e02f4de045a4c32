// The statsd timers' two modes side by side (`npm run bench -- --sections timers`, or
// `node bench/statsd-timers.js` after npm run build): for 1, 10 and 100 thousand timer
// values per flush interval, spread over two workers, what the supervisor's flush costs
// (the workers' partials copied as IPC copies them, merged, finished) and what it holds
// (the partials' bytes as IPC carries them, and the heap the merge grew by), exact mode
// (every raw value) against histogram mode (native histograms of schema 5).
//
// In one process, no sockets: it measures the representation, not the receive path.
import { deserialize, serialize } from 'node:v8';
import { pathToFileURL } from 'node:url';
import { benchArgs, intArg, median, textTable } from './lib.js';

const SIZES = [1_000, 10_000, 100_000];
const WORKERS = 2;
export const QUICK = { rounds: 1, sizes: [1_000, 10_000] };

/** Latencies (ms) spread over 0.1 ms … 10 s, log-uniform, deterministic. */
function latencies(n) {
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return Array.from({ length: n }, () => Number((0.1 * Math.exp(rnd() * Math.log(1e5))).toFixed(3)));
}

function gc() {
  if (typeof globalThis.gc === 'function') globalThis.gc();
}

/** The statsd app's own aggregation and merge (not exported: loaded from the build). */
async function loadModules() {
  const { PartialAggregate } = await import(new URL('../packages/examples/dist/statsd/aggregate.js', import.meta.url).href);
  const { IntervalMerge, GaugeStore } = await import(new URL('../packages/examples/dist/statsd/merge.js', import.meta.url).href);
  return { PartialAggregate, IntervalMerge, GaugeStore };
}

/** One measurement: n values over the workers in `mode`; returns flush µs, partial bytes, heap growth. */
function measure(m, mode, values) {
  const aggs = Array.from({ length: WORKERS }, () => new m.PartialAggregate({ timers: { mode } }));
  values.forEach((v, i) => {
    aggs[i % WORKERS].datagram(`api.latency:${v}|ms`);
  });
  const wire = aggs.map((a) => serialize(a.take()));
  const bytes = wire.reduce((a, b) => a + b.length, 0);
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = process.hrtime.bigint();
  const merge = new m.IntervalMerge({ maxKeys: Infinity, gaugeExpiry: 0, timerSchema: 5 });
  for (const w of wire) merge.add(deserialize(w));
  const heapHeld = process.memoryUsage().heapUsed - heap0;
  merge.finish(new m.GaugeStore(), [90, 99], { timestamp: 0, flush: 1, final: false, interval_ms: 0, missing_workers: [] }, () => {});
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  return { us, bytes, heapHeld: Math.max(0, heapHeld) };
}

/** Runs the rows, interleaved over the rounds; returns a markdown section and the rows. */
export async function runTimerBench({ log = () => {}, rounds = 5, sizes = SIZES } = {}) {
  const m = await loadModules();
  // Warm-up (compiles both paths; not measured).
  for (const mode of ['exact', 'histogram']) measure(m, mode, latencies(2000));
  const rows = [];
  for (const n of sizes) {
    const values = latencies(n);
    const got = { exact: [], histogram: [] };
    for (let r = 0; r < rounds; r++) for (const mode of ['exact', 'histogram']) got[mode].push(measure(m, mode, values));
    for (const mode of ['exact', 'histogram']) {
      const list = got[mode];
      rows.push({ n, mode, us: median(list.map((x) => x.us)), bytes: median(list.map((x) => x.bytes)), heapHeld: median(list.map((x) => x.heapHeld)) });
    }
    log(`timers: ${n} values per interval measured`);
  }
  const kb = (b) => (b / 1024).toFixed(1);
  const table = textTable(
    ['values / interval', 'mode', 'flush (merge + finish) ms', 'partials over IPC KiB', 'supervisor heap held KiB'],
    rows.map((r) => [r.n.toLocaleString('en'), r.mode, (r.us / 1000).toFixed(2), kb(r.bytes), kb(r.heapHeld)]),
  );
  const markdown = [
    '## StatsD timers: exact values against native histograms',
    '',
    `One timer name, ${WORKERS} workers' partials copied as IPC copies them (v8 serialize), merged and finished`,
    `in the supervisor; median of ${rounds} round(s)${typeof globalThis.gc === 'function' ? '' : ' (run node with --expose-gc for steadier heap figures)'}.`,
    'Exact mode carries and holds 8 bytes per value; histogram mode a bounded number of buckets, whatever the traffic.',
    '',
    '```',
    table,
    '```',
    '',
  ].join('\n');
  return { rows, markdown };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = benchArgs(
    { rounds: { type: 'string', default: '5' }, quick: { type: 'boolean', default: false } },
    'Usage: node [--expose-gc] bench/statsd-timers.js [--rounds R] [--quick]',
  );
  const r = await runTimerBench({ log: (l) => process.stderr.write(`${l}\n`), ...(args.quick ? QUICK : { rounds: intArg('rounds', args.rounds, 1, 99) }) });
  process.stdout.write(r.markdown);
}
