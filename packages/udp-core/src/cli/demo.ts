/**
 * `shardgram demo`: the UDP twin of `for i in {1..20}; do curl localhost:8080; done`
 * against a "Hello from PID" server — an echo service on a free loopback port, a
 * bounded burst from many source ports, a live bar per worker, then the split.
 */
import { Supervisor } from '../supervisor/supervisor.js';
import { runLoad } from '../load/load.js';
import { fairness } from '../stats/fairness.js';
import { choice, intOption, parseFlags } from './args.js';
import { HELP_FLAG, usageOf, type FlagTable } from './flags.js';
import { LiveBlock, bar, pct, table } from './render.js';
import { fmt } from './run-service.js';
import { DEFAULTS, DEMO_DEFAULTS as D, DEMO_LIMITS as L } from '../defaults.js';

export const DEMO_FLAGS: FlagTable = {
  workers: { short: 'w', value: 'N', help: `worker processes, ${L.workers.min}-${L.workers.max} (default ${D.workers})` },
  sources: { short: 'k', value: 'K', help: `source ports, ${L.sources.min}-${L.sources.max} (default ${D.sources})` },
  count: { short: 'n', value: 'N', help: `datagrams, ${L.count.min}-${L.count.max} (default ${D.count})` },
  rate: { short: 'r', value: 'R', help: `datagrams per second, ${L.rate.min}-${L.rate.max}, 0 = unlimited (default ${D.rate})` },
  engine: { short: 'e', value: 'E', help: `native (batched recvmmsg) or dgram (Node's dgram on the same sockets)\n(default ${D.engine})` },
  help: HELP_FLAG,
};

export const DEMO_USAGE = usageOf(
  `Usage: shardgram demo [options]

Starts an echo service on a free port of ${DEFAULTS.address} with several worker processes,
sends a bounded burst of datagrams from many source ports, shows how many each
worker got while it runs, then prints the split and how fair it was. Exits by itself.
`,
  DEMO_FLAGS,
);

export async function demo(argv: string[]): Promise<number> {
  const u = DEMO_USAGE;
  const values = parseFlags(argv, DEMO_FLAGS, u);
  if (!values) return 0;
  const workers = intOption(values, 'workers', L.workers.min, L.workers.max, u, D.workers)!;
  const sources = intOption(values, 'sources', L.sources.min, L.sources.max, u, D.sources)!;
  const count = intOption(values, 'count', L.count.min, L.count.max, u, D.count)!;
  const rate = intOption(values, 'rate', L.rate.min, L.rate.max, u, D.rate)!;
  const engine = choice(values, 'engine', ['dgram', 'native'] as const, u, D.engine);
  const out = process.stdout;
  const live = new LiveBlock(out);
  const logLines: string[] = [];

  const sup = new Supervisor({ app: 'echo', port: 0, workers, engine, snapshotIntervalMs: D.snapshotIntervalMs, log: (l) => logLines.push(l) });
  await sup.start();
  try {
    out.write(`echo service on udp ${fmt(sup.address, sup.port)}: ${workers} worker processes, one SO_REUSEPORT socket each (${engine} engine)\n`);
    for (const [i, pid] of sup.workerPids().entries()) out.write(`  worker ${i}: pid ${pid}\n`);
    out.write(`sending ${count} datagrams from ${sources} source ports${rate ? ` at ${rate}/s` : ''}…\n`);
    let lastPlain = 0;
    const draw = (sent: number, replies: number, elapsedMs: number): void => {
      const s = sup.stats();
      const max = Math.max(1, ...s.workers.map((w) => w.datagrams));
      const rows = s.workers.map((w) => `worker ${w.index} pid ${String(w.pid).padEnd(7)} ${bar(w.datagrams / max, 40)} ${w.datagrams}`);
      const head = `sent ${sent}/${count}  replies ${replies}  ${(elapsedMs / 1000).toFixed(1)} s`;
      if (live.tty) live.draw([head, ...rows].join('\n'));
      else if (elapsedMs - lastPlain >= 1000) {
        lastPlain = elapsedMs;
        out.write(`${head}; per worker: ${s.workers.map((w) => w.datagrams).join(' ')}\n`);
      }
    };
    const report = await runLoad({
      port: sup.port,
      sources,
      count,
      rate,
      size: D.size,
      replyTimeoutMs: D.replyTimeoutMs,
      maxDurationMs: D.maxDurationMs,
      onProgress: (p) => draw(p.sent, p.replies, p.elapsedMs),
    });
    // A graceful stop drains every worker and brings in their final snapshots: exact counts.
    await sup.stop();
    draw(report.sent, report.received, report.durationMs);
    live.done();
    const s = sup.stats();
    out.write(
      '\n' +
        table(
          ['worker', 'pid', 'datagrams', 'share', 'replies', 'rtt p50 ms', 'kernel drops'],
          s.workers.map((w) => {
            const l = report.workers.find((x) => x.worker === w.index);
            return [String(w.index), w.pid, w.datagrams, pct(w.share), l?.replies ?? 0, (l?.rttMs.p50 ?? 0).toFixed(3), w.kernelDrops];
          }),
        ) +
        '\n\n',
    );
    const f = s.fairness;
    const byPort = s.workers.map((w) => report.workers.find((x) => x.worker === w.index)?.senders ?? 0);
    const portFair = fairness(byPort);
    out.write(
      `total ${s.total.datagrams} datagrams received of ${report.sent} sent; ${report.received} replies, ${report.lost} lost, ${s.total.kernelDrops} kernel drops\n` +
        `fairness: Jain ${f.jain.toFixed(4)} (1 = even), shares ${pct(f.minShare)} to ${pct(f.maxShare)}, ` +
        `chi-square ${f.chiSquare.toFixed(2)} on ${f.degreesOfFreedom} df, p = ${f.chiSquareP.toFixed(3)}\n` +
        `source ports per worker: ${byPort.join(' ')}; chi-square p = ${portFair.chiSquareP.toFixed(3)} against an even split\n` +
        `(the kernel hashes each source port to one socket, so datagrams come in clumps of one port's worth;\n` +
        ` the port counts are the fair test of the hash, and one busy port would land on one worker)\n`,
    );
  } finally {
    await sup.stop();
  }
  for (const l of logLines.filter((l) => /warning|fatal|killed|exited/.test(l))) process.stderr.write(`${l}\n`);
  return 0;
}
