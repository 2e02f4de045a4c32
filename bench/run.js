#!/usr/bin/env node
// `npm run bench`: what one datagram costs the receiving processes, for shardgram's
// two engines and the other ways to spread a UDP port over processes, measured
// side by side in one run. Writes docs/benchmarks.md and docs/benchmarks.svg.
//
//   npm run bench [-- options]      (see --help)
//
// Every row receives the same kind of traffic: 100-byte datagrams over loopback
// from a sender that saturates (shardgram's native sendmmsg sender, 64 source
// ports), with a discard app and the same number of receiving processes. The
// receive cost is the user+sys CPU of the receiving processes (/proc/PID/stat)
// over the measured burst, divided by the datagrams they received.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH, ROOT, SETUP_HINT, cpuMicros, fmtInt, intArg, median, readSysctl, sleep, textTable } from './lib.js';
import { ROW_INFO, markdown, svgChart } from './report.js';
import { compileC, hasReusePort, nodeVersionOf, startReceiver } from './receivers.js';
import { runAppSections } from './sections.js';
const OUT = join(BENCH, 'out'); // gitignored: compiled C peers
const BIN = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
const DOCS = join(ROOT, 'docs');

const USAGE = `Usage: npm run bench [-- options]

Measures the receive cost (CPU µs per datagram of the receiving processes), the
loss and the per-worker split of: shardgram's native engine, its dgram engine,
node:cluster workers sharing one dgram socket, a plain C recvmmsg loop blocking in
recvmmsg, the same loop paced as the native engine reads (a timer, then
recvmmsg with MSG_DONTWAIT: the same batch and read delay), and (with --node)
Node's own dgram reusePort option. Prints a table and writes
docs/benchmarks.md and docs/benchmarks.svg.

Options:
  --node PATH       a Node >= 22.12 binary for the reusePort row (see docs/benchmarks.md)
  --workers N       receiving processes per row (default 2)
  --count N         datagrams per measured burst (default 1500000)
  --rounds R        measure every row R times, interleaved; the cost is the median (default 3)
  --size B          datagram size in bytes (default 100)
  --sources K       sender source ports (default 64)
  --sender S        native (shardgram load --sender native) or c (bench/c/sender.c) (default native)
  --rcvbuf BYTES    SO_RCVBUF for every receiving socket (default: the system's)
  --rows LIST       comma-separated subset of: native,dgram,cluster,c,cpaced,reuseport
                    (c: the blocking C loop; cpaced: the paced one)
  --quick           a short smoke run (count 200000, 1 round; short statsd and syslog
                    sections too): checks that every row works, measures little
  --max-minutes M   stop starting new measurements after M minutes (default 6)
  --sections LIST   comma-separated subset of: receive,statsd,timers,remotewrite,syslog,changes,sealed (default: all);
                    statsd: Etsy statsd 0.9.0 vs shardgram statsd, and shardgram statsd's
                    CPU per datagram beside the C recvmmsg floor (bench/statsd.js);
                    timers: statsd timers' flush cost and supervisor memory, exact values
                    vs native histograms, 1k/10k/100k values (bench/statsd-timers.js);
                    remotewrite: statsd's Prometheus remote write into a real Prometheus:
                    samples/s, and the supervisor's CPU per flush with it on and off
                    (bench/statsd-remote-write.js; skipped without prometheus);
                    syslog: rsyslog and syslog-ng vs shardgram syslog, the same paced
                    steps offered to each (bench/syslog.js);
                    changes: takeover, reload, shrink/grow under load (bench/changes.js);
                    sealed: what a group that once had a sealed (connected) member costs
                    each later datagram, groups of 2 to 256 sockets (bench/sealed-member.js)
  --no-write        print only; leave docs/ alone
  -h, --help        show this help
`;

