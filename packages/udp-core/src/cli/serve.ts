/** `shardgram serve <app>`: run a sharded UDP service until SIGINT/SIGTERM. */
import { availableParallelism } from 'node:os';
import { Supervisor, type SupervisorOptions } from '../supervisor/supervisor.js';
import { checkAddress } from '../supervisor/config.js';
import { controlDir } from '../control/paths.js';
import { fmt, plural, runService, type ReadyInfo, type RunOptions } from './run-service.js';
import { UDP6_MAX_PAYLOAD, UDP_MAX_PAYLOAD } from '../ffi/kernel.js';
import { DEFAULT_MAX_READ_DELAY_US, pacingAllowed } from '../worker/engine/pacing.js';
import { UsageError, byteOption, choice, intOption, limitOption, parse, type Values } from './args.js';
import { HELP_FLAG, optionsOf, usageOf, type FlagTable } from './flags.js';
import { POLICY_FLAG_NAMES, checkPolicy, type SteeringPolicy } from '../steering/policies.js';
import { familyOf } from '../ffi/sockaddr.js';
import { formatByteSize } from '../app/byte-size.js';
import { guardOutput, type GuardedOutput } from '../app/output-guard.js';
import { appFlagOptions, appOptionsFromArgs, appsHelp, findAppName, loadApp, loadBuiltInApps, otherAppsFlag, type LoadedApp } from './serve-app.js';
import { describeError } from '../errors.js';
import { DEFAULTS, LIMITS } from '../defaults.js';

const W = LIMITS.workers;
const KML = LIMITS.keyMaxLength;
const RD = LIMITS.maxReadDelayUs;
const HT = LIMITS.handoverTimeoutMs;

/** serve's own flags (an app adds its own, serve-app.ts), in help order. */
export const SERVE_FLAGS: FlagTable = {
  port: { short: 'p', value: 'P', help: `UDP port to bind, ${LIMITS.port.min}-${LIMITS.port.max} (0: the kernel picks; printed). Required.` },
  address: { short: 'a', value: 'A', help: `IPv4 or IPv6 address to bind (default ${DEFAULTS.address})` },
  workers: {
    short: 'w',
    value: 'N',
    help: `worker processes and sockets, ${W.min}-${W.max} (default: cores, ${availableParallelism()} here;\nwith --takeover or passed sockets: as many as there are)`,
  },
  engine: {
    short: 'e',
    value: 'E',
    help: `dgram (Node's socket, one recvmsg per datagram) or native\n(batched recvmmsg through libc) (default: the app's, else ${DEFAULTS.engine})`,
  },
  policy: {
    short: 'P',
    value: 'P',
    help: `how the kernel picks a worker per datagram (default: the app's, else ${DEFAULTS.policy}):
  hash    the kernel's 4-tuple hash: one source port, one worker
  random  even per datagram, whatever the source
  cpu     the worker of the CPU that received the packet (pairs with RSS)
  key     a hash of the payload up to a delimiter: one key, one worker`,
  },
  'key-delimiter': { value: 'C', help: `the byte that ends the key for --policy key (default '${DEFAULTS.keyDelimiter}')` },
  'key-max-length': {
    value: 'N',
    help: `most key bytes hashed for --policy key, ${KML.min}-${KML.max}, rounded up to a\nmultiple of 4 (default ${DEFAULTS.keyMaxLength})`,
  },
  rcvbuf: {
    value: 'SIZE',
    help: `SO_RCVBUF per socket, e.g. 4m, 4MiB or 4194304 (powers of 1024);
capped by net.core.rmem_max (a warning says so) (default: the app's,
else the kernel's)`,
  },
  'rcvbuf-force': { help: 'use SO_RCVBUFFORCE to go past net.core.rmem_max (needs CAP_NET_ADMIN)' },
  'change-rcvbuf': {
    value: 'SIZE',
    help: `receive buffer every socket gets while the group changes (a takeover,
a reload, a resize) and while it waits for a worker (start, restart after
a crash or a stall), so workers starting cold do not overflow it; 0: none
(default ${formatByteSize(DEFAULTS.changeRcvbuf)}; above net.core.rmem_max only with CAP_NET_ADMIN)`,
  },
  'max-datagram': {
    value: 'SIZE',
    help: `largest datagram the native engine takes whole, 1-${UDP_MAX_PAYLOAD} over IPv4,
1-${UDP6_MAX_PAYLOAD} over IPv6 (default: the most); longer ones are counted
as truncated`,
  },
  batch: { value: 'N', help: `datagrams per recvmmsg/sendmmsg call, native engine, ${LIMITS.batch.min}-${LIMITS.batch.max} (default ${DEFAULTS.batch})` },
  'max-read-delay': {
    value: 'US',
    help: `the most latency the native engine may add under steady traffic
(≥ 8 k datagrams/s per worker), in µs, ${RD.min}-${RD.max}: it lets datagrams
wait in the socket's queue (never past a quarter of its buffer) so
that one wake-up reads many, for less CPU; under 20: never (woken
per arrival) (default: the app's, else ${DEFAULTS.maxReadDelayUs})`,
  },
  'stats-port': {
    short: 's',
    value: 'S',
    help: `serve GET /stats (JSON) and GET /metrics (Prometheus) on
http://${DEFAULTS.statsAddress}:S (0: pick a free port; printed); read-only`,
  },
  'stats-address': {
    value: 'A',
    help: `the stats port's IPv4/IPv6 literal (default ${DEFAULTS.statsAddress}; 0.0.0.0 or ::
to let a Prometheus server on another host scrape it; docs/multi-host.md)`,
  },
  'stats-host': {
    value: 'NAME',
    multiple: true,
    help: `a name the stats port answers to in the Host header besides its
address (repeatable), e.g. the DNS name Prometheus scrapes it by`,
  },
  control: {
    short: 'c',
    value: 'PATH',
    help: `the owner-only control socket (resize, reload, takeover) (default:\n${controlDir()}/udp-<address>-<port>.sock)`,
  },
  takeover: {
    help: `take the group over from the service running on the same address
and port (same user): its sockets, queues and counts carry on here,
then it exits; nothing is lost. A failed takeover leaves it serving`,
  },
  'handover-timeout': {
    value: 'S',
    help: `how long either side of a hand-over waits for the other: the running
service for the new one's workers to read (then it serves on, and the
new one exits non-zero when it wakes), the new one for the old one's
word after that, ${HT.min / 1000}-${HT.max / 1000} (default ${DEFAULTS.handoverTimeoutMs / 1000}). A side that dies is seen at once.`,
  },
  'app-option': { short: 'o', value: 'K=V', multiple: true, help: "option for the app (repeatable); an app's flags are shorthands" },
  'drain-timeout': {
    value: 'MS',
    help: `longest a stop waits for a worker's queue to empty, ${LIMITS.drainTimeoutMs.min}-${LIMITS.drainTimeoutMs.max}
(default ${DEFAULTS.drainTimeoutMs})`,
  },
  'stall-timeout': {
    value: 'MS',
    help: `a worker that reads nothing while its queue holds datagrams, or sends
no heartbeat, this long is reported stalled and replaced, ${LIMITS.stallTimeoutMs.min}-${LIMITS.stallTimeoutMs.max}
(default ${DEFAULTS.stallTimeoutMs}; 0 never)`,
  },
  'ready-json': {
    help: `when ready, print one JSON line to stdout (address, port, family,
engine, policy, worker pids, stats URL, control socket); other
status lines go to stderr`,
  },
  help: { ...HELP_FLAG, help: "show this help (with <app>: that app's options)" },
};

