/**
 * The supervisor's configuration: the caller's options validated at the edge, then
 * resolved against the app's declared defaults into one frozen, effective config.
 * Nothing here mutates the caller's options.
 */
import { availableParallelism } from 'node:os';
import { ShardgramError, invalidArg } from '../errors.js';
import { formatByteSize } from '../app/byte-size.js';
import { UDP6_MAX_PAYLOAD, UDP_MAX_PAYLOAD } from '../ffi/kernel.js';
import { familyOf, isIPv4Mapped } from '../ffi/sockaddr.js';
import { DEFAULT_MAX_READ_DELAY_US, MAX_READ_DELAY_US } from '../worker/engine/pacing.js';
import type { ImbalanceOptions } from '../stats/imbalance.js';
import type { AppDefaults, EngineName } from '../app/shard-socket.js';
import type { PolicySpec } from '../steering/steering.js';
import { checkPolicy } from '../steering/policies.js';
import type { Adoption } from './types.js';
import { DEFAULTS, LIMITS } from '../defaults.js';

export interface SupervisorOptions {
  /** `discard`, `echo`, or a path to a module whose default export is a ShardApp. */
  app: string;
  /** Address to bind (IPv4 or IPv6 literal). Default 127.0.0.1. */
  address?: string;
  /** Port to bind; 0 lets the kernel pick one (read `supervisor.port`). */
  port: number;
  /** Number of sockets and worker processes. Default: available cores. */
  workers?: number;
  /** Default: the app's, else `dgram`. */
  engine?: EngineName;
  /** How the kernel picks a socket per datagram. Default: the app's default, else `hash`. */
  policy?: PolicySpec;
  /** SO_RCVBUF to request for each socket, in bytes. Default: the app's, else the kernel's. */
  rcvbuf?: number;
  rcvbufForce?: boolean;
  /** Receive buffer every socket gets while the group changes (takeover, reload, resize) and while it waits for a reader (start, restart). Default 8 MiB; 0: none. */
  changeRcvbuf?: number;
  /** Options passed to the app as `context.options`. */
  appOptions?: Record<string, string>;
  /** How often workers send statistics snapshots. Default 200 ms. */
  snapshotIntervalMs?: number;
  /** Longest a graceful stop waits for a worker to drain its queue. Default 10 s. */
  drainTimeoutMs?: number;
  /** Largest datagram the native engine receives whole. Default: 65507 over IPv4, 65527 over IPv6. */
  maxDatagram?: number;
  /** Datagrams per recvmmsg/sendmmsg (native engine). Default 64. */
  batch?: number;
  /**
   * The most latency the native engine may add under steady traffic by letting datagrams
   * wait in the socket's queue so that one wake-up reads many (µs, 0–100000; 0: never).
   * Default: the app's, else 500.
   */
  maxReadDelayUs?: number;
  /** A worker that reads nothing while its queue fills, or sends no heartbeat, this long is replaced. Default 5000 ms; 0 never. */
  stallTimeoutMs?: number;
  /** Imbalance detection under `hash` (window, minimum traffic, how long it must last). Defaults and ranges: docs/defaults.md. */
  imbalance?: ImbalanceOptions;
  /** Where the supervisor's log lines go. Default: stderr. */
  log?: (line: string) => void;
}

/** What the service runs with: the caller's options, then the app's defaults, then ours. */
export interface EffectiveConfig {
  readonly app: string;
  readonly address: string;
  readonly port: number;
  readonly family: 'udp4' | 'udp6';
  readonly workers: number;
  readonly engine: EngineName;
  readonly policy: PolicySpec;
  readonly rcvbuf: number | undefined;
  readonly rcvbufForce: boolean;
  readonly appOptions: Readonly<Record<string, string>>;
  readonly snapshotIntervalMs: number;
  readonly drainTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly maxDatagram: number;
  readonly batch: number;
  readonly maxReadDelayUs: number;
}

export const MAX_WORKERS = LIMITS.workers.max;
export const DEFAULT_STALL_TIMEOUT_MS = DEFAULTS.stallTimeoutMs;

export function checkWorkers(n: number): void {
  if (!Number.isInteger(n) || n < LIMITS.workers.min || n > MAX_WORKERS)
    throw invalidArg('workers', n, `an integer from ${LIMITS.workers.min} to ${MAX_WORKERS}`);
}

/** An option with a range in LIMITS. */
export type LimitName = keyof typeof LIMITS;

/** The limited options that are sizes in bytes: their range reads in the size grammar (byte-size.ts). */
const BYTE_LIMITS: readonly LimitName[] = ['rcvbuf', 'changeRcvbuf'];

