/**
 * A service's life as `shardgram serve` runs it: start (or take over a running one,
 * or take the sockets a service manager passes), its endpoints (stats port, control
 * socket), signals, and the way out.
 */
import { startStatsServer, type StatsServer, type StatsServerOptions } from '../http/stats-server.js';
import { startServiceControl } from '../control/service.js';
import { defaultControlPath } from '../control/paths.js';
import type { ControlServer } from '../control/server.js';
import { prepareTakeoverHandler, takeoverHandler } from '../control/takeover/old-side.js';
import { requestTakeover } from '../control/takeover/new-side.js';
import { controlOf } from '../supervisor/internal.js';
import type { Supervisor } from '../supervisor/supervisor.js';
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
  onReady(info: { stats?: StatsServer; control: ControlServer }): void;
}

const err = (line: string): void => void process.stderr.write(`${line}\n`);

export function fmt(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function runService(sup: Supervisor, opts: RunOptions): Promise<never> {
  let stats: StatsServer | undefined;
  let control: ControlServer | undefined;
  const manager = ServiceManager.fromEnv(err);
  sup.on('worker-ready', ({ index, pid, restart }) => {
    opts.say(`worker ${index} ${restart ? 'restarted' : 'ready'}: pid ${pid}, udp ${fmt(sup.address, sup.port)}\n`);
  });
  // Out of the fd store before it closes: a stored copy would keep it in the group, unread.
  sup.on('socket-closing', ({ index }) => manager?.forget(index));
  sup.on('resized', ({ from, to }) => {
    opts.say(`resized: ${from} -> ${to} workers\n`);
    manager?.storeSockets(sup);
  });
  let stopping = false;
  const closeEndpoints = async (): Promise<void> => {
    await Promise.all([stats?.close(), control?.close()]);
  };
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    manager?.notify('STOPPING=1');
    process.stderr.write(`${signal}: draining ${plural(sup.workers, 'worker')} (again to stop at once)…\n`);
    const report = await sup.stop();
    // A hand-over completed meanwhile: its handler tells the new service, then exits.
    if (controlOf(sup).state.name === 'handed-over') return;
    await closeEndpoints();
    const s = sup.stats();
    opts.say(
      `stopped: ${s.total.datagrams} datagrams received, ${s.total.kernelDrops} dropped by the kernel, ` +
        `${report.droppedAtClose} still queued at close (counted and dropped)` +
        (controlOf(sup).sharedWith
          ? `; the sockets stay open, with their queues, in ${controlOf(sup).sharedWith === 'service-manager' ? "the service manager's fd store" : 'the other service of the hand-over'}`
          : '') +
        '\n',
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
      (r) => opts.say(`reloaded: ${r.workers} workers on new processes\n`),
      (e: unknown) => process.stderr.write(`reload failed: ${describeError(e)}\n`),
    );
  });

  const address = sup.options.address ?? DEFAULTS.address;
  if (opts.takeover) {
    const path = opts.control ?? defaultControlPath(address, sup.options.port);
    const source = requestTakeover(path);
    const o = source.offer;
    err(
      `takeover: received ${o.nfds} sockets of udp ${fmt(o.address, o.port)} from pid ${o.pid} (${o.workers} workers, ${o.policy.name} policy, app ${o.app})`,
    );
    const r = await controlOf(sup).takeOver(source, opts.handoverTimeoutMs);
    const at = `udp ${fmt(sup.address, sup.port)}`;
    err(
      r.how === 'handed-over'
        ? `takeover: pid ${r.from} has handed over ${at} and exits`
        : r.how === 'old-side-died'
          ? `takeover: pid ${r.from} died during the hand-over; this service serves ${at} alone`
          : `takeover: pid ${r.from} stopped answering after this service's workers read; this service holds ${at}, and pid ${r.from} leaves it when it wakes`,
    );
  } else {
    const passed = manager?.listenSockets();
    // Sockets a .socket unit holds stay open in the manager whatever we do: the
    // supervisor never reads them out or closes them, nor runs fewer workers than them.
    if (passed?.sockets.length) await controlOf(sup).startAdopted(async () => ({ sockets: passed.sockets, heldElsewhere: passed.heldByUnit }));
    else await sup.start();
  }
  try {
    if (opts.statsPort !== undefined) stats = await startStatsServer(sup, opts.statsPort, opts.stats);
    control = await startServiceControl(
      sup,
      opts.control,
      err,
      {
        prepareTakeover: prepareTakeoverHandler(sup, err),
        takeover: takeoverHandler(sup, err, {
          closeEndpoints,
          exit: () => {
            opts.say(`handed over: a new service has udp ${fmt(sup.address, sup.port)}; exiting\n`);
            process.exit(0);
          },
          leave: (reason) => {
            // The new service holds the group: its sockets were let go here unread, its workers read them.
            err(
              `takeover: ${escapeText(reason)}; the new service took udp ${fmt(sup.address, sup.port)} while this one was not answering: leaving it untouched`,
            );
            process.exit(3);
          },
          ...(opts.handoverTimeoutMs !== undefined ? { patienceMs: opts.handoverTimeoutMs } : {}),
        }),
      },
      { replace: opts.takeover },
    );
    if (opts.workers !== undefined && opts.workers !== sup.workers) await sup.resize(opts.workers);
  } catch (e) {
    await sup.stop();
    await closeEndpoints();
    throw e;
  }
  if (manager) {
    manager.storeSockets(sup);
    if (manager.fdStore) controlOf(sup).shareWithServiceManager();
    manager.notify(`READY=1\nSTATUS=serving udp ${fmt(sup.address, sup.port)} with ${plural(sup.workers, 'worker')}\nMAINPID=${process.pid}`);
  }
  opts.onReady({ ...(stats ? { stats } : {}), control });
  return new Promise<never>(() => {
    // until a signal, or a hand-over
  });
}
