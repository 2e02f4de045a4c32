/**
 * A service's life as `shardgram serve` runs it: start (or take over a running one,
 * or take the sockets a service manager passes), its endpoints (stats port, control
 * socket), signals, and the way out.
 *
 * runService, step by step: the group's events said (sayGroupEvents), the signals
 * handled (a Shutdown), the group taken over, adopted or started (takeOverRunning,
 * startOrAdopt), its endpoints opened (openEndpoints, an Endpoints), the service
 * manager told (tellManagerReady), and the caller told it is ready.
 */
import { startStatsServer, type StatsServer, type StatsServerOptions } from '../http/stats-server.js';
import { startServiceControl } from '../control/service.js';
import { defaultControlPath } from '../control/paths.js';
import type { ControlServer } from '../control/server.js';
import { prepareTakeoverHandler, takeoverHandler, type HandedOverHooks } from '../control/takeover/old-side.js';
import { requestTakeover } from '../control/takeover/new-side.js';
import { controlOf } from '../supervisor/internal.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import type { TakeoverResult } from '../supervisor/takeover.js';
import type { ReceivedOffer, StopReport } from '../supervisor/types.js';
import { ServiceManager } from '../service/service-manager.js';
import { escapeText } from '../app/escape-text.js';
import { describeError } from '../errors.js';
import { DEFAULTS } from '../defaults.js';

export interface RunOptions {
  statsPort?: number;
  /** Where the stats endpoint listens, and the Host names it answers besides its address. */
  stats: StatsServerOptions;
  /** Control socket path (default: per address and port). */
  control?: string;
  /** Take the group over from the running service on the same address and port. */
  takeover: boolean;
  /** How long either side of a hand-over waits for the other (default: HANDOVER_PATIENCE_MS). */
  handoverTimeoutMs?: number;
  /** Workers asked for on the command line (undefined: keep what there is). */
  workers?: number;
  /** Where status lines go. */
  say(line: string): void;
  /** Called once the service is ready, with what a machine needs to know. */
  onReady(info: ReadyInfo): void;
}

/** What `onReady` is given: the endpoints, once open. */
export interface ReadyInfo {
  stats?: StatsServer;
  control: ControlServer;
}

const err = (line: string): void => void process.stderr.write(`${line}\n`);

export function fmt(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function runService(sup: Supervisor, opts: RunOptions): Promise<never> {
  const manager = ServiceManager.fromEnv(err);
  sayGroupEvents(sup, opts.say, manager);
  const endpoints = new Endpoints();
  new Shutdown(sup, opts, manager, endpoints).listen();
  if (opts.takeover) await takeOverRunning(sup, opts);
  else await startOrAdopt(sup, manager);
  const ready = await openEndpoints(sup, opts, endpoints);
  if (manager) tellManagerReady(sup, manager);
  opts.onReady(ready);
  return new Promise<never>(() => {
    // until a signal, or a hand-over
  });
}

/** Workers ready or restarted and resizes said as status lines; the fd store kept in step with the group. */
function sayGroupEvents(sup: Supervisor, say: (line: string) => void, manager: ServiceManager | undefined): void {
  sup.on('worker-ready', ({ index, pid, restart }) => {
    say(`worker ${index} ${restart ? 'restarted' : 'ready'}: pid ${pid}, udp ${fmt(sup.address, sup.port)}\n`);
  });
  // Out of the fd store before it closes: a stored copy would keep it in the group, unread.
  sup.on('socket-closing', ({ index }) => manager?.forget(index));
  sup.on('resized', ({ from, to }) => {
    say(`resized: ${from} -> ${to} workers\n`);
    manager?.storeSockets(sup);
  });
}

/** The service's endpoints, each set as it opens, closed together on the way out. */
class Endpoints {
  stats: StatsServer | undefined;
  control: ControlServer | undefined;
  /** Closes whichever are open (a bound function: the hand-over's hooks take it as one). */
  readonly close = async (): Promise<void> => {
    await Promise.all([this.stats?.close(), this.control?.close()]);
  };
}

/**
 * The way out, by signal: the first SIGINT or SIGTERM drains the group and exits 0, a
 * second exits at once (130), dropping what is still queued; SIGHUP reloads until then.
 */
class Shutdown {
  #stopping = false;

  constructor(
    private readonly sup: Supervisor,
    private readonly opts: RunOptions,
    private readonly manager: ServiceManager | undefined,
    private readonly endpoints: Endpoints,
  ) {}

  /** Installs the signal handlers. */
  listen(): void {
    const onSignal = (signal: NodeJS.Signals): void => this.#onStopSignal(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', () => this.#reload());
  }

  #onStopSignal(signal: NodeJS.Signals): void {
    if (!this.#stopping) {
      void this.#drainAndExit(signal);
      return;
    }
    // A second signal: stop now, saying what that costs.
    const q = this.sup.stats().total.queueBytes;
    process.stderr.write(`${signal} again: exiting without draining; ${q} bytes still queued are dropped\n`);
    process.exit(130);
  }

  async #drainAndExit(signal: string): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.manager?.notify('STOPPING=1');
    process.stderr.write(`${signal}: draining ${plural(this.sup.workers, 'worker')} (again to stop at once)…\n`);
    const report = await this.sup.stop();
    // A hand-over completed meanwhile: its handler tells the new service, then exits.
    if (controlOf(this.sup).state.name === 'handed-over') return;
    await this.endpoints.close();
    this.opts.say(stoppedLine(this.sup, report));
    process.exit(0);
  }

  #reload(): void {
    if (this.#stopping) return;
    process.stderr.write('SIGHUP: rolling reload, one worker at a time…\n');
    this.sup.reload().then(
      (r) => this.opts.say(`reloaded: ${r.workers} workers on new processes\n`),
      (e: unknown) => process.stderr.write(`reload failed: ${describeError(e)}\n`),
    );
  }
}

