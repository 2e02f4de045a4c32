/** `shardgram serve <app>`: run a sharded UDP service until SIGINT/SIGTERM. */
import { availableParallelism } from 'node:os';
import { Supervisor } from '../supervisor/supervisor.js';
import { startStatsServer, type StatsServer } from '../stats-server.js';
import { startServiceControl } from '../control/service.js';
import type { ControlServer } from '../control/server.js';
import { controlDir } from '../control/paths.js';
import { UDP6_MAX_PAYLOAD, UDP_MAX_PAYLOAD } from '../ffi/kernel.js';
import { UsageError, byteOption, choice, intOption, parse, type Options } from './args.js';
import { POLICY_NAMES, parsePolicy } from '../steering/policies.js';
import { familyOf } from '../ffi/sockaddr.js';

export const SERVE_USAGE = `Usage: shardgram serve <app> --port P [options]

Runs <app> on UDP address:port with one worker process per SO_REUSEPORT socket.
The supervisor keeps every socket open, so a worker that dies is restarted on the
same socket with its queued datagrams intact. SIGINT/SIGTERM drain every queue,
then exit 0.

Apps:
  echo              reply "Hello from worker <i> (pid <pid>): " + the datagram
  discard           receive and count only
  statsd            StatsD/DogStatsD aggregation, exact across workers (docs/statsd.md);
                    defaults: --policy key, --engine native, --rcvbuf 4m
  syslog            RFC 5424/3164 receiver writing JSON lines (docs/syslog.md)
  ./path/to/app.js  a module whose default export is a ShardApp (see docs/)

Options:
  -p, --port P          UDP port to bind, 0-65535 (0: the kernel picks; printed). Required.
  -a, --address A       IPv4 or IPv6 address to bind (default 127.0.0.1)
  -w, --workers N       worker processes and sockets, 1-256 (default: cores, ${availableParallelism()} here)
  -e, --engine E        dgram (Node's socket, one recvmsg per datagram) or native
                        (batched recvmmsg through libc) (default: the app's, else dgram)
  -P, --policy P        how the kernel picks a worker per datagram (default: the app's, else hash):
                          hash    the kernel's 4-tuple hash: one source port, one worker
                          random  even per datagram, whatever the source
                          cpu     the worker of the CPU that received the packet (pairs with RSS)
                          key     a hash of the payload up to a delimiter: one key, one worker
      --key-delimiter C the byte that ends the key for --policy key (default ':')
      --key-max-length N  most key bytes hashed for --policy key, 1-256, rounded up to a
                        multiple of 4 (default 64)
      --rcvbuf BYTES    SO_RCVBUF per socket, e.g. 4m; capped by net.core.rmem_max
                        (a warning says so) (default: the app's, else the kernel's)
      --rcvbuf-force    use SO_RCVBUFFORCE to go past net.core.rmem_max (needs CAP_NET_ADMIN)
      --max-datagram B  largest datagram the native engine takes whole, 1-${UDP_MAX_PAYLOAD} over IPv4,
                        1-${UDP6_MAX_PAYLOAD} over IPv6 (default: the most); longer ones are counted
                        as truncated
      --batch N         datagrams per recvmmsg/sendmmsg call, native engine (default 64)
  -s, --stats-port S    serve GET /stats (JSON) and GET /metrics (Prometheus) on
                        http://127.0.0.1:S (0: pick a free port; printed)
  -c, --control PATH    the owner-only control socket (resize, reload, takeover) (default:
                        ${controlDir()}/udp-<address>-<port>.sock)
  -o, --app-option K=V  option for the app (repeatable)
      --drain-timeout MS  longest a stop waits for a worker's queue to empty (default 10000)
      --stall-timeout MS  a worker that reads nothing while its queue holds datagrams, or sends
                        no heartbeat, this long is reported stalled and replaced (default 5000; 0 never)
  -h, --help            show this help

App flags (shorthands for --app-option; each goes with its app only):
  statsd: --flush-interval MS   flush every MS milliseconds (default 10000)
          --percentiles LIST    timer percentiles, e.g. 90,95,99 (default 90)
          --json-out FILE       append one JSON object per flush to FILE
          --graphite HOST:PORT  send each flush as Graphite plaintext over TCP
  syslog: --out FILE            append JSON records to FILE (default: standard output)
          --max-bytes SIZE      rotate FILE when it reaches SIZE, e.g. 100m (default: never)
          --keep N              rotated files kept, 1-1000 (default 5)

While it runs:
  SIGHUP                       rolling reload: one worker at a time, a new process (new code)
                               starts on the same socket, then the old one drains and exits
  shardgram scale --port P --workers N
                               grow or shrink the group under load through the control
                               socket; a shrink drains the retired sockets first
`;

const OPTIONS: Options = {
  port: { type: 'string', short: 'p' },
  address: { type: 'string', short: 'a' },
  workers: { type: 'string', short: 'w' },
  engine: { type: 'string', short: 'e' },
  policy: { type: 'string', short: 'P' },
  'key-delimiter': { type: 'string' },
  'key-max-length': { type: 'string' },
  rcvbuf: { type: 'string' },
  'rcvbuf-force': { type: 'boolean' },
  'max-datagram': { type: 'string' },
  batch: { type: 'string' },
  'stats-port': { type: 'string', short: 's' },
  control: { type: 'string', short: 'c' },
  'app-option': { type: 'string', short: 'o', multiple: true },
  'drain-timeout': { type: 'string' },
  'stall-timeout': { type: 'string' },
};

