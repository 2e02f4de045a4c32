/** `shardgram load`: a bounded burst of probes against a running echo service. */
import { LOAD_DEFAULTS, LOAD_LIMITS, runLoad, type LoadReport } from '../load/load.js';
import { UsageError, choice, intOption, parseFlags } from './args.js';
import { HELP_FLAG, usageOf, type FlagTable } from './flags.js';
import { LiveBlock, pct, progressLine, table } from './render.js';
import { DEFAULTS } from '../defaults.js';

/** The command's own bounds: a datagram holds at least a probe; the waits in ms. */
const L = LOAD_LIMITS;
const D = LOAD_DEFAULTS;

export const LOAD_FLAGS: FlagTable = {
  port: { short: 'p', value: 'P', help: 'UDP port of the service (required)' },
  address: { short: 'a', value: 'A', help: `address of the service (default ${DEFAULTS.address})` },
  sources: { short: 'k', value: 'K', help: `source sockets (source ports), ${L.sources.min}-${L.sources.max} (default ${D.sources})` },
  count: { short: 'n', value: 'N', help: `datagrams to send in all, ${L.count.min}-${L.count.max} (default ${D.count})` },
  rate: { short: 'r', value: 'R', help: `datagrams per second, 0 for as fast as possible (default ${D.rate})` },
  size: { short: 'b', value: 'B', help: `datagram size in bytes, ${L.size.min}-${L.size.max} (default ${D.size})` },
  sender: {
    value: 'S',
    help: `how to send: native (sendmmsg batches of prebuilt probes\nthrough libc; saturates a receiver) or dgram (one\nnode:dgram send per probe) (default ${D.sender})`,
  },
  'no-replies': { help: 'do not wait for echo replies (for discard and other apps)' },
  'reply-timeout': {
    value: 'MS',
    help: `wait this long after the last reply, ${L.replyTimeoutMs.min}-${L.replyTimeoutMs.max} (default ${D.replyTimeoutMs})`,
  },
  'max-duration': {
    value: 'MS',
    help: `hard limit on the whole run, ${L.maxDurationMs.min}-${L.maxDurationMs.max} (default ${D.maxDurationMs})`,
  },
  json: { help: 'print the report as JSON' },
  help: HELP_FLAG,
};

export const LOAD_USAGE = usageOf(
  `Usage: shardgram load --port P [options]

Sends a bounded burst of protobuf probes (sender, sequence number, send time) to
an echo service from many source ports, then reports loss, duplicates and round
trips per worker. It stops by itself: after --count datagrams and the reply wait,
or at --max-duration.
`,
  LOAD_FLAGS,
);

export async function load(argv: string[]): Promise<number> {
  const u = LOAD_USAGE;
  const values = parseFlags(argv, LOAD_FLAGS, u);
  if (!values) return 0;
  if (values.port === undefined) throw new UsageError('--port is required', u);
  const live = new LiveBlock(process.stderr);
  let lastPlain = 0;
  const report = await runLoad({
    port: intOption(values, 'port', L.port.min, L.port.max, u)!,
    address: (values.address as string | undefined) ?? DEFAULTS.address,
    sources: intOption(values, 'sources', L.sources.min, L.sources.max, u, D.sources)!,
    count: intOption(values, 'count', L.count.min, L.count.max, u, D.count)!,
    rate: intOption(values, 'rate', L.rate.min, L.rate.max, u, D.rate)!,
    size: intOption(values, 'size', L.size.min, L.size.max, u, D.size)!,
    expectReplies: !values['no-replies'],
    sender: choice(values, 'sender', ['native', 'dgram'] as const, u, D.sender),
    replyTimeoutMs: intOption(values, 'reply-timeout', L.replyTimeoutMs.min, L.replyTimeoutMs.max, u, D.replyTimeoutMs)!,
    maxDurationMs: intOption(values, 'max-duration', L.maxDurationMs.min, L.maxDurationMs.max, u, D.maxDurationMs)!,
    onProgress: (p) => {
      const line = progressLine('sending', p.sent, p.count, `replies ${p.replies}`);
      if (live.tty) live.draw(line);
      else if (!values.json && p.elapsedMs - lastPlain >= 1000) {
        lastPlain = p.elapsedMs;
        process.stderr.write(`${line}\n`);
      }
    },
  });
  live.done();
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${formatLoadReport(report, !values['no-replies'])}\n`);
  return report.lost > 0 || report.timedOut ? 1 : 0;
}

export function formatLoadReport(r: LoadReport, replies = true): string {
  const lines = [
    `sent ${r.sent} in ${(r.sendMs / 1000).toFixed(2)} s (${Math.round(r.sendRate)}/s, ${r.sender} sender), send errors ${r.sendErrors}` +
      (r.timedOut ? ' — stopped at --max-duration' : ''),
  ];
  if (!replies) return lines.join('\n');
  lines.push(
    `received ${r.received} distinct replies, lost ${r.lost} (${r.lossPercent.toFixed(2)}%), duplicates ${r.duplicates}, stray ${r.strayReplies}`,
    '',
    table(
      ['worker', 'pids', 'replies', 'share', 'lost', 'rtt p50 ms', 'p90', 'p99', 'max'],
      r.workers.map((w) => [
        String(w.worker),
        w.pids.join(','),
        w.replies,
        pct(r.received ? w.replies / r.received : 0),
        r.lostByWorker[w.worker] ?? 0,
        w.rttMs.p50.toFixed(3),
        w.rttMs.p90.toFixed(3),
        w.rttMs.p99.toFixed(3),
        w.rttMs.max.toFixed(3),
      ]),
    ),
  );
  if (r.replyDrops) lines.push(`(${r.replyDrops} replies were dropped by the kernel on this command's own sockets: its receive queues were full)`);
  if (r.unattributedLoss) lines.push(`(${r.unattributedLoss} lost probes came from senders served by more than one worker)`);
  return lines.join('\n');
}