/** The usage printed with a command-line mistake; `serve --help` adds the apps and their options. */
export const SERVE_USAGE = usageOf(
  `Usage: shardgram serve <app> --port P [options]

Runs <app> on UDP address:port with one worker process per SO_REUSEPORT socket.
The supervisor keeps every socket open, so a worker that dies is restarted on the
same socket with its queued datagrams intact. SIGINT/SIGTERM drain every queue,
then exit 0. <app> is a built-in app (\`shardgram serve --help\` lists them with
their options) or the path of a module whose default export is a ShardApp.
`,
  SERVE_FLAGS,
  `Under a service manager (systemd): sockets passed with LISTEN_FDS (a .socket unit with
ListenDatagram= and ReusePort=yes) are used instead of opening new ones; with
NOTIFY_SOCKET it says READY=1, and when $FDSTORE > 0 it keeps the group's sockets in the
manager's fd store, so a crash or restart comes back on the same sockets, queues intact.
See docs/deploy.md.

While it runs:
  SIGHUP                       rolling reload: one worker at a time, a new process (new code)
                               starts on the same socket, then the old one drains and exits
  shardgram scale --port P --workers N
                               grow or shrink the group under load through the control
                               socket; a shrink drains the retired sockets first
`,
);

const OPTIONS = optionsOf(SERVE_FLAGS);

/** The line `--ready-json` prints (one JSON object, one line). */
export interface ReadyLine {
  ready: true;
  pid: number;
  app: string;
  address: string;
  port: number;
  family: 'udp4' | 'udp6';
  engine: 'dgram' | 'native';
  policy: string;
  workers: number[];
  stats: string | null;
  control: string | null;
}

/** ", reads wait up to 2 ms" on the status line when the native engine's read delay is not its default. */
function readDelayNote(engine: string, us: number): string {
  if (engine !== 'native' || us === DEFAULT_MAX_READ_DELAY_US) return '';
  return !pacingAllowed(us) ? ', never paced' : `, reads wait up to ${us % 1000 === 0 ? `${us / 1000} ms` : `${us} µs`}`;
}