export function isByteLimit(key: LimitName): boolean {
  return BYTE_LIMITS.includes(key);
}

/**
 * The one range check of an option that LIMITS bounds, for the API (validateOptions)
 * and the CLI's flags (cli/args.ts, limitOption): returns `value` when it is a whole
 * number within the range, else throws ERR_SHARDGRAM_INVALID_ARG naming the option as
 * the caller spells it (`drainTimeoutMs`, `--drain-timeout`, `imbalance.windowMs`), the
 * range to give a value in, and the value given (`shown`: how to show it, e.g. the flag's
 * text, quoted). Its `option` is the API's name: `key`, or `name` where the API's
 * option is not a top-level one (`imbalance.windowMs`).
 */
export function checkLimit(key: LimitName, value: unknown, name: string = key, shown?: string): number {
  const { min, max } = LIMITS[key];
  const bytes = isByteLimit(key);
  const lo = bytes ? formatByteSize(min) : String(min);
  const hi = bytes ? formatByteSize(max) : String(max);
  const fail = (expected: string): ShardgramError =>
    new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${name} must be ${expected}; got ${shown ?? showValue(value)}`, {
      option: name.startsWith('--') ? key : name,
    });
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw fail(`a whole number${bytes ? ' of bytes' : ''} from ${lo} to ${hi}`);
  if (value < min || value > max) throw fail(`from ${lo} to ${hi}`);
  return value;
}

function showValue(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return typeof value;
  }
}

/**
 * An address the group can bind: an IPv4 or IPv6 literal, IPv4 written as IPv4 (an
 * IPv4-mapped IPv6 address never receives: the group's IPv6 sockets are IPv6-only).
 * The API and the CLI both check through here. Returns its family.
 */
export function checkAddress(address: string, option = 'address'): 'udp4' | 'udp6' {
  const family = familyOf(address);
  if (!family || address.includes('%')) throw invalidArg(option, address, 'an IPv4 or IPv6 literal such as 127.0.0.1 or ::1');
  if (isIPv4Mapped(address)) {
    throw invalidArg(
      option,
      address,
      `written as IPv4 for an IPv4 address (${address.slice(address.lastIndexOf(':') + 1)}), not IPv4-mapped IPv6: the group's IPv6 sockets are IPv6-only`,
    );
  }
  return family;
}

function checkReadDelay(us: number): void {
  if (!Number.isInteger(us) || us < 0 || us > MAX_READ_DELAY_US)
    throw invalidArg('maxReadDelayUs', us, `a whole number of microseconds from 0 to ${MAX_READ_DELAY_US}`);
}

/** Throws an ERR_SHARDGRAM_INVALID_ARG naming the first bad option; returns a frozen copy of the options. */
export function validateOptions(opts: SupervisorOptions): Readonly<SupervisorOptions> {
  const address = opts.address ?? DEFAULTS.address;
  const family = checkAddress(address);
  const { min: pmin, max: pmax } = LIMITS.port;
  if (!Number.isInteger(opts.port) || opts.port < pmin || opts.port > pmax) throw invalidArg('port', opts.port, `an integer from ${pmin} to ${pmax}`);
  checkWorkers(opts.workers ?? availableParallelism());
  if (opts.engine !== undefined && opts.engine !== 'dgram' && opts.engine !== 'native') throw invalidArg('engine', opts.engine, '"dgram" or "native"');
  const familyMax = family === 'udp6' ? UDP6_MAX_PAYLOAD : UDP_MAX_PAYLOAD;
  const maxDatagram = opts.maxDatagram ?? familyMax;
  if (!Number.isInteger(maxDatagram) || maxDatagram < 1 || maxDatagram > familyMax) {
    throw invalidArg('maxDatagram', maxDatagram, `an integer from 1 to ${familyMax} (${family === 'udp4' ? 'IPv4' : 'IPv6'})`);
  }
  const batch = opts.batch ?? DEFAULTS.batch;
  if (!Number.isInteger(batch) || batch < LIMITS.batch.min || batch > LIMITS.batch.max)
    throw invalidArg('batch', batch, `an integer from ${LIMITS.batch.min} to ${LIMITS.batch.max}`);
  if (opts.maxReadDelayUs !== undefined) checkReadDelay(opts.maxReadDelayUs);
  // The limited options, through the same check as the CLI's flags.
  for (const k of ['rcvbuf', 'changeRcvbuf', 'drainTimeoutMs', 'stallTimeoutMs'] as const) {
    if (opts[k] !== undefined) checkLimit(k, opts[k]);
  }
  const sv = opts.snapshotIntervalMs;
  if (sv !== undefined && (!Number.isInteger(sv) || sv < 0)) throw invalidArg('snapshotIntervalMs', sv, 'a whole number of milliseconds ≥ 0');
  const snapshotMs = opts.snapshotIntervalMs ?? DEFAULTS.snapshotIntervalMs;
  if (snapshotMs < 1) throw invalidArg('snapshotIntervalMs', snapshotMs, 'at least 1 ms');
  const stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (stallMs > 0 && stallMs < 3 * snapshotMs) {
    throw invalidArg(
      'stallTimeoutMs',
      stallMs,
      `0 (never) or at least 3 × the snapshot interval (${3 * snapshotMs} ms): a worker's snapshots are its heartbeat`,
    );
  }
  // The same check as serve's --policy, --key-delimiter and --key-max-length; kept resolved.
  const policy = opts.policy === undefined ? undefined : checkPolicy(opts.policy);
  const imbalance = opts.imbalance === undefined ? undefined : checkImbalance(opts.imbalance);
  return Object.freeze({
    ...opts,
    ...(policy ? { policy } : {}),
    ...(imbalance ? { imbalance } : {}),
    appOptions: Object.freeze({ ...(opts.appOptions ?? {}) }),
  });
}

