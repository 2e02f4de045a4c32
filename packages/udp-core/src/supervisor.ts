/**
 * The supervisor: owns the group's sockets for the life of the service, runs one
 * worker process per socket, restarts a dead worker on the same socket (its queue
 * intact), merges statistics, and stops gracefully.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ShardgramError, invalidArg } from './errors.js';
import { closeFd, openReusePortSocket, socketMemInfo, type OpenedSocket, type SocketMemInfo } from './ffi/socket.js';
import { UDP_MAX_PAYLOAD } from './ffi/kernel.js';
import { familyOf } from './ffi/sockaddr.js';
import { resolveApp } from './apps/resolve.js';
import { WORKER_ENV, type ToSupervisor, type ToWorker, type WorkerConfig } from './ipc.js';
import type { AppSupervisor, AppSupervisorHooks, EngineName } from './shard-socket.js';
import { decodeSnapshot, type WorkerSnapshot } from './snapshot.js';
import { summarize, toPrometheus, type StatsReport, type WorkerStats } from './stats.js';

export interface SupervisorOptions {
  /** `discard`, `echo`, or a path to a module whose default export is a ShardApp. */
  app: string;
  /** Address to bind (IPv4 or IPv6 literal). Default 127.0.0.1. */
  address?: string;
  /** Port to bind; 0 lets the kernel pick one (read `supervisor.port`). */
  port: number;
  /** Number of sockets and worker processes. Default: available cores. */
  workers?: number;
  engine?: EngineName;
  /** SO_RCVBUF to request for each socket, in bytes. */
  rcvbuf?: number;
  rcvbufForce?: boolean;
  /** Options passed to the app as `context.options`. */
  appOptions?: Record<string, string>;
  /** How often workers send statistics snapshots. Default 200 ms. */
  snapshotIntervalMs?: number;
  /** Longest a graceful stop waits for a worker to drain its queue. Default 10 s. */
  drainTimeoutMs?: number;
  /** Largest datagram the native engine receives whole. Default 65507. */
  maxDatagram?: number;
  /** Datagrams per recvmmsg/sendmmsg (native engine). Default 64. */
  batch?: number;
  /** Where the supervisor's log lines go. Default: stderr. */
  log?: (line: string) => void;
}

export interface StopReport {
  /** Bytes left in each socket's queue when it was closed (0 means nothing was dropped at stop). */
  leftBytes: number[];
}

type Counters = Omit<WorkerSnapshot, 'index' | 'pid' | 'seq' | 'final' | 'engine'>;
const ZERO: Counters = {
  datagrams: 0, bytes: 0, handlerErrors: 0, cpuUserMicros: 0, cpuSystemMicros: 0, batches: 0, truncated: 0, sends: 0, sendErrors: 0,
};
function add(a: Counters, b: Counters): Counters {
  const out = { ...a };
  for (const k of Object.keys(ZERO) as (keyof Counters)[]) out[k] = a[k] + b[k];
  return out;
}

interface Slot {
  index: number;
  sock: OpenedSocket;
  child: ChildProcess | undefined;
  pid: number;
  state: WorkerStats['state'];
  startedAt: number;
  restarts: number;
  crashStreak: number;
  /** Counters of this slot's earlier worker processes. */
  base: Counters;
  /** Latest snapshot of the current process. */
  current: Counters;
  restartTimer: NodeJS.Timeout | undefined;
  lastWords: string | undefined;
  closed: boolean;
  lastMem: SocketMemInfo;
}

const CRASH_WINDOW_MS = 5000;
const MAX_BACKOFF_MS = 10_000;
const START_TIMEOUT_MS = 20_000;

