/**
 * The supervisor: owns the group's sockets for the life of the service, runs one
 * worker process per socket, and holds the policy: the order of start, resize,
 * reload, hand-over and stop, one at a time, and the events and log lines they give.
 * The work is done by the pieces beside it (mapped in docs/architecture.md): the
 * group and its slots, worker processes, accounting, the app host and the monitor.
 */
import { EventEmitter } from 'node:events';
import { ShardgramError } from '../errors.js';
import type { Counters } from '../counters.js';
import { resolveApp } from '../apps/resolve.js';
import type { ToWorker, WorkerConfig } from '../ipc.js';
import type { PromFamily } from '../prom-text.js';
import { statsFamilies, toPrometheus, type StatsReport } from '../stats.js';
import type { PolicySpec } from '../steering/steering.js';
import { Accounting } from './accounting.js';
import { AppHost } from './app-host.js';
import { DEFAULT_STALL_TIMEOUT_MS, checkWorkers, resolveConfig, validateOptions, withAdoption, type EffectiveConfig, type SupervisorOptions } from './config.js';
import { CHANGE_RCVBUF, raiseBuffers } from './buffers.js';
import { Group } from './group.js';
import { handOverGroup } from './handover.js';
import { Monitor } from './monitor.js';
import type { Slot } from './slot.js';
import { WorkerProcess, type WorkerHandle } from './worker-process.js';
import type { Adoption, HandOverOffer, SharedWith, StopReport, SupervisorEvents, SupervisorInternals } from './types.js';

export type { SupervisorOptions, EffectiveConfig } from './config.js';
export type { Adoption, HandOverOffer, SharedWith, StopReport, SupervisorEvents, SupervisorInternals } from './types.js';
export { CHANGE_RCVBUF } from './buffers.js';

/** Where the service is in its life; a stop is its own promise (see stop()). */
type Phase = 'new' | 'started' | 'handing-over' | 'handed-over';

export class Supervisor extends EventEmitter<SupervisorEvents> {
  /** The options as given (validated, frozen, never changed). */
  readonly options: Readonly<SupervisorOptions>;
  /** Warnings gathered while opening the sockets (e.g. a capped SO_RCVBUF). */
  readonly warnings: string[] = [];
  private readonly log: (line: string) => void;
  private readonly app: AppHost;
  private readonly accounting = new Accounting();
  private readonly monitor: Monitor;
  private readonly group: Group;
  private cfg: EffectiveConfig | undefined;
  private phase: Phase = 'new';
  private startedAt = 0;
  private stopping: Promise<StopReport> | undefined;
  private stopped: Promise<StopReport> | undefined;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(opts: SupervisorOptions, private readonly internals: SupervisorInternals = {}) {
    super();
    this.options = validateOptions(opts);
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.app = new AppHost(resolveApp(opts.app), opts.app, (line) => this.log(line));
    this.group = new Group({
      config: () => this.config,
      slot: {
        launch: (s) => this.launch(s),
        log: this.log,
        drainTimeoutMs: this.options.drainTimeoutMs ?? 10_000,
        stopping: () => this.stopping !== undefined || this.phase !== 'started',
        onReady: (s, proc, restart) => this.emit('worker-ready', { index: s.index, pid: proc.pid, restart }),
        onExit: (s, proc, e) => this.emit('worker-exit', { index: s.index, pid: proc.pid, code: e.code, signal: e.signal, expected: proc.expected }),
        raiseBuffer: (s) => raiseBuffers([s.raisable()], this.changeRcvbuf),
      },
    });
    this.monitor = new Monitor(
      { slots: () => this.group.slots, policy: () => this.policy, address: () => this.address, port: () => this.port },
      this.log,
      { stallTimeoutMs: this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, ...(opts.imbalance ? { imbalance: opts.imbalance } : {}) },
    );
  }

