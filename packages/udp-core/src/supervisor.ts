/**
 * The supervisor: owns the group's sockets for the life of the service, runs one
 * worker process per socket, restarts a dead worker on the same socket (its queue
 * intact), steers, resizes and reloads without loss, merges statistics, and stops
 * gracefully.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ShardgramError, invalidArg } from './errors.js';
import { closeFd, competingHolders, openReusePortSocket, refuseOccupiedPort, socketMemInfo, type OpenedSocket, type SocketMemInfo } from './ffi/socket.js';
import { discardQueued } from './ffi/discard.js';
import { SharedCounters } from './ffi/shared-counters.js';
import { UDP6_MAX_PAYLOAD, UDP_MAX_PAYLOAD } from './ffi/kernel.js';
import { familyOf } from './ffi/sockaddr.js';
import { resolveApp } from './apps/resolve.js';
import { WORKER_ENV, type ToSupervisor, type ToWorker, type WorkerConfig } from './ipc.js';
import type { AppDefaults, AppSupervisor, AppSupervisorHooks, EngineName } from './shard-socket.js';
import { decodeSnapshot, type WorkerSnapshot } from './snapshot.js';
import { summarize, toPrometheus, type StatsReport, type WorkerStats } from './stats.js';
import { ImbalanceDetector, type ImbalanceOptions } from './imbalance.js';
import { Steering, type PolicySpec } from './steering/steering.js';

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
  /** How the kernel picks a socket per datagram. Default: the app's default, else `hash`. */
  policy?: PolicySpec;
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
  /** Imbalance detection under `hash` (window, minimum traffic, how long it must last). */
  imbalance?: ImbalanceOptions;
  /** Where the supervisor's log lines go. Default: stderr. */
  log?: (line: string) => void;
}

export interface StopReport {
  /** Bytes left in each socket's queue when it was closed (0 means nothing was dropped at stop). */
  leftBytes: number[];
  /** Datagrams those bytes were (read out and counted before the close). */
  droppedAtClose: number;
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
/** A running process's counters: the shared page, and CPU time from its snapshots. */
function liveCounters(p: Proc): Counters {
  return { ...p.shared.read(), cpuUserMicros: p.cpu.user, cpuSystemMicros: p.cpu.system };
}

/** One worker process. A slot has one, or two for a moment during a reload. */
interface Proc {
  child: ChildProcess;
  pid: number;
  startedAt: number;
  /** Its counters, in memory shared with it (exact even after a SIGKILL); unmapped once folded. */
  shared: SharedCounters;
  /** CPU time from its latest snapshot. */
  cpu: { user: number; system: number };
  lastWords: string | undefined;
  /** Exit was asked for (stop, reload, shrink): no restart. */
  expected: boolean;
  exited: Promise<void>;
}

interface Slot {
  index: number;
  sock: OpenedSocket;
  proc: Proc | undefined;
  /** Processes asked to stop that have not exited yet (reload). */
  leaving: Set<Proc>;
  state: WorkerStats['state'];
  restarts: number;
  /** Processes started on this slot so far. */
  generation: number;
  crashStreak: number;
  /** Counters of this slot's earlier processes. */
  base: Counters;
  restartTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  lastMem: SocketMemInfo;
  /** Pid of the latest process (kept for the report after it exits). */
  lastPid: number;
  /** Datagrams still queued when the socket was closed (counted by reading them out). */
  droppedAtClose: number;
}

const CRASH_WINDOW_MS = 5000;
const MAX_BACKOFF_MS = 10_000;
const START_TIMEOUT_MS = 20_000;
const IMBALANCE_CHECK_MS = 1000;

export interface SupervisorEvents {
  'worker-ready': [info: { index: number; pid: number; restart: boolean }];
  'worker-exit': [info: { index: number; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }];
  resized: [info: { from: number; to: number }];
  reloaded: [info: { workers: number }];
}

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly options: Readonly<Required<Omit<SupervisorOptions, 'rcvbuf' | 'log' | 'policy' | 'imbalance'>> & { rcvbuf: number | undefined }>;
  private readonly appUrl: string;
  private readonly log: (line: string) => void;
  private slots: Slot[] = [];
  /** Counters and kernel drops of retired slots (shrunk away). */
  private retired = { counters: { ...ZERO }, kernelDrops: 0, restarts: 0, workers: 0, droppedAtClose: 0 };
  private started = false;
  private startedAt = 0;
  private stopping: Promise<StopReport> | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  private readonly workerMain = fileURLToPath(new URL('./worker-main.js', import.meta.url));
  private appHooks: AppSupervisorHooks = {};
  private steering: Steering | undefined;
  private readonly policyOption: PolicySpec | undefined;
  private readonly engineGiven: boolean;
  private readonly imbalance: ImbalanceDetector;
  private imbalanceTimer: NodeJS.Timeout | undefined;