let args;
try {
  args = parseArgs({
    options: {
      node: { type: 'string' },
      workers: { type: 'string', default: '2' },
      count: { type: 'string' },
      rounds: { type: 'string' },
      size: { type: 'string', default: '100' },
      sources: { type: 'string', default: '64' },
      sender: { type: 'string', default: 'native' },
      rcvbuf: { type: 'string' },
      rows: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'max-minutes': { type: 'string', default: '6' },
      'no-write': { type: 'boolean', default: false },
      sections: { type: 'string', default: 'receive,statsd,timers,remotewrite,syslog,changes,sealed' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (err) {
  process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const WORKERS = intArg('workers', args.workers, 1, 32);
const COUNT = intArg('count', args.count ?? (args.quick ? '200000' : '1500000'), 1000, 50_000_000);
const ROUNDS = intArg('rounds', args.rounds ?? (args.quick ? '1' : '3'), 1, 20);
const SIZE = intArg('size', args.size, 24, 1400);
const SOURCES = intArg('sources', args.sources, 1, 4096);
const RCVBUF = args.rcvbuf === undefined ? undefined : intArg('rcvbuf', args.rcvbuf, 1024, 1 << 30);
const MAX_MINUTES = Number(args['max-minutes']);
if (!(MAX_MINUTES > 0 && MAX_MINUTES <= 600)) {
  process.stderr.write(`bench: --max-minutes must be a number of minutes above 0, at most 600; got "${args['max-minutes']}"\n`);
  process.exit(2);
}
const MAX_MS = MAX_MINUTES * 60_000;
const SENDER = args.sender;
if (SENDER !== 'native' && SENDER !== 'c') {
  process.stderr.write(`bench: --sender must be native or c\n`);
  process.exit(2);
}
const WARMUP = Math.min(100_000, Math.max(10_000, Math.floor(COUNT / 10)));
const ALL_ROWS = ['native', 'dgram', 'cluster', 'c', 'cpaced', 'reuseport'];
const WANT = args.rows ? args.rows.split(',').map((s) => s.trim()) : ALL_ROWS;
for (const r of WANT) {
  if (!ALL_ROWS.includes(r)) {
    process.stderr.write(`bench: unknown row "${r}" (rows: ${ALL_ROWS.join(', ')})\n`);
    process.exit(2);
  }
}

const { Supervisor } = await import('@shardgram/udp-core');
/** The native engine's read delay for the discard app (it declares none: DEFAULT_MAX_READ_DELAY_US of engine/pacing.ts), given to the paced C loop. */
const ENGINE_READ_DELAY_US = 500;
const { openReusePortSocket, closeFd } = await import('@shardgram/udp-core/sockets');
const core = { Supervisor, openReusePortSocket, closeFd };
const started = Date.now();
const log = (line) => process.stderr.write(`${line}\n`);
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s`;
const notes = [];

// ---------------------------------------------------------------------------
// Environment
function cpuModel() {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : (os.cpus()[0]?.model ?? 'unknown');
  } catch {
    return 'unknown';
  }
}
// ---------------------------------------------------------------------------
// Senders
function runProcess(cmd, argv, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    child.stderr.on('data', (d) => (err += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0 && !out.trim()) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${err}`));
      else resolve(out);
    });
  });
}

/** Sends `count` datagrams to 127.0.0.1:port; resolves {sent, ms, rate}. */
async function send(kind, c, port, count) {
  const maxMs = Math.max(10_000, Math.ceil(count / 50)); // 50k/s at the very least
  if (kind === 'c') {
    const out = await runProcess(
      c.sender,
      ['--port', String(port), '--count', String(count), '--sources', String(SOURCES), '--size', String(SIZE), '--max-ms', String(maxMs)],
      maxMs + 10_000,
    );
    const r = JSON.parse(out.trim().split('\n').pop());
    return { sent: r.sent, ms: r.ms, rate: r.rate };
  }
  const out = await runProcess(
    process.execPath,
    [
      BIN,
      'load',
      '--port',
      String(port),
      '--sender',
      'native',
      '--no-replies',
      '--json',
      '--count',
      String(count),
      '--size',
      String(SIZE),
      '--sources',
      String(SOURCES),
      '--max-duration',
      String(maxMs),
    ],
    maxMs + 20_000,
  );
  const r = JSON.parse(out);
  return { sent: r.sent, ms: r.sendMs, rate: r.sendRate };
}