  /** The effective configuration: the options, then the app's defaults. Known once start() has loaded the app. */
  get config(): EffectiveConfig {
    if (!this.cfg) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'the configuration is known once start() has loaded the app');
    return this.cfg;
  }

  /** The bound port (the kernel's choice when 0 was asked). */
  get port(): number {
    return this.group.first?.port ?? this.options.port;
  }

  get address(): string {
    return this.group.first?.address ?? this.options.address ?? '127.0.0.1';
  }

  /** Live workers (sockets) in the group now. */
  get workers(): number {
    return this.group.size;
  }

  /** The steering policy in force. */
  get policy(): PolicySpec {
    return this.group.steering?.policy ?? this.cfg?.policy ?? this.options.policy ?? { name: 'hash' };
  }

  /**
   * Who else holds the group's sockets: a service manager (its fd store), or the other
   * supervisor of a hand-over. A stop then lets go of them with their queues instead of
   * reading them out and closing them.
   */
  get sharedWith(): SharedWith {
    return this.group.sharedWith;
  }

  set sharedWith(other: SharedWith) {
    this.group.sharedWith = other;
  }

  /** The receive buffer every socket gets while the group changes (options.changeRcvbuf, else 8 MiB; 0: none). */
  get changeRcvbuf(): number {
    return this.options.changeRcvbuf ?? CHANGE_RCVBUF;
  }

  /** A hand-over has completed: a new supervisor owns the group; this one only exits. */
  get handedOver(): boolean {
    return this.phase === 'handed-over';
  }

  /** Sends an app message to every running worker. */
  broadcast(message: unknown): void {
    for (const s of this.group.slots) if (s.current instanceof WorkerProcess) s.current.send({ t: 'app', m: message } satisfies ToWorker);
  }

  /** GET /metrics: the service's figures and the app's own. */
  metrics(): string {
    return toPrometheus(this.stats()) + this.app.metrics();
  }

  /** GET /metrics as families (the protobuf format); undefined when the app gives its figures only as text. */
  metricFamilies(): PromFamily[] | undefined {
    const app = this.app.metricFamilies();
    return app && [...statsFamilies(this.stats()), ...app];
  }

  /**
   * Opens the sockets and starts every worker; resolves when all are receiving.
   * With `adopt`, called once the app has loaded, the group is made of the sockets
   * it gives (a service manager's, or a running supervisor's in a hand-over), one
   * worker each, and nothing is opened; `resize()` then sets the size.
   */
  start(adopt?: () => Promise<Adoption>): Promise<void> {
    if (this.phase !== 'new' || this.stopping) return Promise.reject(new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'start() may be called once, before stop()'));
    this.phase = 'started';
    return this.exclusive(() => this.doStart(adopt));
  }

  private async doStart(adopt?: () => Promise<Adoption>): Promise<void> {
    const defaults = await this.app.load(() => ({
      workers: this.options.workers ?? this.group.size,
      options: this.options.appOptions ?? {},
      log: (line) => this.log(`app: ${line}`),
      broadcast: (m) => this.broadcast(m),
    }));
    try {
      const adoption = adopt ? await adopt() : undefined;
      const cfg = (this.cfg = resolveConfig(adoption ? withAdoption(this.options, adoption) : this.options, defaults));
      if (this.stopping) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'stopped before it had started');
      for (const w of this.group.fill(cfg.policy, adoption)) {
        this.warnings.push(w);
        this.log(`warning: ${w}`);
      }
    } catch (err) {
      await this.app.stop();
      throw err;
    }
    this.startedAt = Date.now();
    try {
      await Promise.all(this.group.slots.map((s) => s.start()));
    } catch (err) {
      // stop() waits for `busy`, which is this very start: run the stop itself here.
      await this.stopOnce();
      throw err;
    }
    this.monitor.start();
  }

  private launch(slot: Slot): WorkerHandle {
    const c = this.config;
    const config: WorkerConfig = {
      supervisorPid: process.pid, index: slot.index, workers: this.group.size, engine: c.engine, family: slot.sock.family, app: this.app.url,
      appOptions: { ...c.appOptions }, snapshotIntervalMs: c.snapshotIntervalMs, maxDatagram: c.maxDatagram, batch: c.batch,
      maxReadDelayUs: c.maxReadDelayUs, ownRcvbuf: 2 * slot.ownRcvbuf, // SO_RCVBUF reads back, and SO_MEMINFO counts, twice what was asked
    };
    if (this.internals.launch) return this.internals.launch(slot, config);
    return new WorkerProcess({ config, socketFd: slot.sock.fd, log: this.log, onAppMessage: (m) => this.app.message(slot.index, m) });
  }

  /** Runs control operations (start, resize, reload, hand-over) one at a time. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.busy.then(op, op);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private running(): void {
    if (this.stopping || !this.group.steering || this.phase !== 'started') throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'the service is not running');
  }

  /** A change of the running service, one at a time, with the buffers raised for its length (see buffers.ts). */
  private change<T>(op: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.running();
      const restore = this.group.raiseBuffers(this.changeRcvbuf);
      try {
        return await op();
      } finally {
        void restore();
      }
    });
  }

  /**
   * Grows or shrinks the group to `count` workers, under load, losing nothing: new
   * sockets get no datagram before their workers read, leaving ones are steered
   * around, drained, then closed last-first (see group.ts).
   */
  resize(count: number): Promise<{ from: number; to: number }> {
    checkWorkers(count);
    return this.change(async () => {
      const from = this.group.size;
      if (count > from) await this.group.grow(count);
      else if (count < from) {
        await this.group.shrink(count, (s) => this.emit('socket-closing', { index: s.index, inode: s.sock.inode }), (s) => this.accounting.retire(s));
      }
      this.monitor.reset();
      if (count !== from) {
        this.log(`resized from ${from} to ${count} workers`);
        this.emit('resized', { from, to: count });
      }
      return { from, to: count };
    });
  }

  /** Rolling reload: new worker processes (the app's code loaded afresh) on the same sockets, one slot at a time. */
  reload(): Promise<{ workers: number }> {
    return this.change(async () => {
      await this.group.reload();
      this.log(`reloaded ${this.group.size} workers`);
      this.emit('reloaded', { workers: this.group.size });
      return { workers: this.group.size };
    });
  }

  /**
   * A new service is starting up to take this one over: raises the buffers now, as
   * its start takes CPU from our workers before it can ask for the sockets. They go
   * back after `holdMs`, or when a hand-over is abandoned; one that completes leaves
   * them to the new side, which puts them back (see handover.ts).
   */
  brace(holdMs: number): void {
    this.running();
    this.group.brace(this.changeRcvbuf, holdMs);
  }

  /**
   * Upgrade hand-over, old side (see handover.ts): resolves with the counts this
   * service had once a new one reads its sockets (this one is then done: it only
   * exits), or undefined if the new one gave up (this one serves on).
   */
  handOver(exchange: (offer: HandOverOffer) => Promise<boolean>): Promise<Counters | undefined> {
    // No raise of our own: the new side raises the buffers for the hand-over and puts them back after.
    return this.exclusive(() => {
      this.running();
      return handOverGroup(
        {
          group: this.group, app: this.options.app, policy: this.policy, log: this.log, stats: () => this.stats(),
          letGo: () => {
            this.phase = 'handing-over';
            this.monitor.stop();
          },
          done: async () => {
            this.phase = 'handed-over';
            await this.app.stop();
            this.stopped = this.stopping = Promise.resolve({ leftBytes: this.group.slots.map(() => 0), droppedAtClose: 0 });
          },
        },
        exchange,
      );
    });
  }

  /** Carries on the counts of the service this one took over from (in `total` and `inherited`). */
  inheritCounts(counters: Partial<Counters>, pid: number): void {
    this.accounting.inherit(counters, pid);
  }

  /** The per-worker and group statistics, cumulative since the service started. */
  stats(): StatsReport {
    const c = this.cfg;
    const report = this.accounting.report(
      {
        app: this.options.app, engine: c?.engine ?? this.options.engine ?? 'dgram', address: this.address, port: this.port,
        family: this.group.first?.family ?? c?.family ?? (this.address.includes(':') ? 'udp6' : 'udp4'),
        workers: this.group.size, startedAt: new Date(this.startedAt).toISOString(), uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      },
      this.group.slots,
    );
    report.policy = this.policy;
    report.imbalance = this.monitor.imbalanceState;
    report.intruders = this.monitor.intruders;
    return report;
  }

  /** The group's open sockets, by slot. */
  sockets(): { index: number; fd: number; inode: number }[] {
    return this.group.openSockets();
  }

  /** Pids of the current worker processes, by slot (0 while a slot is restarting). */
  workerPids(): number[] {
    return this.group.slots.map((s) => s.current?.pid ?? 0);
  }

  /**
   * Graceful stop: every worker drains its socket's queue and finishes, then the
   * sockets are closed (or, where shared, let go with their queues). Safe to call more than once.
   */
  stop(): Promise<StopReport> {
    this.stopping ??= this.busy.then(() => this.stopOnce());
    return this.stopping;
  }

  private stopOnce(): Promise<StopReport> {
    this.stopped ??= (async () => {
      this.monitor.stop();
      const leftBytes = await this.group.stop();
      await this.app.stop();
      return { leftBytes, droppedAtClose: this.group.slots.reduce((a, s) => a + s.droppedAtClose, 0) };
    })();
    return this.stopped;
  }
}
