/**
 * The supervisor: owns the group's sockets for the life of the service, runs one
 * worker process per socket, steers, resizes and reloads without loss, and stops
 * gracefully. It holds the policy; the pieces do the work:
 *   config.ts          options validated, then resolved against the app's defaults
 *   sockets.ts         opening the group's sockets
 *   group.ts           growing and shrinking the group, adopted sockets, buffers during a change
 *   slot.ts            a socket, its process(es), promotion and restarts
 *   worker-process.ts  one child process
 *   backoff.ts         crash backoff
 *   accounting.ts      counters, retired totals, the report
 *   app-host.ts        the app's supervisor side, its hooks' errors isolated
 *   monitor.ts         periodic health checks (imbalance, stalls, strangers in the group)
 *   types.ts           its events, reports, and what a hand-over passes
 */
import { EventEmitter } from 'node:events';
import { ShardgramError } from '../errors.js';
import type { Counters } from '../counters.js';
import { checkGroupable, type AdoptedSocket } from '../ffi/adopt.js';
import { closeFd, socketMemInfo, type OpenedSocket } from '../ffi/socket.js';
import { CHANGE_RCVBUF, checkAdoption, checkKeepsHeld, growGroup, raiseBuffers, shrinkGroup } from './group.js';
import { resolveApp } from '../apps/resolve.js';
import type { ToWorker, WorkerConfig } from '../ipc.js';
import { toPrometheus, type StatsReport } from '../stats.js';
import { Steering, type PolicySpec } from '../steering/steering.js';
import { Accounting } from './accounting.js';
import { AppHost } from './app-host.js';
import { DEFAULT_STALL_TIMEOUT_MS, checkWorkers, resolveConfig, validateOptions, type EffectiveConfig, type SupervisorOptions } from './config.js';
import { Monitor } from './monitor.js';
import { Slot } from './slot.js';
import { openGroupSocket } from './sockets.js';
import { WorkerProcess, type ExitInfo, type WorkerHandle } from './worker-process.js';
import type { Adoption, HandOverOffer, StopReport, SupervisorEvents, SupervisorInternals } from './types.js';

export type { SupervisorOptions, EffectiveConfig } from './config.js';
export type { Adoption, HandOverOffer, StopReport, SupervisorEvents, SupervisorInternals } from './types.js';
export { CHANGE_RCVBUF } from './group.js';

export class Supervisor extends EventEmitter<SupervisorEvents> {
  /** The options as given (validated, frozen, never changed). */
  readonly options: Readonly<SupervisorOptions>;
  /** Warnings gathered while opening the sockets (e.g. a capped SO_RCVBUF). */
  readonly warnings: string[] = [];
  private readonly log: (line: string) => void;
  private readonly app: AppHost;
  private readonly accounting = new Accounting();
  private readonly monitor: Monitor;
  private cfg: EffectiveConfig | undefined;
  private slots: Slot[] = [];
  private steering: Steering | undefined;
  private started = false;
  private startedAt = 0;
  private stopping: Promise<StopReport> | undefined;
  private stopped: Promise<StopReport> | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  /**
   * True while another process holds the group's sockets too (the old supervisor
   * during a hand-over, a service manager's fd store): a stop then lets go of the
   * sockets without reading out their queues, which the other holder goes on serving.
   */
  sharedSockets = false;
  private handingOver = false;
  /** A hand-over has completed: a new supervisor owns the group; this one only exits. */
  handedOver = false;