  /** Warnings gathered while opening the sockets (e.g. a capped SO_RCVBUF). */
  warnings: string[] = [];

  constructor(opts: SupervisorOptions) {
    super();
    const address = opts.address ?? '127.0.0.1';
    if (!familyOf(address)) throw invalidArg('address', address, 'an IPv4 or IPv6 literal (e.g. 127.0.0.1 or ::1)');
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw invalidArg('port', opts.port, 'an integer from 0 to 65535');
    const workers = opts.workers ?? availableParallelism();
    checkWorkers(workers);
    const engine = opts.engine ?? 'dgram';
    this.engineGiven = opts.engine !== undefined;
    if (engine !== 'dgram' && engine !== 'native') throw invalidArg('engine', engine, '"dgram" or "native"');
    // The largest datagram of the address's family: 65507 over IPv4, 65527 over IPv6.
    const familyMax = familyOf(address) === 'udp6' ? UDP6_MAX_PAYLOAD : UDP_MAX_PAYLOAD;
    const maxDatagram = opts.maxDatagram ?? familyMax;
    if (!Number.isInteger(maxDatagram) || maxDatagram < 1 || maxDatagram > familyMax) {
      throw invalidArg('maxDatagram', maxDatagram, `an integer from 1 to ${familyMax} (${familyMax === UDP_MAX_PAYLOAD ? 'IPv4' : 'IPv6'})`);
    }
    const batch = opts.batch ?? 64;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1024) throw invalidArg('batch', batch, 'an integer from 1 to 1024');
    this.appUrl = resolveApp(opts.app);
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.policyOption = opts.policy;
    this.imbalance = new ImbalanceDetector(opts.imbalance);
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

  /** Live workers (sockets) in the group now. */
  get workers(): number {
    return this.slots.length;
  }

  /** The steering policy in force. */
  get policy(): PolicySpec {
    return this.steering?.policy ?? this.policyOption ?? { name: 'hash' };
  }

