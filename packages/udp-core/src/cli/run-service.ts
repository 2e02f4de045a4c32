/**
 * A service's life as `shardgram serve` runs it: start (or take over a running one,
 * or take the sockets a service manager passes), its endpoints (stats port, control
 * socket), signals, and the way out.
 */
import { startStatsServer, type StatsServer, type StatsServerOptions } from '../stats-server.js';
import { startServiceControl } from '../control/service.js';
import { defaultControlPath } from '../control/paths.js';
import type { ControlServer } from '../control/server.js';
import { prepareTakeoverHandler, takeOver, takeoverHandler } from '../control/takeover.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import { ServiceManager } from '../service-manager.js';

export interface RunOptions {
  statsPort?: number;
  /** Where the stats endpoint listens, and the Host names it answers besides its address. */
  stats: StatsServerOptions;
  /** Control socket path (default: per address and port). */
  control?: string;
  /** Take the group over from the running service on the same address and port. */
  takeover: boolean;
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
    if (sup.handedOver) return;
    await closeEndpoints();
    const s = sup.stats();
    opts.say(
      `stopped: ${s.total.datagrams} datagrams received, ${s.total.kernelDrops} dropped by the kernel, ` +
        `${report.droppedAtClose} still queued at close (counted and dropped)` +
        (sup.sharedWith ? '; the sockets stay open where they are shared (a service manager\'s fd store, or the service handing over)' : '') + '\n',
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
      (e: unknown) => process.stderr.write(`reload failed: ${e instanceof Error ? e.message : String(e)}\n`),
    );
  });

  const address = sup.options.address ?? '127.0.0.1';
  if (opts.takeover) {
    const path = opts.control ?? defaultControlPath(address, sup.options.port);
    const from = await takeOver(sup, path, err);
    process.stderr.write(`takeover: pid ${from} has handed over udp ${fmt(sup.address, sup.port)} and exits\n`);
  } else {
    const passed = manager?.listenSockets();
    // Sockets a .socket unit holds stay open in the manager whatever we do: the
    // supervisor never reads them out or closes them, nor runs fewer workers than them.
    await sup.start(passed?.sockets.length ? async () => ({ sockets: passed.sockets, heldElsewhere: passed.heldByUnit }) : undefined);
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
    if (manager.fdStore) sup.sharedWith = 'service-manager';
    manager.notify(`READY=1\nSTATUS=serving udp ${fmt(sup.address, sup.port)} with ${plural(sup.workers, 'worker')}\nMAINPID=${process.pid}`);
  }
  opts.onReady({ ...(stats ? { stats } : {}), control });
  return new Promise<never>(() => {
    // until a signal, or a hand-over
  });
}