export interface SupervisorEvents {
  'worker-ready': [info: { index: number; pid: number; restart: boolean }];
  'worker-exit': [info: { index: number; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }];
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly options: Readonly<Required<Omit<SupervisorOptions, 'rcvbuf' | 'log'>> & { rcvbuf: number | undefined }>;
  private readonly appUrl: string;
  private readonly log: (line: string) => void;
  private slots: Slot[] = [];
  private startedAt = 0;
  private stopping: Promise<StopReport> | undefined;
  private readonly workerMain = fileURLToPath(new URL('./worker-main.js', import.meta.url));

  constructor(opts: SupervisorOptions) {
    super();
    const address = opts.address ?? '127.0.0.1';
    if (!familyOf(address)) throw invalidArg('address', address, 'an IPv4 or IPv6 literal (e.g. 127.0.0.1 or ::1)');
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw invalidArg('port', opts.port, 'an integer from 0 to 65535');
    const workers = opts.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw invalidArg('workers', workers, 'an integer from 1 to 256');
    const engine = opts.engine ?? 'dgram';
    if (engine !== 'dgram' && engine !== 'native') throw invalidArg('engine', engine, '"dgram" or "native"');
    const maxDatagram = opts.maxDatagram ?? UDP_MAX_PAYLOAD;
    if (!Number.isInteger(maxDatagram) || maxDatagram < 1 || maxDatagram > UDP_MAX_PAYLOAD) {
      throw invalidArg('maxDatagram', maxDatagram, `an integer from 1 to ${UDP_MAX_PAYLOAD}`);
    }
    const batch = opts.batch ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw invalidArg('batch', batch, 'an integer from 1 to 1024');
    this.appUrl = resolveApp(opts.app);
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.options = {
      app: opts.app,
      address,
      port: opts.port,
      workers,
      engine,
      rcvbuf: opts.rcvbuf,
      rcvbufForce: opts.rcvbufForce ?? false,
      appOptions: opts.appOptions ?? {},
      snapshotIntervalMs: opts.snapshotIntervalMs ?? 200,
      drainTimeoutMs: opts.drainTimeoutMs ?? 10_000,
      maxDatagram,
      batch,
    };
  }

  /** The bound port (the kernel's choice when 0 was asked). */
  get port(): number {
    return this.slots[0]?.sock.port ?? this.options.port;
  }

  get address(): string {
    return this.slots[0]?.sock.address ?? this.options.address;
  }

  /** Warnings gathered while opening the sockets (e.g. a capped SO_RCVBUF). */
  warnings: string[] = [];

  private appHooks: AppSupervisorHooks = {};