  constructor(opts: SupervisorOptions, private readonly internals: SupervisorInternals = {}) {
    super();
    this.options = validateOptions(opts);
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.app = new AppHost(resolveApp(opts.app), opts.app, (line) => this.log(line));
    this.monitor = new Monitor(
      { slots: () => this.slots, policy: () => this.policy, address: () => this.address, port: () => this.port },
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
    return this.slots[0]?.sock.port ?? this.options.port;
  }

  get address(): string {
    return this.slots[0]?.sock.address ?? this.options.address ?? '127.0.0.1';
  }

  /** Live workers (sockets) in the group now. */
  get workers(): number {
    return this.slots.length;
  }

  /** The steering policy in force. */
  get policy(): PolicySpec {
    return this.steering?.policy ?? this.cfg?.policy ?? this.options.policy ?? { name: 'hash' };
  }

  /** Sends an app message to every running worker. */
  broadcast(message: unknown): void {
    for (const s of this.slots) if (s.current instanceof WorkerProcess) s.current.send({ t: 'app', m: message } satisfies ToWorker);
  }

  /** GET /metrics: the service's figures and the app's own. */
  metrics(): string {
    return toPrometheus(this.stats()) + this.app.metrics();
  }

  /**
   * Opens the sockets and starts every worker; resolves when all are receiving.
   * With `adopt`, called once the app has loaded, the group is made of the sockets
   * it gives (a service manager's, or a running supervisor's in a hand-over), one
   * worker each, and nothing is opened; `resize()` then sets the size.
   */
  start(adopt?: () => Promise<Adoption>): Promise<void> {
    if (this.started || this.stopping) return Promise.reject(new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'start() may be called once, before stop()'));
    this.started = true;
    return this.exclusive(() => this.doStart(adopt));
  }

