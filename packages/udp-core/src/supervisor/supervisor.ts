/**
 * The supervisor: owns the group's sockets for the life of the service, runs one
 * worker process per socket, and holds the policy: the order of start, resize,
 * reload, hand-over and stop, one at a time, and the events and log lines they give.
 * The work is done by the pieces beside it (mapped in docs/architecture.md): the
 * group and its slots, worker processes, accounting, the app host and the monitor.
 */
import { EventEmitter } from 'node:events';
import { resolveApp } from '../app/resolve.js';
import type { ToWorker, WorkerConfig } from '../worker/ipc.js';
import type { PromFamily } from '../stats/prom-text.js';
import { statsFamilies, toPrometheus, type StatsReport } from '../stats/report.js';
import type { PolicySpec } from '../steering/steering.js';
import { escapeText } from '../app/escape-text.js';
import { Accounting } from './accounting.js';
import { AppHost } from '../app/app-host.js';
import {
  DEFAULT_STALL_TIMEOUT_MS,
  checkWorkers,
  resolveConfig,
  validateOptions,
  withAdoption,
  type EffectiveConfig,
  type SupervisorOptions,
} from './config.js';
import { CHANGE_RCVBUF } from './buffers.js';
import { Group } from './group.js';
import { HANDOVER_PATIENCE_MS, handOverGroup, type HandOverResult } from './handover.js';
import { kControl, type SupervisorControl } from './internal.js';
import { Lifecycle, refused, type State } from './lifecycle.js';
import { Monitor } from './monitor.js';
import type { Slot } from './slot.js';
import { takeOverGroup, type TakeoverResult } from './takeover.js';
import { WorkerProcess, type WorkerHandle } from './worker-process.js';
import type { Adoption, HandOverPeer, Launcher, SharedWith, StopReport, SupervisorEvents, TakeoverSource } from './types.js';
import { DEFAULTS } from '../defaults.js';
import { RCVBUF_DOUBLING } from '../ffi/kernel.js';