/**
 * `shardgram serve`, step by step: the app named and loaded, the command line parsed
 * with its flags (parseServeArgs), every flag checked (serveFlagsOf), the status lines'
 * output chosen (statusOutput), then the service run (runService) until a signal, with
 * the ready lines said once it serves (announceReady).
 */
export async function serve(argv: string[]): Promise<number> {
  const appName = findAppName(argv, OPTIONS);
  const app = appName === undefined ? undefined : await loadApp(appName);
  const { values, positionals } = await parseServeArgs(argv, appName, app);
  if (values.help) {
    process.stdout.write(`${SERVE_USAGE}\n${appsHelp(app ? [app] : await loadBuiltInApps())}`);
    return 0;
  }
  if (positionals.length !== 1 || !app)
    throw new UsageError(
      positionals.length ? `one app expected; got ${positionals.join(' ')}` : 'which app? e.g. shardgram serve echo --port 9000',
      SERVE_USAGE,
    );
  const flags = serveFlagsOf(values, app);
  const out = statusOutput(flags.readyJson);
  const sup = new Supervisor(flags.supervisor);
  await runService(sup, { ...flags.run, say: out.say, onReady: (ready) => announceReady(sup, ready, out, flags.readyJson) });
  return 0;
}

/** The command line parsed with serve's flags and the app's; an unknown flag that is another app's is said so. */
async function parseServeArgs(argv: string[], appName: string | undefined, app: LoadedApp | undefined): Promise<{ values: Values; positionals: string[] }> {
  try {
    return parse(argv, { ...OPTIONS, ...(app ? appFlagOptions(app, OPTIONS) : {}) }, SERVE_USAGE);
  } catch (err) {
    const flag = err instanceof UsageError ? /^Unknown option '--([^']+)'/.exec(err.message)?.[1] : undefined;
    const other = flag && appName ? await otherAppsFlag(flag, appName) : undefined;
    throw other ? new UsageError(other, SERVE_USAGE) : err;
  }
}

/** What serve's flags ask for: the Supervisor's options, runService's, and whether to print the ready line. */
interface ServeFlags {
  supervisor: SupervisorOptions;
  run: Omit<RunOptions, 'say' | 'onReady'>;
  readyJson: boolean;
}

/** Every flag checked, in this order (the first mistake is the one said), before anything starts. */
function serveFlagsOf(values: Values, app: LoadedApp): ServeFlags {
  const u = SERVE_USAGE;
  if (values.port === undefined) throw new UsageError('--port is required', u);
  const port = limitOption(values, 'port', 'port', u)!;
  const rcvbuf = limitOption(values, 'rcvbuf', 'rcvbuf', u);
  const changeRcvbuf = limitOption(values, 'change-rcvbuf', 'changeRcvbuf', u);
  const address = addressOf(values);
  const statsPort = limitOption(values, 'stats-port', 'port', u);
  const policy = policyOf(values);
  const workers = limitOption(values, 'workers', 'workers', u);
  const maxDatagram = byteOption(values, 'max-datagram', u, { min: 1, max: UDP6_MAX_PAYLOAD });
  const batch = limitOption(values, 'batch', 'batch', u, DEFAULTS.batch);
  const maxReadDelayUs = limitOption(values, 'max-read-delay', 'maxReadDelayUs', u);
  const drainTimeoutMs = limitOption(values, 'drain-timeout', 'drainTimeoutMs', u, DEFAULTS.drainTimeoutMs);
  const stallTimeoutMs = limitOption(values, 'stall-timeout', 'stallTimeoutMs', u, DEFAULTS.stallTimeoutMs);
  const engine = values.engine !== undefined ? choice(values, 'engine', ['dgram', 'native'] as const, u, DEFAULTS.engine) : undefined;
  // Checked against the app's schema here, so a bad one stops us before anything starts.
  const appOptions = appOptionsFromArgs(app, values, u);
  const handoverTimeoutS = intOption(values, 'handover-timeout', LIMITS.handoverTimeoutMs.min / 1000, LIMITS.handoverTimeoutMs.max / 1000, u);
  const supervisor: SupervisorOptions = {
    app: app.name,
    port,
    address,
    ...(workers !== undefined ? { workers } : {}),
    ...(engine ? { engine } : {}),
    ...(policy ? { policy } : {}),
    ...(rcvbuf !== undefined ? { rcvbuf } : {}),
    rcvbufForce: Boolean(values['rcvbuf-force']),
    ...(changeRcvbuf !== undefined ? { changeRcvbuf } : {}),
    ...(maxDatagram !== undefined ? { maxDatagram } : {}),
    batch,
    ...(maxReadDelayUs !== undefined ? { maxReadDelayUs } : {}),
    drainTimeoutMs,
    stallTimeoutMs,
    appOptions,
  };
  return { supervisor, run: runFlagsOf(values, statsPort, handoverTimeoutS, workers), readyJson: values['ready-json'] === true };
}