/** App flags: CLI flag → [app, app option]. */
const APP_FLAGS: Record<string, [app: string, option: string]> = {
  'flush-interval': ['statsd', 'flushInterval'],
  percentiles: ['statsd', 'percentiles'],
  'json-out': ['statsd', 'jsonOut'],
  graphite: ['statsd', 'graphite'],
  out: ['syslog', 'out'],
  'max-bytes': ['syslog', 'maxBytes'],
  keep: ['syslog', 'keep'],
};
for (const flag of Object.keys(APP_FLAGS)) OPTIONS[flag] = { type: 'string' };

export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, OPTIONS, SERVE_USAGE);
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const u = SERVE_USAGE;
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `one app expected; got ${positionals.join(' ')}` : 'which app? e.g. shardgram serve echo --port 9000', u);
  if (values.port === undefined) throw new UsageError('--port is required', u);
  const port = intOption(values, 'port', 0, 65535, u)!;
  const appOptions: Record<string, string> = {};
  for (const kv of (values['app-option'] as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--app-option must be KEY=VALUE; got "${kv}"`, u);
    appOptions[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  for (const [flag, [app, option]] of Object.entries(APP_FLAGS)) {
    const v = values[flag];
    if (v === undefined) continue;
    if (positionals[0] !== app) throw new UsageError(`--${flag} goes with the ${app} app, not ${positionals[0]}`, u);
    appOptions[option] = String(v);
  }
  const rcvbuf = byteOption(values, 'rcvbuf', u);
  const address = (values.address as string | undefined) ?? '127.0.0.1';
  if (!familyOf(address) || address.includes('%')) throw new UsageError(`--address must be an IPv4 or IPv6 literal such as 127.0.0.1 or ::1; got "${address}"`, u);
  const statsPort = intOption(values, 'stats-port', 0, 65535, u);
  const policyName = values.policy === undefined ? undefined : choice(values, 'policy', POLICY_NAMES, u, 'hash');
  if (policyName !== 'key' && (values['key-delimiter'] !== undefined || values['key-max-length'] !== undefined)) {
    throw new UsageError('--key-delimiter and --key-max-length go with --policy key', u);
  }
  let policy;
  try {
    policy = policyName === undefined ? undefined : parsePolicy(policyName, {
      ...(values['key-delimiter'] !== undefined ? { delimiter: String(values['key-delimiter']) } : {}),
      ...(values['key-max-length'] !== undefined ? { maxLength: String(values['key-max-length']) } : {}),
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new UsageError(msg.replace(/^key delimiter/, '--key-delimiter').replace(/^key max length/, '--key-max-length'), u);
  }
  const sup = new Supervisor({
    app: positionals[0]!,
    port,
    address,
    workers: intOption(values, 'workers', 1, 256, u, availableParallelism()),
    ...(values.engine !== undefined ? { engine: choice(values, 'engine', ['dgram', 'native'] as const, u, 'dgram') } : {}),
    ...(policy ? { policy } : {}),
    ...(rcvbuf !== undefined ? { rcvbuf } : {}),
    rcvbufForce: Boolean(values['rcvbuf-force']),
    ...(values['max-datagram'] !== undefined ? { maxDatagram: intOption(values, 'max-datagram', 1, UDP6_MAX_PAYLOAD, u) } : {}),
    batch: intOption(values, 'batch', 1, 1024, u, 64),
    drainTimeoutMs: intOption(values, 'drain-timeout', 0, 3_600_000, u, 10_000),
    stallTimeoutMs: intOption(values, 'stall-timeout', 0, 3_600_000, u, 5000),
    appOptions,
  });
  let stats: StatsServer | undefined;
  let control: ControlServer | undefined;
  if (statsPort !== undefined) stats = await startStatsServer(sup, statsPort);
  sup.on('worker-ready', ({ index, pid, restart }) => {
    process.stdout.write(`worker ${index} ${restart ? 'restarted' : 'ready'}: pid ${pid}, udp ${fmt(sup.address, sup.port)}\n`);
  });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: draining ${plural(sup.workers, 'worker')} (again to stop at once)…\n`);
    const report = await sup.stop();
    await Promise.all([stats?.close(), control?.close()]);
    const s = sup.stats();
    process.stdout.write(
      `stopped: ${s.total.datagrams} datagrams received, ${s.total.kernelDrops} dropped by the kernel, ` +
        `${report.droppedAtClose} still queued at close (counted and dropped)\n`,
    );
    process.exit(0);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stopping) {
      void stop(signal);
      return;
    }
    // A second signal: stop now, saying what that costs.
    const q = sup.stats().total.queueBytes;
    process.stderr.write(`${signal} again: exiting without draining; ${q} bytes still queued are dropped\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => {
    if (stopping) return;
    process.stderr.write('SIGHUP: rolling reload, one worker at a time…\n');
    sup.reload().then(
      (r) => process.stdout.write(`reloaded: ${r.workers} workers on new processes\n`),
      (err: unknown) => process.stderr.write(`reload failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  sup.on('resized', ({ from, to }) => process.stdout.write(`resized: ${from} -> ${to} workers\n`));
  try {
    await sup.start();
  } catch (err) {
    await stats?.close();
    throw err;
  }
  try {
    control = await startServiceControl(sup, values.control === undefined ? undefined : String(values.control), (line) => process.stderr.write(`${line}\n`));
  } catch (err) {
    await sup.stop();
    await stats?.close();
    throw err;
  }
  const o = sup.config;
  process.stdout.write(
    `shardgram: ${o.app} on udp ${fmt(sup.address, sup.port)} with ${plural(o.workers, 'worker')} (${o.engine} engine, ${sup.policy.name} policy)` +
      (stats ? `; stats at ${stats.url}/stats and ${stats.url}/metrics` : '') +
      `; control socket ${control!.path}` +
      '\n',
  );
  await new Promise(() => {
    // until a signal
  });
  return 0;
}

function fmt(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