/** The `imbalance` option's fields, each through checkLimit (`imbalance.windowMs` is LIMITS' `imbalanceWindowMs`). */
function checkImbalance(o: unknown): Readonly<ImbalanceOptions> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw invalidArg('imbalance', o, 'an object such as { windowMs: 10000 }');
  const fields = [
    ['windowMs', 'imbalanceWindowMs'],
    ['minDatagrams', 'imbalanceMinDatagrams'],
    ['sustainMs', 'imbalanceSustainMs'],
  ] as const;
  const given = o as Record<string, unknown>;
  for (const [field, key] of fields) if (given[field] !== undefined) checkLimit(key, given[field], `imbalance.${field}`);
  return Object.freeze({ ...(o as ImbalanceOptions) });
}

/**
 * The options for a group made of adopted sockets: where the options say nothing,
 * the worker count and policy the sockets came with (a hand-over's running state,
 * else one worker per socket) and the sockets' own address.
 */
export function withAdoption(opts: Readonly<SupervisorOptions>, a: Adoption): Readonly<SupervisorOptions> {
  const policy = opts.policy ?? a.policy;
  const address = opts.address ?? a.sockets[0]?.address;
  return {
    ...opts,
    workers: opts.workers ?? a.workers ?? a.sockets.length,
    ...(policy ? { policy } : {}),
    ...(address !== undefined ? { address } : {}),
  };
}

/** The effective config once the app's defaults are known. */
export function resolveConfig(opts: Readonly<SupervisorOptions>, defaults: AppDefaults): EffectiveConfig {
  const address = opts.address ?? DEFAULTS.address;
  const maxReadDelayUs = opts.maxReadDelayUs ?? defaults.maxReadDelayUs ?? DEFAULT_MAX_READ_DELAY_US;
  checkReadDelay(maxReadDelayUs); // an app's default is checked like an option
  const stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  // An app's cadence yields to the caller's stall timeout (at least 3 snapshots per timeout).
  const appSnapshotMs =
    defaults.snapshotIntervalMs !== undefined && Number.isInteger(defaults.snapshotIntervalMs) && defaults.snapshotIntervalMs >= 1
      ? stallTimeoutMs > 0
        ? Math.min(defaults.snapshotIntervalMs, Math.floor(stallTimeoutMs / 3))
        : defaults.snapshotIntervalMs
      : undefined;
  const family = familyOf(address) as 'udp4' | 'udp6';
  return Object.freeze({
    app: opts.app,
    address,
    port: opts.port,
    family,
    workers: opts.workers ?? availableParallelism(),
    engine: opts.engine ?? defaults.engine ?? DEFAULTS.engine,
    // An app's declared policy is checked like the option.
    policy: checkPolicy(opts.policy ?? defaults.policy ?? { name: DEFAULTS.policy }),
    rcvbuf: opts.rcvbuf ?? defaults.rcvbuf,
    rcvbufForce: opts.rcvbufForce ?? false,
    appOptions: opts.appOptions ?? {},
    snapshotIntervalMs: opts.snapshotIntervalMs ?? appSnapshotMs ?? DEFAULTS.snapshotIntervalMs,
    drainTimeoutMs: opts.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
    stallTimeoutMs,
    maxDatagram: opts.maxDatagram ?? (family === 'udp6' ? UDP6_MAX_PAYLOAD : UDP_MAX_PAYLOAD),
    batch: opts.batch ?? DEFAULTS.batch,
    maxReadDelayUs,
  });
}