  private async doStart(adopt?: () => Promise<Adoption>): Promise<void> {
    const defaults = await this.app.load(() => ({
      workers: this.options.workers ?? this.slots.length,
      options: this.options.appOptions ?? {},
      log: (line) => this.log(`app: ${line}`),
      broadcast: (m) => this.broadcast(m),
    }));
    let adoption: Adoption | undefined;
    try {
      adoption = adopt ? await adopt() : undefined;
    } catch (err) {
      await this.app.stop();
      throw err;
    }
    const opts = adoption
      ? {
          ...this.options,
          workers: this.options.workers ?? adoption.workers ?? adoption.sockets.length,
          ...(this.options.policy ?? adoption.policy ? { policy: this.options.policy ?? adoption.policy } : {}),
          ...(this.options.address === undefined && adoption.sockets[0] ? { address: adoption.sockets[0].address } : {}),
        }
      : this.options;
    const cfg = (this.cfg = resolveConfig(opts, defaults));
    if (this.stopping) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'stopped before it had started');
    try {
      if (adoption) {
        this.adoptSlots(adoption, cfg);
      } else {
        let port = cfg.port;
        for (let i = 0; i < cfg.workers; i++) {
          const slot = this.openSlot(i, port);
          port = slot.sock.port;
          if (i === 0) for (const w of slot.sock.warnings) { this.warnings.push(w); this.log(`warning: ${w}`); }
        }
      }
      // Attach after bind: a program attached before bind gives the socket a group of its own.
      this.steering = new Steering(cfg.policy);
      this.steering.apply(this.slots[0]!.sock.fd, this.slots.length);
    } catch (err) {
      for (const s of this.slots) closeFd(s.sock.fd);
      this.slots = [];
      await this.app.stop();
      throw err;
    }
    this.startedAt = Date.now();
    try {
      await Promise.all(this.slots.map((s) => s.start()));
    } catch (err) {
      // stop() waits for `busy`, which is this very start: run the stop itself here.
      await this.stopOnce();
      throw err;
    }
    this.monitor.start();
  }

  private adoptSlots(a: Adoption, cfg: EffectiveConfig): void {
    checkAdoption(a.sockets, cfg);
    checkKeepsHeld(a.heldElsewhere?.filter(Boolean).length ?? 0, cfg.workers);
    a.sockets.forEach((sock, i) => this.addSlot(i, sock, a.dropsBefore?.[i] ?? socketMemInfo(sock.fd).drops, a.heldElsewhere?.[i] ?? false));
  }

  private openSlot(index: number, port: number): Slot {
    const sock = openGroupSocket(this.config, index, port, new Set(this.slots.map((s) => s.sock.inode)));
    return this.addSlot(index, sock, 0, false);
  }

  private addSlot(index: number, sock: OpenedSocket, dropsBefore: number, heldElsewhere: boolean): Slot {
    const slot = new Slot(index, sock, {
      launch: (s) => this.launch(s),
      log: this.log,
      drainTimeoutMs: this.config.drainTimeoutMs,
      stopping: () => this.stopping !== undefined || this.handingOver,
      onReady: (s, proc, restart) => this.emit('worker-ready', { index: s.index, pid: proc.pid, restart }),
      onExit: (s, proc, e: ExitInfo) => this.emit('worker-exit', { index: s.index, pid: proc.pid, code: e.code, signal: e.signal, expected: proc.expected }),
    }, { dropsBefore, heldElsewhere });
    this.slots.push(slot);
    return slot;
  }

  private launch(slot: Slot): WorkerHandle {
    const c = this.config;
    const config: WorkerConfig = {
      supervisorPid: process.pid, index: slot.index, workers: this.slots.length, engine: c.engine, family: slot.sock.family, app: this.app.url,
      appOptions: { ...c.appOptions }, snapshotIntervalMs: c.snapshotIntervalMs, maxDatagram: c.maxDatagram, batch: c.batch,
    };
    if (this.internals.launch) return this.internals.launch(slot, config);
    return new WorkerProcess({ config, socketFd: slot.sock.fd, log: this.log, onAppMessage: (m) => this.app.message(slot.index, m) });
  }

  /** Runs control operations (start, resize, reload) one at a time. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.busy.then(op, op);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private running(): Steering {
    if (this.stopping || !this.steering) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', 'the service is not running');
    return this.steering;
  }

  /**
   * Grows or shrinks the group to `count` workers, under load, losing nothing.
   * Growing opens sockets at the end of the group, steered around until their
   * workers read. Shrinking retires the last sockets: new datagrams are steered
   * away from them first, then each is drained by its worker and closed last-first,
   * so no other socket's index moves.
   */
  resize(count: number): Promise<{ from: number; to: number }> {
    checkWorkers(count);
    return this.exclusive(async () => {
      const steering = this.running();
      const restore = this.raiseBuffers();
      try {
        return await this.doResize(steering, count);
      } finally {
        restore();
      }
    });
  }

  private async doResize(steering: Steering, count: number): Promise<{ from: number; to: number }> {
    const from = this.slots.length;
    if (count > from) checkGroupable([this.slots[0]!.sock], count, steering.policy.name);
    if (count > from) await growGroup(this.slots, steering, count, (i) => this.openSlot(i, this.port));
    else if (count < from) {
      checkKeepsHeld(this.slots.filter((s) => s.heldElsewhere).length, count);
      await shrinkGroup(this.slots, steering, count, (s) => this.accounting.retire(s), (s) => this.emit('socket-closing', { index: s.index, inode: s.sock.inode }));
    }
    this.monitor.reset();
    if (count !== from) {
      this.log(`resized from ${from} to ${count} workers`);
      this.emit('resized', { from, to: count });
    }
    return { from, to: count };
  }

  /**
   * Rolling reload: one slot at a time, a new worker process (which loads the app's
   * code afresh) starts on the same socket; once it is ready the old one drains and
   * exits. The socket is never without a reader and never closed.
   */
  reload(): Promise<{ workers: number }> {
    return this.exclusive(async () => {
      this.running();
      const restore = this.raiseBuffers();
      try {
        for (const slot of this.slots) {
          const old = slot.current;
          await slot.start();
          if (old && old !== slot.current) await old.exited;
        }
      } finally {
        restore();
      }
      this.log(`reloaded ${this.slots.length} workers`);
      this.emit('reloaded', { workers: this.slots.length });
      return { workers: this.slots.length };
    });
  }

  /**
   * Upgrade hand-over, old side. `exchange` is given the group's sockets and state
   * and resolves true once the new supervisor's workers read them (or false, or
   * throws, if it gave up). On true, this service's workers stop at once (no drain:
   * the sockets stay open in the new one), its own copies of the sockets are let go
   * without touching their queues, and the counts it had are returned, for the new
   * one to carry on. On false, it serves on as before, its steering back in place.
   */
  handOver(exchange: (offer: HandOverOffer) => Promise<boolean>): Promise<Counters | undefined> {
    return this.exclusive(async () => {
      const steering = this.running();
      const offer: HandOverOffer = {
        fds: this.slots.map((s) => s.sock.fd), address: this.address, port: this.port, family: this.slots[0]!.sock.family,
        workers: this.slots.length, policy: this.policy, app: this.options.app, pid: process.pid,
        dropsBefore: this.slots.map((s) => s.dropsBefore),
      };
      let go = false;
      try {
        go = await exchange(offer);
      } catch (err) {
        this.log(`takeover failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!go) {
        // The new side may have attached its own program to the group.
        steering.reset(this.slots[0]!.sock.fd, this.slots.length);
        this.log('takeover abandoned: this service goes on serving');
        return undefined;
      }
      this.handingOver = true;
      this.monitor.stop();
      await Promise.all(this.slots.map((s) => s.retireAll(0)));
      const report = this.stats();
      for (const s of this.slots) s.release();
      this.handedOver = true;
      await this.app.stop();
      const done: StopReport = { leftBytes: this.slots.map(() => 0), droppedAtClose: 0 };
      this.stopped = this.stopping = Promise.resolve(done);
      this.log(`handed over: the ${report.total.datagrams} datagrams counted here carry on in the new service's totals`);
      const { queueBytes: _q, ...counters } = report.total;
      // The live sockets' drops go on in the new service's slots (counted from the same baselines).
      counters.kernelDrops -= report.workers.reduce((a, w) => a + w.kernelDrops, 0);
      return counters;
    });
  }

  /** Raises every socket's receive buffer for the length of a change; returns the undo (see group.ts). */
  private raiseBuffers(bytes = this.options.changeRcvbuf ?? CHANGE_RCVBUF): () => void {
    return raiseBuffers(this.slots, bytes);
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
        family: this.slots[0]?.sock.family ?? c?.family ?? (this.address.includes(':') ? 'udp6' : 'udp4'),
        workers: this.slots.length, startedAt: new Date(this.startedAt).toISOString(), uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      },
      this.slots,
    );
    report.policy = this.policy;
    report.imbalance = this.monitor.imbalanceState;
    report.intruders = this.monitor.intruders;
    return report;
  }

  /** The group's open sockets, by slot. */
  sockets(): { index: number; fd: number; inode: number }[] {
    return this.slots.filter((s) => !s.closed).map((s) => ({ index: s.index, fd: s.sock.fd, inode: s.sock.inode }));
  }

  /** Pids of the current worker processes, by slot (0 while a slot is restarting). */
  workerPids(): number[] {
    return this.slots.map((s) => s.current?.pid ?? 0);
  }

  /**
   * Graceful stop: every worker drains its socket's queue and finishes, then the
   * sockets are closed. Safe to call more than once.
   */
  stop(): Promise<StopReport> {
    this.stopping ??= this.busy.then(() => this.stopOnce());
    return this.stopping;
  }

  private stopOnce(): Promise<StopReport> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<StopReport> {
    this.monitor.stop();
    await Promise.all(this.slots.map((s) => s.retireAll()));
    const leftBytes = this.slots.map((s) => {
      if (s.closed) return 0;
      if (this.sharedSockets || s.heldElsewhere) {
        // The other holder serves what is queued: nothing is dropped here.
        s.release();
        return 0;
      }
      s.close();
      return s.lastMem.queueBytes;
    });
    await this.app.stop();
    return { leftBytes, droppedAtClose: this.slots.reduce((a, s) => a + s.droppedAtClose, 0) };
  }
}