/** Waits until the receivers' counts stop moving (the queues are empty), at most 4 s. */
async function settle(rx) {
  let prev = -1;
  const end = Date.now() + 4000;
  let counts = await rx.counts();
  while (Date.now() < end) {
    await sleep(150);
    counts = await rx.counts();
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === prev) break;
    prev = total;
  }
  return counts;
}

async function measure(row, c, node22) {
  const rx = await startReceiver(row, { c, node22, workers: WORKERS, rcvbuf: RCVBUF, readDelayUs: ENGINE_READ_DELAY_US, log });
  try {
    // Warm up (JIT, caches, page faults), then measure a burst from the start of a quiet queue.
    await send(SENDER, c, rx.port, WARMUP);
    const n0 = await settle(rx);
    const c0 = rx.pids.map(cpuMicros);
    const s = await send(SENDER, c, rx.port, COUNT);
    const n1 = await settle(rx);
    const c1 = rx.pids.map(cpuMicros);
    const received = n1.map((v, i) => v - n0[i]);
    const cpu = c1.map((v, i) => v - c0[i]);
    return { sent: s.sent, sendMs: s.ms, received, cpu };
  } finally {
    await rx.stop();
  }
}

// ---------------------------------------------------------------------------
// Sender calibration: shardgram's native sender against a plain C sendmmsg loop,
// both into a socket that nobody reads (so the receiver does not set the pace).
async function calibrateSenders(c) {
  const sink = core.openReusePortSocket({ address: '127.0.0.1', port: 0 });
  const n = Math.min(COUNT, 1_000_000);
  const rates = { c: [], native: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const kind of ['c', 'native']) {
        const s = await send(kind, c, sink.port, n);
        rates[kind].push(s.rate);
        log(
          `${elapsed()}  sender calibration ${r + 1}/${ROUNDS}: ${kind === 'c' ? 'C sendmmsg loop' : 'native sender'} ${Math.round(s.rate).toLocaleString('en-US')} datagrams/s`,
        );
      }
    }
  } finally {
    core.closeFd(sink.fd);
  }
  return { count: n, c: median(rates.c), native: median(rates.native), all: rates };
}

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
const SECTIONS = String(args.sections)
  .split(',')
  .map((x) => x.trim())
  .filter(Boolean);
for (const x of SECTIONS) {
  if (!['receive', 'statsd', 'timers', 'remotewrite', 'syslog', 'changes', 'sealed'].includes(x)) {
    process.stderr.write(`bench: --sections takes receive, statsd, timers, remotewrite, syslog, changes, sealed; got "${x}"\n`);
    process.exit(2);
  }
}

const appSections = () => runAppSections({ sections: SECTIONS, quick: args.quick, log, elapsed });