  /** Loads the app in this process too: fails early on a bad module, and runs its supervisor side. */
  private async loadApp(): Promise<void> {
    let mod: { default?: unknown; supervisor?: unknown };
    try {
      mod = (await import(this.appUrl)) as typeof mod;
    } catch (err) {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot load app ${this.options.app} (${this.appUrl}): ${err instanceof Error ? err.message : String(err)}`);
    }
    if (typeof mod.default !== 'function') {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${this.options.app} has no default export function (see defineApp)`);
    }
    if (typeof mod.supervisor === 'function') {
      this.appHooks = await (mod.supervisor as AppSupervisor)({
        workers: this.options.workers,
        options: this.options.appOptions,
        log: (line) => this.log(`app: ${line}`),
        broadcast: (m) => this.broadcast(m),
      });
    }
  }

  /** Sends an app message to every running worker. */
  broadcast(message: unknown): void {
    for (const s of this.slots) {
      if (s.child?.connected) s.child.send({ t: 'app', m: message } satisfies ToWorker);
    }
  }

  /** GET /metrics: the service's figures and the app's own. */
  metrics(): string {
    return toPrometheus(this.stats()) + (this.appHooks.metrics?.() ?? '');
  }

  /** Opens the sockets and starts every worker; resolves when all are receiving. */
  async start(): Promise<void> {
    if (this.slots.length) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'start() was called twice');
    const o = this.options;
    await this.loadApp();
    const own = new Set<number>();
    try {
      let port = o.port;
      for (let i = 0; i < o.workers; i++) {
        const sock = openReusePortSocket({
          address: o.address, port, ownInodes: own, rcvbufForce: o.rcvbufForce, ...(o.rcvbuf !== undefined ? { rcvbuf: o.rcvbuf } : {}),
        });
        own.add(sock.inode);
        port = sock.port;
        if (i === 0) for (const w of sock.warnings) { this.warnings.push(w); this.log(`warning: ${w}`); }
        this.slots.push({
          index: i, sock, child: undefined, pid: 0, state: 'starting', startedAt: 0, restarts: 0, crashStreak: 0,
          base: { ...ZERO }, current: { ...ZERO }, restartTimer: undefined, lastWords: undefined,
          closed: false, lastMem: { queueBytes: 0, drops: 0, rcvbuf: 0 },
        });
      }
    } catch (err) {
      for (const s of this.slots) closeFd(s.sock.fd);
      this.slots = [];
      throw err;
    }
    this.startedAt = Date.now();
    try {
      await Promise.all(this.slots.map((s) => this.spawnWorker(s)));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private spawnWorker(slot: Slot): Promise<void> {
    const o = this.options;
    const config: WorkerConfig = {
      index: slot.index,
      workers: o.workers,
      engine: o.engine,
      family: slot.sock.family,
      app: this.appUrl,
      appOptions: o.appOptions,
      snapshotIntervalMs: o.snapshotIntervalMs,
      maxDatagram: o.maxDatagram,
      batch: o.batch,
    };
    const child = spawn(process.execPath, [this.workerMain], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc', slot.sock.fd],
      env: { ...process.env, [WORKER_ENV]: JSON.stringify(config) },
      serialization: 'advanced',
      // Own process group: a terminal's Ctrl-C reaches the supervisor only, which then drains the workers.
      detached: true,
    });
    slot.child = child;
    slot.pid = child.pid ?? 0;
    slot.state = 'starting';
    slot.startedAt = Date.now();
    slot.current = { ...ZERO };
    slot.lastWords = undefined;
    const restart = slot.restarts > 0;
    const name = (): string => `worker ${slot.index} (pid ${slot.pid})`;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        slot.lastWords = line;
        this.log(`${name()}: ${line}`);
      });
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `${name()} did not report ready within ${START_TIMEOUT_MS / 1000} s`));
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      child.on('message', (msg: ToSupervisor) => {
        switch (msg.t) {
          case 'ready':
            slot.state = 'running';
            this.emit('worker-ready', { index: slot.index, pid: slot.pid, restart });
            settle();
            break;
          case 'snap': {
            const s = decodeSnapshot(msg.b);
            const { index: _i, pid: _p, seq: _s, final: _f, engine: _e, ...counters } = s;
            slot.current = counters;
            break;
          }
          case 'log':
            slot.lastWords = msg.line;
            this.log(`${name()}: ${msg.line}`);
            break;
          case 'fatal':
            slot.lastWords = msg.message;
            this.log(`${name()}: fatal: ${msg.message}`);
            if (!restart) settle(new ShardgramError('ERR_SHARDGRAM_APP', `${name()} could not start: ${msg.message}`));
            break;
          case 'app':
            try {
              this.appHooks.message?.(slot.index, msg.m);
            } catch (err) {
              this.log(`app message hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
            }
            break;
          case 'drained':
            if (msg.leftBytes > 0) this.log(`${name()}: drain timed out with ${msg.leftBytes} bytes still queued`);
            break;
        }
      });
      child.on('error', (err) => settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `cannot start worker ${slot.index}: ${err.message}`)));
      child.on('exit', (code, signal) => {
        const expected = slot.state === 'stopping';
        slot.base = add(slot.base, slot.current);
        slot.current = { ...ZERO };
        slot.child = undefined;
        this.emit('worker-exit', { index: slot.index, pid: slot.pid, code, signal, expected });
        if (expected || this.stopping) {
          slot.state = 'stopped';
          return;
        }
        const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        if (!settled) {
          settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `${name()} ${why} before it was ready${slot.lastWords ? `: ${slot.lastWords}` : ''}`));
          return;
        }
        this.scheduleRestart(slot, why);
      });
    });
  }

  private scheduleRestart(slot: Slot, why: string): void {
    const lived = Date.now() - slot.startedAt;
    slot.crashStreak = lived < CRASH_WINDOW_MS ? slot.crashStreak + 1 : 1;
    const delay = slot.crashStreak <= 1 ? 0 : Math.min(100 * 2 ** (slot.crashStreak - 2), MAX_BACKOFF_MS);
    const last = slot.lastWords ? ` Last words: ${slot.lastWords}` : '';
    if (slot.crashStreak >= 3) {
      this.log(
        `worker ${slot.index} (pid ${slot.pid}) ${why} after ${(lived / 1000).toFixed(1)} s, ${slot.crashStreak} times in a row within ${CRASH_WINDOW_MS / 1000} s each: ` +
          `crash loop, backing off ${delay} ms before the next start.${last}`,
      );
    } else {
      this.log(`worker ${slot.index} (pid ${slot.pid}) ${why} after ${(lived / 1000).toFixed(1)} s; restarting it on the same socket (its queue is kept) in ${delay} ms.${last}`);
    }
    slot.state = 'backoff';
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping) return;
      slot.restarts++;
      this.spawnWorker(slot).catch((err: Error) => {
        // A failed restart shows up as another exit; the streak grows and so does the delay.
        this.log(err.message);
      });
    }, delay);
  }

  /** The per-worker and group statistics, cumulative since the service started. */
  stats(): StatsReport {
    const o = this.options;
    const rows = this.slots.map((s) => {
      const c = add(s.base, s.current);
      // After stop the fd number may belong to something else: never read it.
      const mem = s.closed ? s.lastMem : (s.lastMem = socketMemInfo(s.sock.fd));
      return {
        index: s.index, pid: s.pid, state: s.state, engine: o.engine, ...c,
        kernelDrops: mem.drops, queueBytes: mem.queueBytes, rcvbuf: mem.rcvbuf, restarts: s.restarts,
      };
    });
    return summarize(
      {
        app: o.app, engine: o.engine, address: this.address, port: this.port, family: this.slots[0]?.sock.family ?? (familyOf(o.address) as 'udp4' | 'udp6'),
        workers: this.slots.length, startedAt: new Date(this.startedAt).toISOString(), uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      },
      rows,
    );
  }

  /** Pids of the current worker processes, by slot (0 while a slot is restarting). */
  workerPids(): number[] {
    return this.slots.map((s) => (s.child ? s.pid : 0));
  }

  /**
   * Graceful stop: every worker drains its socket's queue and finishes, then the
   * sockets are closed. Safe to call more than once.
   */
  stop(): Promise<StopReport> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<StopReport> {
    const timeoutMs = this.options.drainTimeoutMs;
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        slot.state = 'stopping';
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        const msg: ToWorker = { t: 'stop', timeoutMs };
        try {
          child.send(msg);
        } catch {
          child.kill('SIGKILL');
        }
        const kill = setTimeout(() => {
          this.log(`worker ${slot.index} (pid ${slot.pid}) did not stop within ${(timeoutMs + 5000) / 1000} s; killing it`);
          child.kill('SIGKILL');
        }, timeoutMs + 5000);
        await exited;
        clearTimeout(kill);
      }),
    );
    const leftBytes = this.slots.map((s) => {
      s.lastMem = socketMemInfo(s.sock.fd);
      const left = s.lastMem.queueBytes;
      if (left > 0) this.log(`socket ${s.index}: ${left} bytes arrived after its worker drained and are dropped with the socket`);
      closeFd(s.sock.fd);
      s.closed = true;
      return left;
    });
    try {
      await this.appHooks.stop?.();
    } catch (err) {
      this.log(`app stop hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    return { leftBytes };
  }
}