  /** Loads the app in this process too: fails early on a bad module, and runs its supervisor side. */
  private async loadApp(): Promise<AppDefaults> {
    let mod: { default?: unknown; supervisor?: unknown; defaults?: AppDefaults };
    try {
      mod = (await import(this.appUrl)) as typeof mod;
    } catch (err) {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot load app ${this.options.app} (${this.appUrl}): ${err instanceof Error ? err.message : String(err)}`);
    }
    if (typeof mod.default !== 'function') {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${this.options.app} has no default export function (see defineApp)`);
    }
    if (typeof mod.supervisor === 'function') {
      try {
        this.appHooks = await (mod.supervisor as AppSupervisor)({
          workers: this.options.workers,
          options: this.options.appOptions,
          log: (line) => this.log(`app: ${line}`),
          broadcast: (m) => this.broadcast(m),
        });
      } catch (err) {
        if (err instanceof ShardgramError) throw err;
        throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${this.options.app} could not start: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return mod.defaults ?? {};
  }

  /** Sends an app message to every running worker. */
  broadcast(message: unknown): void {
    for (const s of this.slots) {
      if (s.proc?.child.connected) s.proc.child.send({ t: 'app', m: message } satisfies ToWorker);
    }
  }

  /** GET /metrics: the service's figures and the app's own. */
  metrics(): string {
    return toPrometheus(this.stats()) + (this.appHooks.metrics?.() ?? '');
  }

  private openSlot(index: number, port: number): Slot {
    const o = this.options;
    const own = new Set(this.slots.map((s) => s.sock.inode));
    const open = (p: number): OpenedSocket =>
      openReusePortSocket({ address: o.address, port: p, ownInodes: own, rcvbufForce: o.rcvbufForce, ...(o.rcvbuf !== undefined ? { rcvbuf: o.rcvbuf } : {}) });
    let sock: OpenedSocket;
    if (index > 0) {
      sock = open(port);
    } else if (port !== 0) {
      // The kernel would let a same-uid SO_REUSEPORT group already on the port take us in.
      const refusal = refuseOccupiedPort(o.address, port, own);
      if (refusal) throw refusal;
      sock = open(port);
    } else {
      // An ephemeral port can be one another SO_REUSEPORT socket already has: try again.
      for (let attempt = 0; ; attempt++) {
        sock = open(0);
        if (competingHolders(o.address, sock.port, new Set([sock.inode])).length === 0) break;
        closeFd(sock.fd);
        if (attempt === 9) throw new ShardgramError('ERR_SHARDGRAM_PORT_HELD', `the kernel kept choosing ports that other SO_REUSEPORT sockets already hold; give --port explicitly`);
      }
    }
    return {
      index, sock, proc: undefined, leaving: new Set(), state: 'starting', restarts: 0, generation: 0, crashStreak: 0,
      base: { ...ZERO }, restartTimer: undefined, closed: false, lastMem: { queueBytes: 0, drops: 0, rcvbuf: 0 }, lastPid: 0, droppedAtClose: 0,
    };
  }

  /** Opens the sockets and starts every worker; resolves when all are receiving. */
  start(): Promise<void> {
    if (this.started || this.stopping) return Promise.reject(new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'start() may be called once, before stop()'));
    this.started = true;
    return this.exclusive(() => this.doStart());
  }