/** The last status line: what was received, dropped, and where the sockets stay. */
function stoppedLine(sup: Supervisor, report: StopReport): string {
  const s = sup.stats();
  const sharedWith = controlOf(sup).sharedWith;
  return (
    `stopped: ${s.total.datagrams} datagrams received, ${s.total.kernelDrops} dropped by the kernel, ` +
    `${report.droppedAtClose} still queued at close (counted and dropped)` +
    (sharedWith
      ? `; the sockets stay open, with their queues, in ${sharedWith === 'service-manager' ? "the service manager's fd store" : 'the other service of the hand-over'}`
      : '') +
    '\n'
  );
}

/** `--takeover`: the running service's sockets received over its control socket, then the hand-over. */
async function takeOverRunning(sup: Supervisor, opts: RunOptions): Promise<void> {
  const address = sup.options.address ?? DEFAULTS.address;
  const source = requestTakeover(opts.control ?? defaultControlPath(address, sup.options.port));
  err(receivedLine(source.offer));
  const r = await controlOf(sup).takeOver(source, opts.handoverTimeoutMs);
  err(takeoverOutcome(r, `udp ${fmt(sup.address, sup.port)}`));
}

function receivedLine(o: ReceivedOffer): string {
  return `takeover: received ${o.nfds} sockets of udp ${fmt(o.address, o.port)} from pid ${o.pid} (${o.workers} workers, ${o.policy.name} policy, app ${o.app})`;
}

function takeoverOutcome(r: TakeoverResult, at: string): string {
  return r.how === 'handed-over'
    ? `takeover: pid ${r.from} has handed over ${at} and exits`
    : r.how === 'old-side-died'
      ? `takeover: pid ${r.from} died during the hand-over; this service serves ${at} alone`
      : `takeover: pid ${r.from} stopped answering after this service's workers read; this service holds ${at}, and pid ${r.from} leaves it when it wakes`;
}

/** The sockets a service manager passed (LISTEN_FDS), if any; else new ones. */
async function startOrAdopt(sup: Supervisor, manager: ServiceManager | undefined): Promise<void> {
  const passed = manager?.listenSockets();
  // Sockets a .socket unit holds stay open in the manager whatever we do: the
  // supervisor never reads them out or closes them, nor runs fewer workers than them.
  if (passed?.sockets.length) await controlOf(sup).startAdopted(async () => ({ sockets: passed.sockets, heldElsewhere: passed.heldByUnit }));
  else await sup.start();
}

/**
 * The stats port and the control socket, then the number of workers asked for. If
 * any of it fails, the group stops and what opened closes before the error goes on.
 */
async function openEndpoints(sup: Supervisor, opts: RunOptions, endpoints: Endpoints): Promise<ReadyInfo> {
  try {
    if (opts.statsPort !== undefined) endpoints.stats = await startStatsServer(sup, opts.statsPort, opts.stats);
    const control = await startServiceControl(
      sup,
      opts.control,
      err,
      { prepareTakeover: prepareTakeoverHandler(sup, err), takeover: takeoverHandler(sup, err, handedOverHooks(sup, opts, endpoints)) },
      { replace: opts.takeover },
    );
    endpoints.control = control;
    if (opts.workers !== undefined && opts.workers !== sup.workers) await sup.resize(opts.workers);
    return { ...(endpoints.stats ? { stats: endpoints.stats } : {}), control };
  } catch (e) {
    await sup.stop();
    await endpoints.close();
    throw e;
  }
}

/** This service's side when a new one takes the group over: how it closes, exits or leaves. */
function handedOverHooks(sup: Supervisor, opts: RunOptions, endpoints: Endpoints): HandedOverHooks {
  return {
    closeEndpoints: endpoints.close,
    exit: () => {
      opts.say(`handed over: a new service has udp ${fmt(sup.address, sup.port)}; exiting\n`);
      process.exit(0);
    },
    leave: (reason) => {
      // The new service holds the group: its sockets were let go here unread, its workers read them.
      err(`takeover: ${escapeText(reason)}; the new service took udp ${fmt(sup.address, sup.port)} while this one was not answering: leaving it untouched`);
      process.exit(3);
    },
    ...(opts.handoverTimeoutMs !== undefined ? { patienceMs: opts.handoverTimeoutMs } : {}),
  };
}

/** The sockets into the fd store (when it has one), then READY=1 with a status. */
function tellManagerReady(sup: Supervisor, manager: ServiceManager): void {
  manager.storeSockets(sup);
  if (manager.fdStore) controlOf(sup).shareWithServiceManager();
  manager.notify(`READY=1\nSTATUS=serving udp ${fmt(sup.address, sup.port)} with ${plural(sup.workers, 'worker')}\nMAINPID=${process.pid}`);
}