export type { SupervisorOptions, EffectiveConfig } from './config.js';
export type { StopReport, SupervisorEvents } from './types.js';

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
  /** Where the service is in its life: the one place that says so (lifecycle.ts). */
  private readonly life = new Lifecycle();
  private cfg: EffectiveConfig | undefined;
  private startedAt = 0;
  /** A service manager's fd store holds the sockets too. */
  private heldByManager = false;
  private launcher: Launcher | undefined;
  private stopped: Promise<StopReport> | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  /** Told of every worker snapshot that arrives (the new side of a hand-over waits on them). */
  private readonly snapshotListeners = new Set<() => void>();

  constructor(opts: SupervisorOptions) {
    super();
    this.options = validateOptions(opts);
    // Every line it logs (its own, its workers' output and logs, its app's) may carry network text: escaped once here.
    const sink = opts.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.log = (line) => void sink(escapeText(line, { lines: true }));
    this.app = new AppHost(resolveApp(opts.app), opts.app, (line) => this.log(line));
    this.group = new Group({
      config: () => this.config,
      sharedWith: () => this.sharedWith,
      slot: {
        launch: (s) => this.launch(s),
        log: this.log,
        drainTimeoutMs: this.options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
        // Restarts only while the service is its own and serving (not while handing over or stopping).
        stopping: () => !this.life.serving && !this.life.is('starting', 'taking-over'),
        onReady: (s, proc, restart) => this.emit('worker-ready', { index: s.index, pid: proc.pid, restart }),
        onExit: (s, proc, e) => this.emit('worker-exit', { index: s.index, pid: proc.pid, code: e.code, signal: e.signal, expected: proc.expected }),
        raiseBuffer: (s) => this.group.buffers.raise([s.raisable()], this.changeRcvbuf),
      },
    });
    this.monitor = new Monitor({ slots: () => this.group.slots, policy: () => this.policy, address: () => this.address, port: () => this.port }, this.log, {
      stallTimeoutMs: this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      ...(this.options.imbalance ? { imbalance: this.options.imbalance } : {}),
    });
  }

  /** The effective configuration: the options, then the app's defaults. Known once start() has loaded the app. */
  get config(): EffectiveConfig {
    if (!this.cfg) throw refused(this.life.state, 'config (known once start() has loaded the app)');
    return this.cfg;
  }

  /** The bound port (the kernel's choice when 0 was asked). */
  get port(): number {
    return this.group.first?.port ?? this.options.port;
  }

  get address(): string {
    return this.group.first?.address ?? this.options.address ?? DEFAULTS.address;
  }

  /** Live workers (sockets) in the group now. */
  get workers(): number {
    return this.group.size;
  }

  /** The steering policy in force. */
  get policy(): PolicySpec {
    return this.group.steering?.policy ?? this.cfg?.policy ?? this.options.policy ?? { name: 'hash' };
  }

  /** Where the service is in its life (see lifecycle.ts). */
  get state(): State {
    return this.life.state;
  }

  /** Who else holds the group's sockets now: the other side of a hand-over, or a service manager's fd store. */
  private get sharedWith(): SharedWith {
    const st = this.life.state;
    if (
      (st.name === 'taking-over' && !st.sole) ||
      (st.name === 'stopping' && st.guestOf !== undefined) ||
      st.name === 'handing-over' ||
      st.name === 'handed-over'
    )
      return 'hand-over';
    return this.heldByManager ? 'service-manager' : undefined;
  }

  private get changeRcvbuf(): number {
    return this.options.changeRcvbuf ?? CHANGE_RCVBUF;
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

  /** Opens the sockets and starts every worker; resolves when all are receiving. */
  start(): Promise<void> {
    return this.startWith('start()', { name: 'starting' });
  }

  /**
   * Starts in state `as`; with `adopt`, called once the app has loaded, the group is
   * made of the sockets it gives (a service manager's, or a running supervisor's in a
   * hand-over), one worker each, and nothing is opened; `resize()` then sets the size.
   */
  private startWith(call: string, as: State, adopt?: () => Promise<Adoption>): Promise<void> {
    try {
      this.life.move(as, call);
    } catch (err) {
      return Promise.reject(err);
    }
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
      for (const w of this.group.fill(cfg.policy, adoption)) {
        this.warnings.push(w);
        this.log(`warning: ${w}`);
      }
    } catch (err) {
      await this.app.stop();
      this.life.move({ name: 'stopped' }, 'start()');
      this.stopped = Promise.resolve({ leftBytes: [], droppedAtClose: 0 });
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
    // A plain start is running now; a takeover's new side stays "taking over" until the old side says done.
    if (this.life.is('starting')) this.life.move({ name: 'running' }, 'start()');
    this.monitor.start();
  }

  private launch(slot: Slot): WorkerHandle {
    const c = this.config;
    const config: WorkerConfig = {
      supervisorPid: process.pid,
      index: slot.index,
      workers: this.group.size,
      engine: c.engine,
      family: slot.sock.family,
      app: this.app.url,
      appOptions: this.app.workerOptions(c.appOptions),
      snapshotIntervalMs: c.snapshotIntervalMs,
      maxDatagram: c.maxDatagram,
      batch: c.batch,
      maxReadDelayUs: c.maxReadDelayUs,
      ownRcvbuf: RCVBUF_DOUBLING * slot.ownRcvbuf, // SO_MEMINFO counts the doubled size
    };
    if (this.launcher) return this.launcher(slot, config);
    return new WorkerProcess({
      config,
      socketFd: slot.sock.fd,
      log: this.log,
      onAppMessage: (m) => this.app.message(slot.index, m),
      onSnapshot: () => {
        for (const l of this.snapshotListeners) l();
      },
    });
  }

  /** Runs control operations (start, resize, reload, hand-over) one at a time. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.busy.then(op, op);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /** A change of the running service, one at a time, with the buffers raised for its length (see buffers.ts). */
  private change<T>(change: 'resize' | 'reload', op: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      this.life.move({ name: 'changing', change }, `${change}()`);
      const restore = this.group.raiseBuffers(this.changeRcvbuf);
      try {
        return await op();
      } finally {
        void restore();
        if (this.life.is('changing')) this.life.move({ name: 'running' }, `${change}()`);
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
    return this.change('resize', async () => {
      const from = this.group.size;
      if (count > from) await this.group.grow(count);
      else if (count < from) {
        await this.group.shrink(
          count,
          (s) => this.emit('socket-closing', { index: s.index, inode: s.sock.inode }),
          (s) => this.accounting.retire(s),
        );
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
    return this.change('reload', async () => {
      await this.group.reload();
      this.log(`reloaded ${this.group.size} workers`);
      this.emit('reloaded', { workers: this.group.size });
      return { workers: this.group.size };
    });
  }

  /** The control plane (internal.ts): for `shardgram serve`, the control socket and tests, not for apps. */
  get [kControl](): SupervisorControl {
    const sup = this;
    return {
      get state() {
        return sup.life.state;
      },
      get sharedWith() {
        return sup.sharedWith;
      },
      get changeRcvbuf() {
        return sup.changeRcvbuf;
      },
      useLauncher: (launch) => {
        this.life.require('useLauncher()', 'new');
        this.launcher = launch;
      },
      startAdopted: (adopt) => this.startWith('start()', { name: 'starting' }, adopt),
      shareWithServiceManager: () => {
        this.heldByManager = true;
      },
      brace: (holdMs) => {
        this.life.require('takeover-prepare', 'running', 'changing');
        this.group.brace(this.changeRcvbuf, holdMs);
      },
      handOver: (peer, patienceMs) => this.handOver(peer, patienceMs ?? HANDOVER_PATIENCE_MS),
      takeOver: (source, patienceMs) => this.takeOver(source, patienceMs ?? HANDOVER_PATIENCE_MS),
      inheritCounts: (counters, pid) => this.accounting.inherit(counters, pid),
    };
  }

  /** Upgrade hand-over, old side (handover.ts): this service owns the group until it says done. */
  private handOver(peer: HandOverPeer, patienceMs: number): Promise<HandOverResult> {
    // Refused at once (not queued) when the service is not serving, e.g. a second takeover during one;
    // one that comes during a resize or a reload waits for it.
    try {
      this.life.require('takeover', 'running', 'changing');
    } catch (err) {
      return Promise.reject(err);
    }
    // No raise of our own: the new side raises the buffers for the hand-over and puts them back after.
    return this.exclusive(async () => {
      this.life.move({ name: 'handing-over', to: peer.pid }, 'takeover');
      this.monitor.stop();
      const r = await handOverGroup(
        { group: this.group, app: this.options.app, policy: this.policy, log: this.log, stats: () => this.stats() },
        peer,
        patienceMs,
      );
      if (r.outcome === 'kept') {
        this.life.move({ name: 'running' }, 'takeover');
        this.monitor.start();
        return r;
      }
      this.life.move({ name: 'handed-over', to: peer.pid }, 'takeover');
      await this.app.stop();
      this.stopped = Promise.resolve({ leftBytes: this.group.slots.map(() => 0), droppedAtClose: 0 });
      return r;
    });
  }

  /** Upgrade hand-over, new side (takeover.ts): starts on the old service's sockets as its guest until it says done. */
  private takeOver(source: TakeoverSource, patienceMs: number): Promise<TakeoverResult> {
    const from = source.offer.pid;
    const life = this.life;
    return takeOverGroup(
      {
        log: this.log,
        changeRcvbuf: this.changeRcvbuf,
        buffers: this.group.buffers,
        start: (adopt) => this.startWith('takeover', { name: 'taking-over', from, sole: false }, adopt),
        becomeSoleOwner: () => {
          if (this.life.is('taking-over')) this.life.move({ name: 'taking-over', from, sole: true }, 'takeover');
        },
        get sole() {
          const s = life.state;
          return s.name === 'taking-over' && s.sole;
        },
        stop: () => this.stop(),
        coldWorkers: () => this.group.slots.filter((s) => s.counters().datagrams === 0).length,
        onSnapshot: (listener) => {
          this.snapshotListeners.add(listener);
          return () => void this.snapshotListeners.delete(listener);
        },
        inherit: (counters, pid) => this.accounting.inherit(counters, pid),
      },
      source,
      patienceMs,
    ).then((r) => {
      if (this.life.is('taking-over')) this.life.move({ name: 'running' }, 'takeover');
      return r;
    });
  }

  /** The per-worker and group statistics, cumulative since the service started. */
  stats(): StatsReport {
    const c = this.cfg;
    const report = this.accounting.report(
      {
        app: this.options.app,
        engine: c?.engine ?? this.options.engine ?? 'dgram',
        address: this.address,
        port: this.port,
        family: this.group.first?.family ?? c?.family ?? (this.address.includes(':') ? 'udp6' : 'udp4'),
        workers: this.group.size,
        startedAt: new Date(this.startedAt).toISOString(),
        uptimeSeconds: (Date.now() - this.startedAt) / 1000,
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
   * sockets are closed (or, where shared, let go with their queues). Safe to call more
   * than once; waits for a change under way (a hand-over that completes leaves nothing to stop).
   */
  stop(): Promise<StopReport> {
    if (this.stopped !== undefined) return this.stopped;
    if (this.life.is('new')) {
      this.life.move({ name: 'stopped' }, 'stop()');
      return (this.stopped = Promise.resolve({ leftBytes: [], droppedAtClose: 0 }));
    }
    return this.busy.then(() => this.stopOnce());
  }

  private stopOnce(): Promise<StopReport> {
    this.stopped ??= (async () => {
      const st = this.life.state;
      // A new side that never owned the group leaves it to the old service, unread.
      this.life.move(st.name === 'taking-over' && !st.sole ? { name: 'stopping', guestOf: st.from } : { name: 'stopping' }, 'stop()');
      this.monitor.stop();
      const leftBytes = await this.group.stop();
      await this.app.stop();
      this.life.move({ name: 'stopped' }, 'stop()');
      return { leftBytes, droppedAtClose: this.group.slots.reduce((a, s) => a + s.droppedAtClose, 0) };
    })();
    return this.stopped;
  }
}