/** `--address`, checked by the API's own check, said as a flag. */
function addressOf(values: Values): string {
  const address = (values.address as string | undefined) ?? DEFAULTS.address;
  try {
    checkAddress(address);
  } catch (err) {
    throw new UsageError(`--${describeError(err)}`, SERVE_USAGE);
  }
  return address;
}

/**
 * `--policy` (undefined: the app's), with `--key-delimiter` and `--key-max-length`,
 * which go only with `key`: checked by checkPolicy, the API's own check of its
 * `policy` option, said as flags.
 */
function policyOf(values: Values): SteeringPolicy | undefined {
  const u = SERVE_USAGE;
  const keyFlags = values['key-delimiter'] !== undefined || values['key-max-length'] !== undefined;
  if (values.policy === undefined) {
    if (keyFlags) throw new UsageError(`${POLICY_FLAG_NAMES.delimiter} and ${POLICY_FLAG_NAMES.maxLength} go with ${POLICY_FLAG_NAMES.name} key`, u);
    return undefined;
  }
  try {
    return checkPolicy(
      {
        name: String(values.policy),
        ...(values['key-delimiter'] !== undefined ? { delimiter: String(values['key-delimiter']) } : {}),
        ...(values['key-max-length'] !== undefined ? { maxLength: String(values['key-max-length']) } : {}),
      },
      POLICY_FLAG_NAMES,
    );
  } catch (err) {
    throw new UsageError(describeError(err), u);
  }
}

/** runService's options from the flags: the endpoints, the takeover, the workers asked for. */
function runFlagsOf(values: Values, statsPort: number | undefined, handoverTimeoutS: number | undefined, workers: number | undefined): ServeFlags['run'] {
  return {
    ...(statsPort !== undefined ? { statsPort } : {}),
    stats: { address: (values['stats-address'] as string | undefined) ?? DEFAULTS.statsAddress, hosts: (values['stats-host'] as string[] | undefined) ?? [] },
    ...(values.control !== undefined ? { control: String(values.control) } : {}),
    takeover: Boolean(values.takeover),
    ...(handoverTimeoutS !== undefined ? { handoverTimeoutMs: handoverTimeoutS * 1000 } : {}),
    ...(workers !== undefined ? { workers } : {}),
  };
}

/** Where status lines go, and standard output guarded for the lines that must go there. */
interface StatusOutput {
  stdout: GuardedOutput;
  say(line: string): void;
}

/**
 * Status lines: stdout, or stderr when stdout carries the ready line. A stdout that
 * closes (`serve … | head -1`) stops them, not the service.
 */
function statusOutput(readyJson: boolean): StatusOutput {
  const stdout = guardOutput(
    process.stdout,
    'standard output',
    (l) => process.stderr.write(`shardgram: ${l}\n`),
    'status lines are dropped; the service runs on',
  );
  const say = (line: string): void => (readyJson ? void process.stderr.write(line) : stdout.write(line));
  return { stdout, say };
}

/** Once the service serves: a stats port's warning, the status line, and with `--ready-json` the ready line. */
function announceReady(sup: Supervisor, ready: ReadyInfo, out: StatusOutput, readyJson: boolean): void {
  const { stats, control } = ready;
  // A stats port beyond loopback is said loudly, once, before the ready line.
  if (stats?.warning) process.stderr.write(`shardgram: warning: ${stats.warning}\n`);
  const c = sup.config;
  out.say(
    `shardgram: ${c.app} on udp ${fmt(sup.address, sup.port)} with ${plural(sup.workers, 'worker')} (${c.engine} engine${readDelayNote(c.engine, c.maxReadDelayUs)}, ${sup.policy.name} policy)` +
      (stats ? `; stats at ${stats.url}/stats and ${stats.url}/metrics` : '') +
      `; control socket ${control.path}` +
      '\n',
  );
  if (readyJson) out.stdout.write(`${JSON.stringify(readyLineOf(sup, ready))}\n`);
}

function readyLineOf(sup: Supervisor, { stats, control }: ReadyInfo): ReadyLine {
  const c = sup.config;
  return {
    ready: true,
    pid: process.pid,
    app: c.app,
    address: sup.address,
    port: sup.port,
    family: familyOf(sup.address) ?? 'udp4',
    engine: c.engine,
    policy: sup.policy.name,
    workers: sup.workerPids(),
    stats: stats?.url ?? null,
    control: control.path,
  };
}
