#!/usr/bin/env node
// `node bench/top-senders.js`: what the top-senders sketch (packages/udp-core/src/stats/top-senders.ts)
// costs per received datagram, with and without it, side by side in one run.
//
// Both engines run in this process on loopback sockets of their own, one with the
// sketch (64 counters, the default) and one without; a child `shardgram load
// --sender native --no-replies` sends each a bounded burst from many source ports,
// rows interleaved over the rounds. The cost is this process's user+sys CPU from
// the start of a burst until its socket queue is empty again, over the datagrams
// received. A second table times `offer` alone. The result replaces the block
// between the top-senders markers in docs/benchmarks.md (inside its kept notes).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, intArg, median, waitFor } from './lib.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const DIST = join(ROOT, 'packages', 'udp-core', 'dist');
const BIN = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const START = '<!-- top-senders:start (written by `node bench/top-senders.js`) -->';
const END = '<!-- top-senders:end -->';

const USAGE = `Usage: node bench/top-senders.js [options]   (after npm run build)

Receive cost (CPU µs per datagram) of both engines with and without the top-senders
sketch, measured in one run with the rows interleaved, plus the cost of one offer.

Options:
  --count N     datagrams per burst (default 400000)
  --rounds R    rounds; the cost is the median (default 5)
  --sources K   sender source ports (default 64)
  --no-write    print only; leave docs/benchmarks.md alone
  -h, --help    show this help
`;

const args = benchArgs(
  {
    count: { type: 'string', default: '400000' },
    rounds: { type: 'string', default: '5' },
    sources: { type: 'string', default: '64' },
    'no-write': { type: 'boolean', default: false },
  },
  USAGE,
  'bench/top-senders.js',
);
const COUNT = intArg('count', args.count, 10_000, 5_000_000, 'bench/top-senders.js');
const ROUNDS = intArg('rounds', args.rounds, 1, 20, 'bench/top-senders.js');
const SOURCES = intArg('sources', args.sources, 1, 4096, 'bench/top-senders.js');

const { openReusePortSocket, socketMemInfo } = await import(join(DIST, 'ffi', 'socket.js'));
const { NativeEngineSocket } = await import(join(DIST, 'worker', 'engine', 'native.js'));
const { DgramEngineSocket } = await import(join(DIST, 'worker', 'engine', 'dgram.js'));
const { TopSenders } = await import(join(DIST, 'stats', 'top-senders.js'));

function cpuMicros() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function makeRow(engine, topSenders) {
  const s = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 4 << 20 });
  const Engine = engine === 'native' ? NativeEngineSocket : DgramEngineSocket;
  const sock = new Engine({ fd: s.fd, family: 'udp4', index: 0, topSenders, onHandlerError: () => {} });
  sock.on('message', () => {});
  await sock.start();
  return { engine, topSenders, sock, fd: s.fd, port: s.port, costs: [], received: 0, sent: 0 };
}

/** One burst into `row`: CPU of this process from the start until the queue is empty after the sender exits. */
async function burst(row) {
  const before = row.sock.counters.datagrams;
  const cpu0 = cpuMicros();
  const child = spawn(
    process.execPath,
    [
      BIN,
      'load',
      '--port',
      String(row.port),
      '--sender',
      'native',
      '--no-replies',
      '--count',
      String(COUNT),
      '--sources',
      String(SOURCES),
      '--size',
      '100',
      '--max-duration',
      '60000',
    ],
    { stdio: 'ignore' },
  );
  let exited = false;
  child.on('exit', () => (exited = true));
  await waitFor(() => exited, 90_000, 'the sender to exit', 5);
  // The queue empty twice in a row: whatever the engine had taken has been counted.
  let empty = 0;
  await waitFor(
    () => {
      empty = socketMemInfo(row.fd).queueBytes === 0 ? empty + 1 : 0;
      return empty >= 2;
    },
    10_000,
    'the socket queue to read empty',
    5,
  );
  const got = row.sock.counters.datagrams - before;
  row.costs.push((cpuMicros() - cpu0) / Math.max(1, got));
  row.received += got;
  row.sent += COUNT;
}