  private async doStart(): Promise<void> {
    const appDefaults = await this.loadApp();
    // The app's defaults fill what the caller left open.
    const settable = this.options as { engine: EngineName; rcvbuf: number | undefined };
    if (!this.engineGiven && appDefaults.engine) settable.engine = appDefaults.engine;
    if (settable.rcvbuf === undefined && appDefaults.rcvbuf !== undefined) settable.rcvbuf = appDefaults.rcvbuf;
    const o = this.options;
    if (this.stopping) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'stopped before it had started');
    try {
      let port = o.port;
      for (let i = 0; i < o.workers; i++) {
        const slot = this.openSlot(i, port);
        port = slot.sock.port;
        if (i === 0) for (const w of slot.sock.warnings) { this.warnings.push(w); this.log(`warning: ${w}`); }
        this.slots.push(slot);
      }
      // Attach after bind: a program attached before bind gives the socket a group of its own.
      this.steering = new Steering(this.policyOption ?? appDefaults.policy ?? { name: 'hash' });
      this.steering.apply(this.slots[0]!.sock.fd, this.slots.length);
    } catch (err) {
      for (const s of this.slots) closeFd(s.sock.fd);
      this.slots = [];
      await this.runAppStop();
      throw err;
    }
    this.startedAt = Date.now();
    try {
      await Promise.all(this.slots.map((s) => this.spawnWorker(s)));
    } catch (err) {
      // stop() waits for `busy`, which is this very start: run the stop itself here.
      await this.stopOnce();
      throw err;
    }
    this.imbalanceTimer = setInterval(() => this.checkImbalance(), IMBALANCE_CHECK_MS);
    this.imbalanceTimer.unref();
  }

  private spawnWorker(slot: Slot): Promise<Proc> {
    const o = this.options;
    const config: WorkerConfig = {
      index: slot.index,
      workers: this.slots.length,
      engine: o.engine,
      family: slot.sock.family,
      app: this.appUrl,
      appOptions: o.appOptions,
      snapshotIntervalMs: o.snapshotIntervalMs,
      maxDatagram: o.maxDatagram,
      batch: o.batch,
    };
    let child: ChildProcess;
    let shared: SharedCounters;
    let sharedFd: number;
    try {
      ({ fd: sharedFd, counters: shared } = SharedCounters.create(`shardgram-worker-${slot.index}`));
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      child = spawn(process.execPath, [this.workerMain], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc', slot.sock.fd, sharedFd],
        env: { ...process.env, [WORKER_ENV]: JSON.stringify(config) },
        serialization: 'advanced',
        // Own process group: a terminal's Ctrl-C reaches the supervisor only, which then drains the workers.
        detached: true,
      });
    } catch (err) {
      shared.unmap();
      return Promise.reject(new ShardgramError('ERR_SHARDGRAM_WORKER', `cannot start worker ${slot.index}: ${err instanceof Error ? err.message : String(err)}`));
    } finally {
      // The child has its own copy of the fd (or none); the mapping lives on without it.
      closeFd(sharedFd);
    }
    let markExited: () => void = () => {};
    const proc: Proc = {
      child, pid: child.pid ?? 0, startedAt: Date.now(), shared, cpu: { user: 0, system: 0 }, lastWords: undefined, expected: false,
      // Exited, and its IPC channel read to the end: its last messages (final snapshot,
      // an app's final partial) have been handled. 'exit' alone can come before them.
      exited: new Promise<void>((r) => (markExited = r)).then(() =>
        child.connected ? new Promise<void>((r) => { const t = setTimeout(r, 2000); child.once('disconnect', () => { clearTimeout(t); r(); }); }) : undefined,
      ),
    };
    slot.lastPid = proc.pid || slot.lastPid;
    const restart = slot.generation++ > 0;
    // A first start or a restart fills the slot now; a reload's new process waits to be ready.
    if (!slot.proc) slot.proc = proc;
    const name = `worker ${slot.index} (pid ${proc.pid})`;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        proc.lastWords = line;
        this.log(`${name}: ${line}`);
      });
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      /** The process has exited and its counters are in `slot.base`. */
      let gone = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(proc);
      };
      const timer = setTimeout(() => {
        settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `${name} did not report ready within ${START_TIMEOUT_MS / 1000} s`));
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      timer.unref();
      child.on('message', (msg: ToSupervisor) => {
        switch (msg.t) {
          case 'ready':
            // A process already asked to leave (or already gone: IPC can trail 'exit') is never promoted.
            if (proc.expected || gone) {
              settle();
              break;
            }
            // A reload's new process becomes the slot's process once it is ready; the one
            // it displaces drains and leaves (reload awaits that itself).
            if (slot.proc !== proc) {
              const old = slot.proc;
              slot.proc = proc;
              if (old) {
                slot.leaving.add(old);
                if (!old.expected) void this.retire(slot, old);
              }
            }
            slot.state = 'running';
            this.emit('worker-ready', { index: slot.index, pid: proc.pid, restart });
            settle();
            break;
          case 'snap': {
            // Counts come from the shared page; a snapshot brings the CPU time.
            const snap = decodeSnapshot(msg.b);
            if (gone) {
              // Arrived after the exit (the final snapshot can): fold in the CPU time not yet counted.
              slot.base.cpuUserMicros += snap.cpuUserMicros - proc.cpu.user;
              slot.base.cpuSystemMicros += snap.cpuSystemMicros - proc.cpu.system;
            }
            proc.cpu = { user: snap.cpuUserMicros, system: snap.cpuSystemMicros };
            break;
          }
          case 'log':
            proc.lastWords = msg.line;
            this.log(`${name}: ${msg.line}`);
            break;
          case 'fatal':
            proc.lastWords = msg.message;
            this.log(`${name}: fatal: ${msg.message}`);
            settle(new ShardgramError('ERR_SHARDGRAM_APP', `${name} could not start: ${msg.message}`));
            break;
          case 'app':
            try {
              this.appHooks.message?.(slot.index, msg.m);
            } catch (err) {
              this.log(`app message hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
            }
            break;
          case 'drained':
            if (msg.leftBytes > 0) this.log(`${name}: drain timed out with ${msg.leftBytes} bytes still queued`);
            break;
        }
      });
      const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (gone) return;
        gone = true;
        markExited();
        slot.base = add(slot.base, liveCounters(proc));
        proc.shared.unmap();
        slot.leaving.delete(proc);
        const current = slot.proc === proc;
        if (current) slot.proc = undefined;
        this.emit('worker-exit', { index: slot.index, pid: proc.pid, code, signal, expected: proc.expected });
        const why = signal ? `was killed by ${signal}` : code === null ? 'could not be started' : `exited with code ${code}`;
        settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `${name} ${why} before it was ready${proc.lastWords ? `: ${proc.lastWords}` : ''}`));
        if (proc.expected || this.stopping || slot.closed) {
          if (current) slot.state = 'stopped';
          return;
        }
        if (current) this.scheduleRestart(slot, proc, why);
      };
      child.on('exit', onGone);
      child.on('error', (err) => {
        proc.lastWords = err.message;
        // No pid: the process never existed, and no 'exit' will come.
        if (child.pid === undefined) onGone(null, null);
      });
    });
  }

  private scheduleRestart(slot: Slot, proc: Pick<Proc, 'pid' | 'startedAt' | 'lastWords'>, why: string): void {
    const lived = Date.now() - proc.startedAt;
    slot.crashStreak = lived < CRASH_WINDOW_MS ? slot.crashStreak + 1 : 1;
    const delay = slot.crashStreak <= 1 ? 0 : Math.min(100 * 2 ** (slot.crashStreak - 2), MAX_BACKOFF_MS);
    const last = proc.lastWords ? ` Last words: ${proc.lastWords}` : '';
    if (slot.crashStreak >= 3) {
      this.log(
        `worker ${slot.index} (pid ${proc.pid}) ${why} after ${(lived / 1000).toFixed(1)} s, ${slot.crashStreak} times in a row within ${CRASH_WINDOW_MS / 1000} s each: ` +
          `crash loop, backing off ${delay} ms before the next start.${last}`,
      );
    } else {
      this.log(`worker ${slot.index} (pid ${proc.pid}) ${why} after ${(lived / 1000).toFixed(1)} s; restarting it on the same socket (its queue is kept) in ${delay} ms.${last}`);
    }
    slot.state = 'backoff';
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping || slot.closed) return;
      slot.restarts++;
      this.spawnWorker(slot).catch((err: Error) => {
        // A process that never started leaves no exit behind: back off and try again.
        if (!slot.proc && !this.stopping && !slot.closed && !slot.restartTimer) this.scheduleRestart(slot, { startedAt: Date.now(), pid: 0, lastWords: err.message }, 'could not be started');
        // A failed restart shows up as another exit; the streak grows and so does the delay.
        this.log(err.message);
      });
    }, delay);
  }

  /** Asks a process to drain its socket and exit; resolves when it has. */
  private async retire(slot: Slot, proc: Proc): Promise<void> {
    proc.expected = true;
    const timeoutMs = this.options.drainTimeoutMs;
    if (proc.child.exitCode !== null || proc.child.signalCode !== null || proc.child.pid === undefined) return;
    try {
      proc.child.send({ t: 'stop', timeoutMs } satisfies ToWorker);
    } catch {
      proc.child.kill('SIGKILL');
    }
    const kill = setTimeout(() => {
      this.log(`worker ${slot.index} (pid ${proc.pid}) did not stop within ${(timeoutMs + 5000) / 1000} s; killing it`);
      proc.child.kill('SIGKILL');
    }, timeoutMs + 5000);
    await proc.exited;
    clearTimeout(kill);
  }

  /** Runs control operations (resize, reload) one at a time. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.busy.then(op, op);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /**
   * Grows or shrinks the group to `count` workers, under load, losing nothing.
   * Growing opens sockets at the end of the group. Shrinking retires the last
   * sockets: new datagrams are steered away from them first, then each is drained
   * by its worker and closed last-first, so no other socket's index moves.
   */
  resize(count: number): Promise<{ from: number; to: number }> {
    checkWorkers(count);
    return this.exclusive(async () => {
      if (this.stopping || !this.steering) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'the service is not running');
      const steering = this.steering;
      const from = this.slots.length;
      const fd0 = this.slots[0]!.sock.fd;
      if (count > from) {
        // New sockets get no datagram until their workers read.
        steering.applyBeforeGrow(fd0, from);
        const added: Slot[] = [];
        try {
          for (let i = from; i < count; i++) {
            const slot = this.openSlot(i, this.port);
            this.slots.push(slot);
            added.push(slot);
          }
          await Promise.all(added.map((s) => this.spawnWorker(s)));
        } catch (err) {
          // Roll back: nothing was steered to the new sockets, so their queues are empty.
          for (const s of [...added].reverse()) {
            await Promise.all([...(s.proc ? [s.proc] : []), ...s.leaving].map((p) => this.retire(s, p)));
            if (s.restartTimer) clearTimeout(s.restartTimer);
            s.closed = true;
            closeFd(s.sock.fd);
          }
          this.slots.length = from;
          steering.apply(fd0, from);
          throw err;
        }
        steering.apply(fd0, count);
      } else if (count < from) {
        const leaving = this.slots.slice(count);
        // 1. No new datagram goes to a leaving socket.
        steering.applyDuringShrink(fd0, count);
        // 2. Each leaving worker reads its queue empty and exits.
        await Promise.all(leaving.map(async (slot) => {
          if (slot.restartTimer) clearTimeout(slot.restartTimer);
          slot.state = 'stopping';
          if (slot.proc) await this.retire(slot, slot.proc);
        }));
        // 3. Close last-first: closing the last socket of the group moves no index.
        for (const slot of [...leaving].reverse()) {
          this.closeSlot(slot);
          this.retired.counters = add(this.retired.counters, slot.base);
          this.retired.kernelDrops += slot.lastMem.drops;
          this.retired.restarts += slot.restarts;
          this.retired.droppedAtClose += slot.droppedAtClose;
          this.retired.workers++;
        }
        this.slots.length = count;
        // 4. The policy over the sockets that remain.
        steering.apply(fd0, count);
      }
      this.imbalance.reset();
      if (count !== from) {
        this.log(`resized from ${from} to ${count} workers`);
        this.emit('resized', { from, to: count });
      }
      return { from, to: count };
    });
  }

  /**
   * Rolling reload: one slot at a time, a new worker process (which loads the app's
   * code afresh) starts on the same socket; once it is ready the old one drains
   * and exits. The socket is never without a reader and never closed.
   */
  reload(): Promise<{ workers: number }> {
    return this.exclusive(async () => {
      if (this.stopping || !this.steering) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'the service is not running');
      for (const slot of this.slots) {
        if (slot.restartTimer) {
          // In backoff: start it now, with the new code.
          clearTimeout(slot.restartTimer);
          slot.restartTimer = undefined;
        }
        const old = slot.proc;
        await this.spawnWorker(slot);
        if (old) await this.retire(slot, old);
      }
      this.log(`reloaded ${this.slots.length} workers`);
      this.emit('reloaded', { workers: this.slots.length });
      return { workers: this.slots.length };
    });
  }

  private checkImbalance(): void {
    if (this.stopping || this.policy.name !== 'hash') return;
    const counts = this.slots.map((s) => this.countersOf(s).datagrams);
    const { state, changed } = this.imbalance.observe(
      Date.now(),
      counts,
      'the kernel hash sends each source port to one worker; a few busy senders overload one. Use --policy random (even per datagram) or --policy key (per key, e.g. StatsD metric name).',
    );
    if (changed && state.detected) {
      this.log(
        `warning: worker ${state.worker} has received ${(state.share! * 100).toFixed(0)}% of the datagrams for ${((Date.now() - Date.parse(state.since!)) / 1000).toFixed(0)} s ` +
          `(even would be ${(state.evenShare * 100).toFixed(0)}%): ${state.advice}`,
      );
    }
  }

  private countersOf(s: Slot): Counters {
    let c = add(s.base, s.proc ? liveCounters(s.proc) : ZERO);
    for (const p of s.leaving) c = add(c, liveCounters(p));
    return c;
  }

  /** The per-worker and group statistics, cumulative since the service started. */
  stats(): StatsReport {
    const o = this.options;
    const rows = this.slots.map((s) => {
      // After stop the fd number may belong to something else: never read it.
      const mem = s.closed ? s.lastMem : (s.lastMem = socketMemInfo(s.sock.fd));
      return {
        index: s.index, pid: s.proc?.pid ?? s.lastPid, state: s.state, engine: o.engine, ...this.countersOf(s),
        kernelDrops: mem.drops, queueBytes: mem.queueBytes, rcvbuf: mem.rcvbuf, restarts: s.restarts, droppedAtClose: s.droppedAtClose,
      };
    });
    const report = summarize(
      {
        app: o.app, engine: o.engine, address: this.address, port: this.port, family: this.slots[0]?.sock.family ?? (familyOf(o.address) as 'udp4' | 'udp6'),
        workers: this.slots.length, startedAt: new Date(this.startedAt).toISOString(), uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      },
      rows,
      {
        ...this.retired.counters, kernelDrops: this.retired.kernelDrops, restarts: this.retired.restarts, workers: this.retired.workers,
        droppedAtClose: this.retired.droppedAtClose,
      },
    );
    report.policy = this.policy;
    report.imbalance = this.imbalance.current;
    return report;
  }

  /** Pids of the current worker processes, by slot (0 while a slot is restarting). */
  workerPids(): number[] {
    return this.slots.map((s) => s.proc?.pid ?? 0);
  }

  /**
   * Graceful stop: every worker drains its socket's queue and finishes, then the
   * sockets are closed. Safe to call more than once.
   */
  stop(): Promise<StopReport> {
    this.stopping ??= this.busy.then(() => this.stopOnce());
    return this.stopping;
  }

  private stopped: Promise<StopReport> | undefined;
  private stopOnce(): Promise<StopReport> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  /**
   * Closes a slot's socket, after counting (by reading them out) any datagrams still
   * queued: what a closed socket drops is never dropped silently.
   */
  private closeSlot(slot: Slot): void {
    if (slot.closed) return;
    slot.lastMem = socketMemInfo(slot.sock.fd);
    const left = discardQueued(slot.sock.fd);
    if (left > 0) {
      slot.droppedAtClose += left;
      this.log(`socket ${slot.index}: ${left} datagrams (${slot.lastMem.queueBytes} bytes) were still queued at close and are dropped; counted in droppedAtClose`);
    }
    closeFd(slot.sock.fd);
    slot.closed = true;
  }

  private async runAppStop(): Promise<void> {
    try {
      await this.appHooks.stop?.();
    } catch (err) {
      this.log(`app stop hook threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  private async doStop(): Promise<StopReport> {
    if (this.imbalanceTimer) clearInterval(this.imbalanceTimer);
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        slot.state = 'stopping';
        await Promise.all([...(slot.proc ? [slot.proc] : []), ...slot.leaving].map((p) => this.retire(slot, p)));
        slot.state = 'stopped';
      }),
    );
    const leftBytes = this.slots.map((s) => {
      if (s.closed) return 0;
      this.closeSlot(s);
      return s.lastMem.queueBytes;
    });
    await this.runAppStop();
    return { leftBytes, droppedAtClose: this.slots.reduce((a, s) => a + s.droppedAtClose, 0) };
  }
}

function checkWorkers(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw invalidArg('workers', n, 'an integer from 1 to 256');
}