async function main() {
  if (!SECTIONS.includes('receive')) {
    const extra = await appSections();
    process.stdout.write(`${extra.join('\n')}\n`);
    return;
  }
  const env = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpuModel(),
    cores: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    rmemDefault: readSysctl('net.core.rmem_default'),
    rmemMax: readSysctl('net.core.rmem_max'),
  };
  log(
    `shardgram benchmark: ${WORKERS} receiving processes per row, ${fmtInt(COUNT)} datagrams of ${SIZE} bytes per burst, ${ROUNDS} round(s), ${SENDER} sender`,
  );
  log(`${env.cpu}, ${env.cores} cores, ${env.kernel}, Node ${env.node}`);
  const load = os.loadavg()[0];
  if (load > 0.5) log(`note: load average is ${load.toFixed(2)}: something else is running; figures will be noisy (ratios within this run still compare).`);

  const c = compileC(OUT, notes);
  if (!c) notes.push(`No C compiler (cc, gcc or clang) was found: the C rows (floor and sender calibration) were skipped (${SETUP_HINT}).`);
  else log(`${elapsed()}  compiled bench/c/*.c with ${c.cc} into ${relative(ROOT, OUT)}/`);
  let senderKind = SENDER;
  if (senderKind === 'c' && !c?.sender) {
    notes.push('--sender c needs a C compiler: the native sender was used.');
    senderKind = 'native';
  }

  let node22;
  let node22Version;
  if (args.node) {
    node22Version = nodeVersionOf(args.node);
    if (!node22Version) notes.push(`--node ${args.node} did not run: the reusePort row was skipped.`);
    else if (!hasReusePort(node22Version))
      notes.push(`--node ${args.node} is ${node22Version}; dgram's reusePort needs Node >= 22.12 (or >= 23.1): the reusePort row was skipped.`);
    else node22 = args.node;
  } else if (WANT.includes('reuseport')) {
    notes.push(
      "Node's dgram `reusePort` row needs `--node PATH` to a Node >= 22.12 binary; it was not given, so the row was skipped (see below for how to get one).",
    );
  }
  const rows = WANT.filter((r) => (r === 'c' || r === 'cpaced' ? Boolean(c?.recv) : r === 'reuseport' ? Boolean(node22) : true));

  // Sender calibration
  let senders;
  if (c?.sender) senders = await calibrateSenders(c);

  // Rows, interleaved over rounds so that drifting background load hits all alike
  const results = new Map(rows.map((r) => [r, []]));
  const total = rows.length * ROUNDS;
  let done = 0;
  let cutShort = false;
  outer: for (let round = 0; round < ROUNDS; round++) {
    for (const row of rows) {
      if (Date.now() - started > MAX_MS) {
        cutShort = true;
        break outer;
      }
      done++;
      log(`${elapsed()}  [${done}/${total}] round ${round + 1}: ${ROW_INFO[row].label} …`);
      try {
        const m = await measure(row, c, node22);
        results.get(row).push(m);
        const rec = m.received.reduce((a, b) => a + b, 0);
        const cpu = m.cpu.reduce((a, b) => a + b, 0);
        log(
          `${elapsed()}        sent ${fmtInt(m.sent)} at ${fmtInt(m.sent / (m.sendMs / 1000))}/s, received ${fmtInt(rec)} (loss ${((100 * (m.sent - rec)) / m.sent).toFixed(2)}%), ${(cpu / rec).toFixed(3)} µs/datagram, split ${m.received.map((v) => fmtInt(v)).join(' / ')}`,
        );
      } catch (err) {
        log(`        failed: ${err.message}`);
        notes.push(`${ROW_INFO[row].label}, round ${round + 1}: ${err.message.split('\n')[0]}`);
      }
    }
  }
  if (cutShort) notes.push(`Stopped starting measurements after --max-minutes ${args['max-minutes']}: some rows have fewer rounds.`);

  // Aggregate
  const summary = [];
  for (const row of rows) {
    const ms = results.get(row);
    if (!ms.length) continue;
    const sent = ms.reduce((a, m) => a + m.sent, 0);
    const perWorker = ms[0].received.map((_, i) => ms.reduce((a, m) => a + (m.received[i] ?? 0), 0));
    const received = perWorker.reduce((a, b) => a + b, 0);
    const cpu = ms.reduce((a, m) => a + m.cpu.reduce((x, y) => x + y, 0), 0);
    const costs = ms.map((m) => m.cpu.reduce((x, y) => x + y, 0) / m.received.reduce((x, y) => x + y, 0));
    const sendSec = ms.reduce((a, m) => a + m.sendMs, 0) / 1000;
    summary.push({
      row,
      rounds: ms.length,
      sent,
      received,
      cpu,
      cost: median(costs),
      costMin: Math.min(...costs),
      costMax: Math.max(...costs),
      lossPct: (100 * (sent - received)) / sent,
      split: perWorker.map((v) => v / received),
      sendRate: sent / sendSec,
      recvRate: received / sendSec,
    });
  }
  const get = (row) => summary.find((s) => s.row === row);
  const dg = get('dgram');
  const cf = get('c');
  const cp = get('cpaced');
  const nat = get('native');

  const header = ['receiver', 'µs/datagram', 'min–max', '× dgram', '× C floor', '× paced C', 'received / sent', 'loss', 'sent/s', 'per-worker split'];
  const tableRows = summary.map((s) => [
    ROW_INFO[s.row].label,
    s.cost.toFixed(3),
    `${s.costMin.toFixed(2)}–${s.costMax.toFixed(2)}`,
    dg ? (s.cost / dg.cost).toFixed(2) : '–',
    cf ? (s.cost / cf.cost).toFixed(2) : '–',
    cp ? (s.cost / cp.cost).toFixed(2) : '–',
    `${fmtInt(s.received)} / ${fmtInt(s.sent)}`,
    `${s.lossPct.toFixed(2)}%`,
    fmtInt(s.sendRate),
    s.split.map((f) => `${(f * 100).toFixed(1)}%`).join(' / '),
  ]);

  const targets = [];
  if (nat && dg) targets.push({ what: 'native engine ≤ 0.6 × dgram engine', value: nat.cost / dg.cost, limit: 0.6 });
  if (nat && cf) targets.push({ what: 'native engine ≤ 1.5 × C recvmmsg floor (blocking loop)', value: nat.cost / cf.cost, limit: 1.5 });
  if (nat && cp)
    targets.push({ what: 'native engine ≤ 1.10 × C recvmmsg floor (paced loop, same batch and read delay)', value: nat.cost / cp.cost, limit: 1.1 });
  if (senders) targets.push({ what: 'C sendmmsg rate ≤ 1.5 × native sender rate', value: senders.c / senders.native, limit: 1.5 });

  const out = [];
  out.push('');
  out.push(textTable(header, tableRows));
  out.push('');
  if (senders) {
    out.push(
      `senders (${fmtInt(senders.count)} datagrams into an unread socket, median of ${ROUNDS}): C sendmmsg loop ${fmtInt(senders.c)}/s, native sender ${fmtInt(senders.native)}/s: native/C = ${(senders.native / senders.c).toFixed(2)} (C is ${(senders.c / senders.native).toFixed(2)}× the native sender)`,
    );
  }
  for (const t of targets) out.push(`target ${t.what}: ${t.value.toFixed(2)} → ${t.value <= t.limit ? 'met' : 'MISSED'}`);
  for (const n of notes) out.push(`note: ${n}`);
  process.stdout.write(`${out.join('\n')}\n`);

  const extra = await appSections();
  if (extra.length) process.stdout.write(`\n${extra.join('\n')}\n`);
  if (args['no-write']) return;
  mkdirSync(DOCS, { recursive: true });
  const meta = `${WORKERS} receiving processes · ${SIZE}-byte datagrams · ${env.cores} cores · ${env.date.slice(0, 10)}`;
  writeFileSync(join(DOCS, 'benchmarks.svg'), svgChart(summary, meta));
  writeFileSync(
    join(DOCS, 'benchmarks.md'),
    markdown({
      env,
      summary,
      tableRows,
      header,
      senders,
      targets,
      node22Version,
      senderKind,
      extra,
      notes,
      run: { workers: WORKERS, size: SIZE, sources: SOURCES, count: COUNT, warmup: WARMUP, rounds: ROUNDS, rcvbuf: RCVBUF },
    }),
  );
  log(`${elapsed()}  wrote docs/benchmarks.md and docs/benchmarks.svg`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