/** ns per offer, for a stream over `keys` distinct IPv4 senders (fits in the counters or not). */
function offerCost(keys) {
  const t = new TopSenders(64);
  const n = 5_000_000;
  const addrs = Array.from({ length: keys }, (_, i) => 0x0100007f + ((i >> 8) << 24));
  const ports = Array.from({ length: keys }, (_, i) => 10000 + (i & 255));
  let sink = 0;
  const loop = (f) => {
    for (let i = 0; i < 200_000; i++) f(addrs[i % keys], ports[i % keys]);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f(addrs[i % keys], ports[i % keys]);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  // The same loop with an empty body, subtracted.
  const base = loop((a, p) => void (sink += a ^ p));
  return Math.max(0, loop((a, p) => t.offerV4(a, p)) - base) + sink * 0;
}

const load0 = os.loadavg()[0];
const rows = [];
for (const engine of ['native', 'dgram']) for (const k of [0, 64]) rows.push(await makeRow(engine, k));
const started = Date.now();
for (let r = 0; r < ROUNDS; r++) {
  for (const row of r % 2 ? [...rows].reverse() : rows) await burst(row);
  process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
}
for (const row of rows) await row.sock.drain(1000);

const label = (row) => `${row.engine} engine, ${row.topSenders ? `sketch on (${row.topSenders} counters)` : 'sketch off'}`;
const L = [];
L.push(START);
L.push('### Top senders: cost of the sketch per datagram');
L.push('');
L.push(
  `${os.cpus()[0]?.model.split(' ')[0] ?? 'CPU'}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}; load average ${load0.toFixed(1)} at the start (other work on the machine inflates every row alike).`,
);
L.push(`Each engine in one process, with and without the sketch, on its own loopback socket; ${ROUNDS} rounds of`);
L.push(`${COUNT.toLocaleString('en-US')} 100-byte datagrams from ${SOURCES} source ports (\`shardgram load --sender native\`), rows interleaved;`);
L.push('cost = CPU of the receiving process from the start of a burst until its queue is empty, over datagrams received (median, min–max).');
L.push('');
L.push('| receiver | µs/datagram | min–max | received / sent | added by the sketch |');
L.push('|---|---:|---:|---:|---:|');
for (const row of rows) {
  const m = median(row.costs);
  const off = rows.find((x) => x.engine === row.engine && !x.topSenders);
  const delta = row.topSenders
    ? `${m - median(off.costs) >= 0 ? '+' : ''}${(m - median(off.costs)).toFixed(3)} µs (${((m / median(off.costs) - 1) * 100).toFixed(1)}%)`
    : '—';
  L.push(
    `| ${label(row)} | ${m.toFixed(3)} | ${Math.min(...row.costs).toFixed(2)}–${Math.max(...row.costs).toFixed(2)} | ${row.received.toLocaleString('en-US')} / ${row.sent.toLocaleString('en-US')} | ${delta} |`,
  );
}
L.push('');
const few = offerCost(16);
const many = offerCost(4096);
L.push(
  `\`offer\` alone (IPv4 key, no string; loop cost subtracted): ${few.toFixed(1)} ns with 16 senders (all held), ${many.toFixed(1)} ns with 4,096 senders`,
);
L.push('cycling through 64 counters (every offer evicts the smallest: the worst case).');
L.push(END);
const section = L.join('\n');
process.stdout.write(`${section}\n(${Math.round((Date.now() - started) / 1000)} s)\n`);

if (!args['no-write']) {
  const doc = readFileSync(DOC, 'utf8');
  const a = doc.indexOf(START);
  const b = doc.indexOf(END);
  const keepEnd = doc.indexOf('<!-- notes:end -->');
  const next = a >= 0 && b > a ? doc.slice(0, a) + section + doc.slice(b + END.length) : `${doc.slice(0, keepEnd) + section}\n\n${doc.slice(keepEnd)}`;
  writeFileSync(DOC, next);
  process.stderr.write('wrote the top-senders section of docs/benchmarks.md\n');
}
process.exit(0);
