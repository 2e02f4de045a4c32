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
// CPU-per-datagram section (`--per-datagram`) is bench/statsd-cpu.js, the cold burst
// (`--cold-burst`) bench/statsd-cold.js. After the
// burst each receiver's socket queue is waited empty (/proc/net/udp), then it is
// stopped with SIGTERM: both flush on exit (Etsy from its exit handler, shardgram from
// the app's stop hook after draining), so the counter totals cover the whole burst.
//
// Etsy statsd is the npm devDependency `statsd` (`npm ci`); without it its rows are
// skipped with the reason. Traffic goes only to 127.0.0.1. Build first (`npm run build`).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, benchArgs, intArg, mdTable, readSysctl, startServe, udpQueues, waitDrained } from './lib.js';
import { runStatsdColdBurst } from './statsd-cold.js';
import { runStatsdPerDatagram } from './statsd-cpu.js';
import { ETSY, FLUSH_MS, benchCounterTotal, cpuMs, int, pct, startEtsy } from './statsd-peers.js';
import { runSender } from './statsd-sender.js';

export { runStatsdColdBurst, runStatsdPerDatagram };

const SELF = fileURLToPath(import.meta.url);
/** `--quick`: a smoke run that checks every row works, not a measurement. */
export const QUICK = { count: 20_000, rounds: 1 };

async function runEtsy(dir, cfg, { rcvbuf } = {}) {
  const dump = join(dir, `etsy-${Date.now()}.jsonl`);
  const { p, port } = await startEtsy(dir, dump, { rcvbuf: rcvbuf ?? 0 });
  try {
    const cpu0 = cpuMs([p.child.pid]);
    const s = await runSender({ ...cfg, port });
    await waitDrained(port);
    const cpu = cpuMs([p.child.pid]) - cpu0;
    p.child.kill('SIGTERM');
    await p.exited;
    return { sent: s.sent, sendMs: s.ms, received: benchCounterTotal(dump), cpuMs: cpu };
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
    return { sent: s.sent, sendMs: s.ms, received: benchCounterTotal(out), cpuMs: cpu, kernelDrops: drops };
  } finally {
    if (sg.child.exitCode === null && sg.child.signalCode === null) sg.child.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------- the run

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
