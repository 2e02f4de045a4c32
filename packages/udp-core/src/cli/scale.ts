/** `shardgram scale`: grow or shrink a running service through its stats port. */
import { UsageError, intOption, parse, type Options } from './args.js';
import { ShardgramError } from '../errors.js';

export const SCALE_USAGE = `Usage: shardgram scale --stats-port S --workers N

Asks a running \`shardgram serve … --stats-port S\` to grow or shrink to N workers
(POST /workers?count=N on 127.0.0.1:S). A shrink steers new datagrams away from the
sockets it retires, lets their workers drain them, then closes them: nothing queued
is lost. Waits until the service has finished resizing.

Options:
  -s, --stats-port S   the service's --stats-port (required)
  -w, --workers N      the number of workers wanted, 1-256 (required)
  -h, --help           show this help
`;

const OPTIONS: Options = {
  'stats-port': { type: 'string', short: 's' },
  workers: { type: 'string', short: 'w' },
};

export async function scale(argv: string[]): Promise<number> {
  const u = SCALE_USAGE;
  const { values, positionals } = parse(argv, OPTIONS, u);
  if (values.help) {
    process.stdout.write(u);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, u);
  if (values['stats-port'] === undefined) throw new UsageError('--stats-port is required', u);
  if (values.workers === undefined) throw new UsageError('--workers is required', u);
  const port = intOption(values, 'stats-port', 1, 65535, u)!;
  const count = intOption(values, 'workers', 1, 256, u)!;
  let res: Response;
  try {
    res = await fetch(`http://127.0.0.1:${port}/workers?count=${count}`, { method: 'POST' });
  } catch {
    throw new ShardgramError('ERR_SHARDGRAM_STOPPED', `no shardgram service answers on 127.0.0.1:${port}: is it running with --stats-port ${port}?`);
  }
  const body = (await res.json().catch(() => ({}))) as { from?: number; to?: number; error?: string };
  if (!res.ok) throw new ShardgramError('ERR_SHARDGRAM_WORKER', `resize refused: ${body.error ?? res.statusText}`);
  process.stdout.write(`resized from ${body.from} to ${body.to} workers\n`);
  return 0;
}
