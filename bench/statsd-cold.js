// The cold-start, one-hot-name section of the StatsD bench (`node bench/statsd.js
// --cold-burst`, and `npm run bench`): Etsy statsd and `shardgram serve statsd` started
// fresh every round and sent one name's burst the moment they are ready, then again warm.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ROOT, mdTable, readSysctl, startServe, udpQueues, waitDrained } from './lib.js';
import { runSender } from './statsd-sender.js';
import { ETSY, FLUSH_MS, benchCounterTotal, cpuMs, int, pct, startEtsy } from './statsd-peers.js';

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
    ({ p, port } = await startEtsy(dir, out));
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
    return { bursts, received: benchCounterTotal(out) };
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
