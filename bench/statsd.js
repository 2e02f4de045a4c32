#!/usr/bin/env node
// StatsD under a saturating burst: Etsy statsd 0.9.0 (one process) and
// `shardgram serve statsd` (2 workers) get the same burst of single-metric
// datagrams; each one's flushed counter total is what it received.
//
//   node bench/statsd.js [--count N] [--sources K] [--names M] [--rounds R] [--quick] [--json]
//
// or, from another script: `const { markdown, rows } = await runStatsdBench({ log })`.
//
// The sender is a child process running shardgram's native sender (bench/statsd-sender.js):
// prebuilt datagrams ("bench.c17:1|c", 64 names) sent with sendmmsg, round-robin over K
// source sockets bound to 127.0.0.1, as fast as it can (bounded by a count and a time). The
// CPU-per-datagram section (`--per-datagram`) is bench/statsd-cpu.js. After the
// burst each receiver's socket queue is waited empty (/proc/net/udp), then it is
// stopped with SIGTERM: both flush on exit (Etsy from its exit handler, shardgram from
// the app's stop hook after draining), so the counter totals cover the whole burst.
//
// Etsy statsd is the npm devDependency `statsd` (`npm ci`); without it its rows are
// skipped with the reason. Traffic goes only to 127.0.0.1. Build first (`npm run build`).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, benchArgs, cpuMicros, freePort, intArg, mdTable, readSysctl, startServe, udpQueues, waitDrained, waitFor } from './lib.js';
import { runStatsdPerDatagram } from './statsd-cpu.js';
import { HOST, runSender } from './statsd-sender.js';

export { runStatsdPerDatagram };

const SELF = fileURLToPath(import.meta.url);
const ETSY = join(ROOT, 'node_modules', 'statsd', 'stats.js');
/** `--quick`: a smoke run that checks every row works, not a measurement. */
export const QUICK = { count: 20_000, rounds: 1 };
const FLUSH_MS = 600_000; // longer than any run: the only flush is the one on SIGTERM

/** user+sys CPU in ms of the given processes. */
const cpuMs = (pids) => pids.reduce((s, pid) => s + cpuMicros(pid), 0) / 1000;

// ---------------------------------------------------------------- receivers

function spawnLogged(args, opts = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  return { child, log: () => log, exited };
}

const ETSY_BACKEND = `
const fs = require('fs');
exports.init = function (startup, config, events) {
  events.on('flush', function (ts, m) { fs.appendFileSync(config.dumpFile, JSON.stringify({ counters: m.counters }) + '\\n'); });
  return true;
};
`;

// Etsy statsd 0.9.0 has no receive-buffer setting; for the same-buffer rows this
// preload (shared with the tests) gives its dgram socket the SO_RCVBUF shardgram gets
// from --rcvbuf, and it gives Etsy back util.log, which Node 23 removed.
const ETSY_PRELOAD = join(ROOT, 'packages', 'examples', 'test', 'fixtures', 'etsy-rcvbuf.cjs');

