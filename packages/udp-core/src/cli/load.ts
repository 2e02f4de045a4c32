/** `shardgram load`: a bounded burst of probes against a running echo service. */
import { runLoad, type LoadReport } from '../load/load.js';
import { UDP_MAX_PAYLOAD } from '../ffi/kernel.js';
import { UsageError, choice, intOption, parseFlags, type Options } from './args.js';
import { LiveBlock, pct, progressLine, table } from './render.js';
import { DEFAULTS } from '../defaults.js';

export const LOAD_USAGE = `Usage: shardgram load --port P [options]

Sends a bounded burst of protobuf probes (sender, sequence number, send time) to
an echo service from many source ports, then reports loss, duplicates and round
trips per worker. It stops by itself: after --count datagrams and the reply wait,
or at --max-duration.

Options:
  -p, --port P          UDP port of the service (required)
  -a, --address A       address of the service (default 127.0.0.1)
  -k, --sources K       source sockets (source ports), 1-4096 (default 64)
  -n, --count N         datagrams to send in all (default 10000)
  -r, --rate R          datagrams per second, 0 for as fast as possible (default 0)
  -b, --size B          datagram size in bytes, 24-${UDP_MAX_PAYLOAD - 64} (default 64)
      --sender S        how to send: native (sendmmsg batches of prebuilt probes
                        through libc; saturates a receiver) or dgram (one
                        node:dgram send per probe) (default native)
      --no-replies      do not wait for echo replies (for discard and other apps)
      --reply-timeout MS  wait this long after the last reply (default 1000)
      --max-duration MS   hard limit on the whole run (default 120000)
      --json            print the report as JSON
  -h, --help            show this help
`;

const OPTIONS: Options = {
  port: { type: 'string', short: 'p' },
  address: { type: 'string', short: 'a' },
  sources: { type: 'string', short: 'k' },
  count: { type: 'string', short: 'n' },
  rate: { type: 'string', short: 'r' },
  size: { type: 'string', short: 'b' },
  sender: { type: 'string' },
  'no-replies': { type: 'boolean' },
  'reply-timeout': { type: 'string' },
  'max-duration': { type: 'string' },
  json: { type: 'boolean' },
};

export async function load(argv: string[]): Promise<number> {
  const u = LOAD_USAGE;
  const values = parseFlags(argv, OPTIONS, u);
  if (!values) return 0;
  if (values.port === undefined) throw new UsageError('--port is required', u);
  const live = new LiveBlock(process.stderr);
  let lastPlain = 0;
  const report = await runLoad({
    port: intOption(values, 'port', 1, 65535, u)!,
    address: (values.address as string | undefined) ?? DEFAULTS.address,
    sources: intOption(values, 'sources', 1, 4096, u, 64)!,
    count: intOption(values, 'count', 1, 100_000_000, u, 10_000)!,
    rate: intOption(values, 'rate', 0, 100_000_000, u, 0)!,
    size: intOption(values, 'size', 24, UDP_MAX_PAYLOAD - 64, u, 64)!,
    expectReplies: !values['no-replies'],
    sender: choice(values, 'sender', ['native', 'dgram'] as const, u, 'native'),
    replyTimeoutMs: intOption(values, 'reply-timeout', 0, 600_000, u, 1000)!,
    maxDurationMs: intOption(values, 'max-duration', 100, 3_600_000, u, 120_000)!,
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
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else process.stdout.write(formatLoadReport(report, !values['no-replies']) + '\n');
  return report.lost > 0 || report.timedOut ? 1 : 0;
}

export function formatLoadReport(r: LoadReport, replies = true): string {
  const lines = [
    `sent ${r.sent} in ${(r.sendMs / 1000).toFixed(2)} s (${Math.round(r.sendRate)}/s, ${r.sender} sender), send errors ${r.sendErrors}` + (r.timedOut ? ' — stopped at --max-duration' : ''),
  ];
  if (!replies) return lines.join('\n');
  lines.push(
    `received ${r.received} distinct replies, lost ${r.lost} (${r.lossPercent.toFixed(2)}%), duplicates ${r.duplicates}, stray ${r.strayReplies}`,
    '',
    table(
      ['worker', 'pids', 'replies', 'share', 'lost', 'rtt p50 ms', 'p90', 'p99', 'max'],
      r.workers.map((w) => [
        String(w.worker), w.pids.join(','), w.replies, pct(r.received ? w.replies / r.received : 0), r.lostByWorker[w.worker] ?? 0,
        w.rttMs.p50.toFixed(3), w.rttMs.p90.toFixed(3), w.rttMs.p99.toFixed(3), w.rttMs.max.toFixed(3),
      ]),
    ),
  );
  if (r.replyDrops) lines.push(`(${r.replyDrops} replies were dropped by the kernel on this command's own sockets: its receive queues were full)`);
  if (r.unattributedLoss) lines.push(`(${r.unattributedLoss} lost probes came from senders served by more than one worker)`);
  return lines.join('\n');
}
