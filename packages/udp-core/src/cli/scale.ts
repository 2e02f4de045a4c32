/** `shardgram scale`: grow or shrink a running service through its control socket. */
import { UsageError, intOption, parseFlags } from './args.js';
import { HELP_FLAG, usageOf, type FlagTable } from './flags.js';
import { LIMITS } from '../defaults.js';
import { controlRequest } from '../control/client.js';
import { controlDir, defaultControlPath, findControlSockets } from '../control/paths.js';

export const SCALE_FLAGS: FlagTable = {
  port: { short: 'p', value: 'P', help: `the service's UDP port (finds its control socket in ${controlDir()})` },
  address: { short: 'a', value: 'A', help: "the service's UDP address, when several services share port P" },
  control: { short: 'c', value: 'PATH', help: "the control socket's path (what `serve` printed), instead of --port" },
  workers: { short: 'w', value: 'N', help: `the number of workers wanted, ${LIMITS.workers.min}-${LIMITS.workers.max} (required)` },
  'stats-port': { short: 's', value: 'S', refusal: "scale no longer goes through the stats port (it is read-only); give the service's UDP --port instead" },
  help: HELP_FLAG,
};

export const SCALE_USAGE = usageOf(
  `Usage: shardgram scale --port P --workers N [--address A] [--control PATH]

Asks the shardgram service on UDP port P to grow or shrink to N workers, through
its control socket (a unix socket only the user running the service can use). A
shrink steers new datagrams away from the sockets it retires, lets their workers
drain them, then closes them: nothing queued is lost. Waits until the service has
finished resizing.
`,
  SCALE_FLAGS,
);

/** The control socket of the service on `port` (and `address`), or a usage error saying what was looked for. */
export function locateControl(values: Record<string, unknown>, usage: string): string {
  if (values.control !== undefined) return String(values.control);
  if (values.port === undefined) throw new UsageError("--port (the service's UDP port) or --control PATH is required", usage);
  const port = intOption(values, 'port', 1, LIMITS.port.max, usage)!;
  if (values.address !== undefined) return defaultControlPath(String(values.address), port);
  const found = findControlSockets(port);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) {
    throw new UsageError(
      `no control socket for UDP port ${port} in ${controlDir()}: is a service running there (as this user)? If it was started with --control PATH, give that path`,
      usage,
    );
  }
  throw new UsageError(`several services use UDP port ${port} (${found.join(', ')}): say which with --address or --control`, usage);
}

export async function scale(argv: string[]): Promise<number> {
  const u = SCALE_USAGE;
  const values = parseFlags(argv, SCALE_FLAGS, u);
  if (!values) return 0;
  if (values.workers === undefined) throw new UsageError('--workers is required', u);
  const count = intOption(values, 'workers', LIMITS.workers.min, LIMITS.workers.max, u)!;
  const path = locateControl(values, u);
  const r = await controlRequest(path, { op: 'resize', workers: count });
  process.stdout.write(`resized from ${String(r.from)} to ${String(r.to)} workers\n`);
  return 0;
}