async function runEtsy(dir, cfg, { rcvbuf } = {}) {
  const port = await freePort('udp');
  const dump = join(dir, `etsy-${port}.jsonl`);
  writeFileSync(dump, '');
  const backend = join(dir, 'etsy-backend.cjs');
  writeFileSync(backend, ETSY_BACKEND);
  const config = join(dir, `etsy-${port}.js`);
  writeFileSync(
    config,
    JSON.stringify({
      port,
      address: HOST,
      mgmt_port: await freePort('tcp'),
      mgmt_address: HOST,
      flushInterval: FLUSH_MS,
      backends: [backend],
      dumpFile: dump,
    }),
  );
  const p = spawnLogged(['-r', ETSY_PRELOAD, ETSY, config], { env: { ...process.env, ETSY_RCVBUF: String(rcvbuf ?? 0) } });
  try {
    await waitFor(() => /server is up/.test(p.log()) || p.child.exitCode !== null, 10_000, 'Etsy statsd to start');
    if (p.child.exitCode !== null) throw new Error(`Etsy statsd exited at start:\n${p.log()}`);
    const cpu0 = cpuMs([p.child.pid]);
    const s = await runSender({ ...cfg, port });
    await waitDrained(port);
    const cpu = cpuMs([p.child.pid]) - cpu0;
    p.child.kill('SIGTERM');
    await p.exited;
    let received = 0;
    for (const line of readFileSync(dump, 'utf8').split('\n').filter(Boolean)) {
      for (const [k, v] of Object.entries(JSON.parse(line).counters)) if (k.startsWith('bench.')) received += v;
    }
    return { sent: s.sent, sendMs: s.ms, received, cpuMs: cpu };
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
}

async function runShardgram(dir, cfg, { engine, workers, rcvbuf }) {
  const out = join(dir, `shardgram-${Date.now()}-${engine}.jsonl`);
  const args = ['statsd', '--port', '0', '--workers', String(workers), '--engine', engine, '-o', `jsonOut=${out}`, '-o', `flushInterval=${FLUSH_MS}`];
  if (rcvbuf) args.push('--rcvbuf', rcvbuf);
  const sg = await startServe(args, { workers });
  try {
    const cpu0 = cpuMs(sg.pids);
    const s = await runSender({ ...cfg, port: sg.port });
    await waitDrained(sg.port);
    const cpu = cpuMs(sg.pids) - cpu0;
    const drops = udpQueues(sg.port).drops;
    const { code } = await sg.stop('SIGTERM');
    if (code !== 0) throw new Error(`shardgram exited ${code}:\n${sg.log()}`);
    let received = 0;
    for (const line of readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
      for (const [k, v] of Object.entries(JSON.parse(line).counters)) if (k.startsWith('bench.')) received += v;
    }
    return { sent: s.sent, sendMs: s.ms, received, cpuMs: cpu, kernelDrops: drops };
  } finally {
    if (sg.child.exitCode === null && sg.child.signalCode === null) sg.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------- the run

const pct = (x) => `${(100 * x).toFixed(2)}%`;
const int = (n) => Math.round(n).toLocaleString('en-US');

/**
 * Runs the benchmark: Etsy statsd and shardgram statsd (dgram and native engines,
 * 2 workers) each get `rounds` bursts of `count` datagrams. Returns a markdown
 * section and the rows (sums over the rounds).
 */
export async function runStatsdBench({
  log = (line) => process.stderr.write(`${line}\n`),
  count = 400_000,
  sources = 64,
  names = 64,
  rounds = 2,
  workers = 2,
  maxMsPerBurst = 8000,
} = {}) {
  if (!existsSync(join(ROOT, 'packages', 'examples', 'dist', 'statsd.js'))) throw new Error('build first: npm run build');
  if (!Number.isInteger(count) || count < 1 || count > 5_000_000) throw new Error('count: 1 to 5000000');
  const cfg = { count, sources, names, batch: 64, maxMs: maxMsPerBurst };
  const dir = mkdtempSync(join(os.tmpdir(), 'shardgram-statsd-bench-'));
  const big = 4 << 20;
  const etsyMissing = existsSync(ETSY) ? undefined : `Etsy statsd is not installed (${ETSY}): run \`npm ci\` (it is a devDependency); its rows are skipped`;
  if (etsyMissing) log(etsyMissing);
  const configs = [
    { name: 'Etsy statsd 0.9.0 (1 process), default SO_RCVBUF', buffer: 'default', etsy: true, run: () => runEtsy(dir, cfg) },
    {
      name: `shardgram statsd, ${workers} workers, dgram engine, default SO_RCVBUF`,
      buffer: 'default',
      run: () => runShardgram(dir, cfg, { engine: 'dgram', workers }),
    },
    {
      name: `shardgram statsd, ${workers} workers, native engine, default SO_RCVBUF`,
      buffer: 'default',
      run: () => runShardgram(dir, cfg, { engine: 'native', workers }),
    },
    { name: 'Etsy statsd 0.9.0 (1 process), SO_RCVBUF 4 MiB', buffer: '4m', etsy: true, run: () => runEtsy(dir, cfg, { rcvbuf: big }) },
    {
      name: `shardgram statsd, ${workers} workers, native engine, --rcvbuf 4m`,
      buffer: '4m',
      run: () => runShardgram(dir, cfg, { engine: 'native', workers, rcvbuf: '4m' }),
    },
  ].filter((c) => !(c.etsy && etsyMissing));
  const totals = configs.map((c) => ({ name: c.name, buffer: c.buffer, etsy: Boolean(c.etsy), sent: 0, received: 0, cpuMs: 0, sendMs: 0, runs: 0 }));
  const started = Date.now();
  try {
    for (let r = 0; r < rounds; r++) {
      // Interleaved, so that a slow moment of the machine hits every row alike.
      for (const [i, c] of configs.entries()) {
        const res = await c.run();
        const t = totals[i];
        t.sent += res.sent;
        t.received += res.received;
        t.cpuMs += res.cpuMs;
        t.sendMs += res.sendMs;
        t.runs++;
        log(
          `statsd bench round ${r + 1}/${rounds}: ${c.name}: sent ${int(res.sent)} in ${res.sendMs.toFixed(0)} ms, received ${int(res.received)}, lost ${pct(1 - res.received / res.sent)}`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows = totals.map((t) => ({
    name: t.name,
    buffer: t.buffer,
    etsy: t.etsy,
    sent: t.sent,
    received: t.received,
    lost: t.sent - t.received,
    lossPct: (100 * (t.sent - t.received)) / t.sent,
    sendRate: t.sent / (t.sendMs / 1000),
    cpuUsPerReceived: t.received ? (1000 * t.cpuMs) / t.received : 0,
  }));
  const lines = [
    mdTable(
      ['receiver', 'sent', 'received', 'lost', 'loss %', 'receiver CPU µs / received datagram'],
      rows.map((r) => [r.name, int(r.sent), int(r.received), int(r.lost), `${r.lossPct.toFixed(2)}%`, r.cpuUsPerReceived.toFixed(2)]),
    ),
  ];
  // The target, per buffer size: the best shardgram row against Etsy with the same buffer.
  const verdicts = [];
  for (const buffer of ['default', '4m']) {
    const etsy = rows.find((r) => r.etsy && r.buffer === buffer);
    const mine = rows.filter((r) => !r.etsy && r.buffer === buffer);
    if (!etsy || !mine.length) continue;
    const best = mine.reduce((a, b) => (b.lost < a.lost ? b : a));
    const ratio = etsy.lost > 0 ? best.lost / etsy.lost : best.lost === 0 ? 0 : Infinity;
    verdicts.push(
      `- ${buffer === 'default' ? 'default SO_RCVBUF' : 'SO_RCVBUF 4 MiB'}: shardgram (${best.name.split(', ').slice(1, 3).join(', ')}) lost ` +
        `${etsy.lost > 0 ? `${(100 * ratio).toFixed(1)}% of what Etsy statsd lost` : `${int(best.lost)} (Etsy statsd lost none)`}: ` +
        `target (under 10%) ${ratio < 0.1 ? 'met' : 'not met'}.`,
    );
  }
  const markdown = [
    '## StatsD: Etsy statsd vs shardgram statsd under a saturating burst',
    '',
    `${rounds} round${rounds > 1 ? 's' : ''} × ${int(count)} single-metric datagrams ("bench.cNN:1|c", ${names} names) per receiver, from ${sources} source ports, ` +
      `sent with sendmmsg as fast as the sender goes (about ${int(rows.reduce((s, r) => s + r.sendRate, 0) / rows.length)} datagrams/s here), ` +
      `rows interleaved. "received" is the receiver's flushed counter total (both flush on SIGTERM, after the burst has drained). ` +
      `The default SO_RCVBUF is net.core.rmem_default = ${readSysctl('net.core.rmem_default')} bytes; Etsy statsd has no buffer setting, ` +
      `so its 4 MiB rows get it from a preload that sets dgram's recvBufferSize. ` +
      `${os.cpus().length} CPUs, shared by the sender and the receivers; Node ${process.versions.node}; the statsd app's default steering policy (random).`,
    '',
    ...lines,
    '',
    ...verdicts,
    ...(etsyMissing ? [`- ${etsyMissing}.`] : []),
    '',
    `Generated by \`node bench/statsd.js\` on ${new Date().toISOString().slice(0, 10)} in ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  return { markdown, rows };
}

// ---------------------------------------------------------------- cold start, one hot name (issue 13)

/**
 * One receiver, started fresh: as soon as it is ready, a burst of `count` datagrams of
 * ONE name from 64 source ports (the cold burst), drained, then the same burst again
 * (the warm one). Loss per burst is the kernel's drop count on the port's sockets;
 * CPU is the receiver's processes' user+sys during the burst and its drain.
 */
async function coldReceiver(dir, cfg, kind, workers) {
  let p;
  let port;
  let pids;
  const out = join(dir, `cold-${kind}-${Date.now()}.jsonl`);
  writeFileSync(out, '');
  if (kind === 'etsy') {
    port = await freePort('udp');
    const backend = join(dir, 'etsy-backend.cjs');
    writeFileSync(backend, ETSY_BACKEND);
    const config = join(dir, `etsy-cold-${port}.js`);
    writeFileSync(
      config,
      JSON.stringify({
        port,
        address: HOST,
        mgmt_port: await freePort('tcp'),
        mgmt_address: HOST,
        flushInterval: FLUSH_MS,
        backends: [backend],
        dumpFile: out,
      }),
    );
    p = spawnLogged([ETSY, config]);
    await waitFor(() => /server is up/.test(p.log()) || p.child.exitCode !== null, 10_000, 'Etsy statsd to start');
    if (p.child.exitCode !== null) throw new Error(`Etsy statsd exited at start:\n${p.log()}`);
    pids = [p.child.pid];
  } else {
    // Default settings, as a new user runs it: only the port, the worker count and the output.
    const sg = await startServe(['statsd', '--port', '0', '--workers', String(workers), '-o', `jsonOut=${out}`, '-o', `flushInterval=${FLUSH_MS}`], {
      workers,
    });
    p = { child: sg.child, log: sg.log, exited: sg.exited };
    port = sg.port;
    pids = sg.pids;
  }
  try {
    const bursts = [];
    for (const phase of ['cold', 'warm']) {
      const before = udpQueues(port);
      const cpu0 = cpuMs(pids);
      const s = await runSender({ ...cfg, port });
      await waitDrained(port);
      const cpu = cpuMs(pids) - cpu0;
      const lost = udpQueues(port).drops - before.drops;
      bursts.push({ phase, sent: s.sent, sendMs: s.ms, lost, cpuMs: cpu });
    }
    p.child.kill('SIGTERM');
    await p.exited;
    let received = 0;
    for (const line of readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
      for (const [k, v] of Object.entries(JSON.parse(line).counters)) if (k.startsWith('bench.')) received += v;
    }
    return { bursts, received };
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
}

/**
 * The cold-start hot-name burst: Etsy statsd and `shardgram serve statsd` (default
 * settings, 2 workers) each started fresh every round and sent, the moment they are
 * ready, `count` datagrams of one name ("bench.c00:1|c") from 64 source ports; then
 * the same burst again, warm. Returns a markdown section and the rows.
 */
export async function runStatsdColdBurst({
  log = (line) => process.stderr.write(`${line}\n`),
  count = 400_000,
  sources = 64,
  rounds = 3,
  workers = 2,
  maxMsPerBurst = 8000,
} = {}) {
  if (!existsSync(join(ROOT, 'packages', 'examples', 'dist', 'statsd.js'))) throw new Error('build first: npm run build');
  if (!existsSync(ETSY)) throw new Error(`Etsy statsd is not installed (${ETSY}): run \`npm ci\` (it is a devDependency)`);
  const cfg = { count, sources, names: 1, batch: 64, maxMs: maxMsPerBurst };
  const dir = mkdtempSync(join(os.tmpdir(), 'shardgram-statsd-cold-'));
  const rows = [];
  const started = Date.now();
  try {
    for (let r = 1; r <= rounds; r++) {
      for (const kind of ['etsy', 'shardgram']) {
        const res = await coldReceiver(dir, cfg, kind, workers);
        const name = kind === 'etsy' ? 'Etsy statsd 0.9.0 (1 process)' : `shardgram statsd, ${workers} workers, defaults`;
        for (const b of res.bursts) {
          const row = {
            round: r,
            name,
            etsy: kind === 'etsy',
            ...b,
            lossPct: (100 * b.lost) / b.sent,
            sendRate: b.sent / (b.sendMs / 1000),
            cpuUsPerDatagram: (1000 * b.cpuMs) / Math.max(1, b.sent - b.lost),
          };
          rows.push(row);
          log(
            `statsd cold burst round ${r}/${rounds}: ${name}, ${b.phase}: sent ${int(b.sent)} at ${int(row.sendRate)}/s, lost ${int(b.lost)} (${pct(b.lost / b.sent)}), ${row.cpuUsPerDatagram.toFixed(2)} µs CPU/datagram`,
          );
        }
        const sent = res.bursts.reduce((a, b) => a + b.sent, 0);
        const lost = res.bursts.reduce((a, b) => a + b.lost, 0);
        if (res.received !== sent - lost) log(`statsd cold burst: ${name}: flushed ${int(res.received)}, expected sent - dropped = ${int(sent - lost)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const lines = [
    mdTable(
      ['round', 'receiver', 'burst', 'sent', 'datagrams/s', 'lost', 'loss %', 'receiver CPU µs / datagram'],
      rows.map((x) => [x.round, x.name, x.phase, int(x.sent), int(x.sendRate), int(x.lost), `${x.lossPct.toFixed(2)}%`, x.cpuUsPerDatagram.toFixed(2)]),
      ['r', 'l', 'l', 'r', 'r', 'r', 'r', 'r'],
    ),
  ];
  const verdicts = [];
  for (let r = 1; r <= rounds; r++) {
    const e = rows.find((x) => x.round === r && x.etsy && x.phase === 'cold');
    const cold = rows.find((x) => x.round === r && !x.etsy && x.phase === 'cold');
    const warm = rows.find((x) => x.round === r && !x.etsy && x.phase === 'warm');
    const tenth = e.lost > 0 ? cold.lost < e.lost / 10 : cold.lost === 0;
    verdicts.push(
      `- round ${r}: shardgram's cold burst lost ${pct(cold.lost / cold.sent)} against Etsy's ${pct(e.lost / e.sent)} (under a tenth: ${tenth ? 'yes' : 'no'}); cold ${pct(cold.lost / cold.sent)} vs warm ${pct(warm.lost / warm.sent)} (no more than warm: ${cold.lost <= warm.lost ? 'yes' : 'no'}).`,
    );
  }
  const markdown = [
    '## StatsD: cold start, one hot name',
    '',
    `Each round starts each receiver afresh and, the moment it is ready, sends ${int(count)} datagrams of ONE name ("bench.c00:1|c") from ${sources} source ports with sendmmsg as fast as the sender goes ("cold"), waits for the socket queues to drain, then sends the same burst again ("warm"). ` +
      `Lost = the kernel's drop count on the port's sockets. shardgram runs with its defaults (${workers} workers; the statsd app's random policy, native engine, 4 MiB SO_RCVBUF capped by net.core.rmem_max = ${readSysctl('net.core.rmem_max')}); Etsy statsd with its own (net.core.rmem_default = ${readSysctl('net.core.rmem_default')}). ` +
      `${os.cpus().length} CPUs shared by the sender and the receivers; Node ${process.versions.node}.`,
    '',
    ...lines,
    '',
    ...verdicts,
    '',
    `Generated by \`node bench/statsd.js --cold-burst\` on ${new Date().toISOString().slice(0, 10)} in ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  return { markdown, rows };
}

if (process.argv[1] === SELF) {
  const USAGE =
    'Usage: node bench/statsd.js [--count N] [--sources K] [--names M] [--rounds R] [--quick] [--json] [--cold-burst | --per-datagram [--baseline DIR] [--warmup N]]\n' +
    '  --quick: a short smoke run (1 round of 20000 datagrams per row)\n' +
    '  --cold-burst: only the cold-start hot-name burst (3 rounds; Etsy statsd beside shardgram)\n' +
    '  --per-datagram: only the CPU per datagram of shardgram statsd beside the C recvmmsg floor and the discard app (3 rounds)\n' +
    '  --baseline DIR: with --per-datagram, also the statsd of another built checkout at DIR, interleaved (an A/B run)\n' +
    '  --warmup N: with --per-datagram, datagrams sent before the measured burst (default 50000; 0: measure from a cold start)\n' +
    'It prints its section (markdown, or the rows with --json) and writes nothing; `npm run bench` writes docs/benchmarks.md.\n';
  const values = benchArgs(
    {
      count: { type: 'string', default: '400000' },
      sources: { type: 'string', default: '64' },
      names: { type: 'string', default: '64' },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'cold-burst': { type: 'boolean', default: false },
      'per-datagram': { type: 'boolean', default: false },
      baseline: { type: 'string' },
      warmup: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    USAGE,
    'bench/statsd.js',
  );
  const arg = (name, v, min, max) => intArg(name, v, min, max, 'bench/statsd.js');
  values.count = arg('count', values.count, 1000, 50_000_000);
  values.sources = arg('sources', values.sources, 1, 4096);
  values.names = arg('names', values.names, 1, 100_000);
  if (values.rounds !== undefined) values.rounds = arg('rounds', values.rounds, 1, 50);
  if (values.warmup !== undefined) values.warmup = arg('warmup', values.warmup, 0, 50_000_000);
  if (values['per-datagram']) {
    const { markdown, rows } = await runStatsdPerDatagram({
      count: values.quick ? QUICK.count : Number(values.count),
      sources: Number(values.sources),
      names: Number(values.names),
      rounds: values.quick ? QUICK.rounds : Number(values.rounds ?? 3),
      baseline: values.baseline,
      ...(values.quick ? { warmup: 5000 } : {}),
      ...(values.warmup !== undefined ? { warmup: Number(values.warmup) } : {}),
    });
    process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : markdown);
    process.exit(0);
  }
  if (values.baseline !== undefined || values.warmup !== undefined) {
    process.stderr.write('--baseline and --warmup go with --per-datagram\n');
    process.exit(2);
  }
  if (values['cold-burst']) {
    const { markdown, rows } = await runStatsdColdBurst({
      count: values.quick ? QUICK.count : Number(values.count),
      sources: Number(values.sources),
      rounds: values.quick ? QUICK.rounds : Number(values.rounds ?? 3),
    });
    process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : markdown);
    process.exit(0);
  }
  const { markdown, rows } = await runStatsdBench({
    count: values.quick ? QUICK.count : Number(values.count),
    sources: Number(values.sources),
    names: Number(values.names),
    rounds: values.quick ? QUICK.rounds : Number(values.rounds ?? 2),
  });
  process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : markdown);
}
