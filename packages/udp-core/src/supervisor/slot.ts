/**
 * A slot: one socket of the group, the worker process reading it, and for a moment
 * during a reload the process it replaces. The slot holds the policy for its
 * processes: a new one fills an empty slot at once, a reload's new one is promoted
 * when it is ready (the one it displaces drains and leaves), and one that exits
 * unasked is restarted on the same socket after a backoff.
 */
import { addInto, zeroCounters, type Counters } from '../stats/counters.js';
import { ShardgramError } from '../errors.js';
import { discardQueued } from '../ffi/discard.js';
import { closeFd, socketMemInfo, type OpenedSocket, type SocketMemInfo } from '../ffi/socket.js';
import type { WorkerState } from '../stats/report.js';
import { nextRestart } from './backoff.js';
import type { LetGo, RaisedSocket } from './buffers.js';
import type { StartGate } from './start-gate.js';
import type { ExitInfo, WorkerHandle } from './worker-process.js';
import { mergeTopSenders, type TopSendersReport } from '../stats/top-senders.js';
import { RCVBUF_DOUBLING } from '../ffi/kernel.js';

/** What a slot needs from its supervisor. Timers are injectable so that tests need no real time. */
export interface SlotDeps {
  /** Starts a process on this slot's socket; throws if it cannot. */
  launch(slot: Slot): WorkerHandle;
  log(line: string): void;
  drainTimeoutMs: number;
  /** Whether the service is stopping (no restarts then). */
  stopping(): boolean;
  onReady?(slot: Slot, proc: WorkerHandle, restart: boolean): void;
  onExit?(slot: Slot, proc: WorkerHandle, exit: ExitInfo): void;
  /**
   * Raises the socket's receive buffer while it has no ready reader (a first start,
   * a restart after a crash or a stall); returns the undo, called once a process is ready.
   */
  raiseBuffer?(slot: Slot): (how?: LetGo) => unknown;
  /** Paces starts across the group (see start-gate.ts); none: every start at once. */
  startGate?: StartGate;
  setTimer?(fn: () => void, ms: number): unknown;
  clearTimer?(timer: unknown): void;
  now?(): number;
}

export class Slot {
  current: WorkerHandle | undefined;
  /** Processes asked to stop that have not exited yet. */
  readonly leaving = new Set<WorkerHandle>();
  state: WorkerState = 'starting';
  restarts = 0;
  /** Processes of this slot found stalled and replaced. */
  stalls = 0;
  /** Processes started on this slot so far. */
  generation = 0;
  crashStreak = 0;
  closed = false;
  /** Pid of the latest process (kept for the report after it exits). */
  lastPid = 0;
  /** Datagrams still queued when the socket was closed (counted by reading them out). */
  droppedAtClose = 0;
  lastMem: SocketMemInfo = { queueBytes: 0, drops: 0, rcvbuf: 0 };
  /** Counters of this slot's processes that have gone. */
  private readonly base = zeroCounters();
  /** Processes started and not yet folded into `base`. */
  private readonly live = new Set<WorkerHandle>();
  private restartTimer: unknown;
  /** retireAll() calls so far: a start that waited for its turn across one starts nothing. */
  private retirements = 0;
  /** Puts the receive buffer back once a process reads again (see SlotDeps.raiseBuffer). */
  private lowerBuffer: ((how?: LetGo) => unknown) | undefined;
  /** Drops the kernel had counted on this socket before it was ours (an adopted socket). */
  readonly dropsBefore: number;
  /** A service manager keeps this socket open too (a .socket unit's): never read out, never closed under it. */
  readonly heldElsewhere: boolean;
  /** The receive buffer size that is this socket's own (as asked), which a raise goes back to. */
  readonly ownRcvbuf: number;

  constructor(
    readonly index: number,
    readonly sock: OpenedSocket,
    private readonly deps: SlotDeps,
    opts: { dropsBefore?: number; heldElsewhere?: boolean; ownRcvbuf?: number } = {},
  ) {
    this.dropsBefore = opts.dropsBefore ?? 0;
    this.heldElsewhere = opts.heldElsewhere ?? false;
    this.ownRcvbuf = opts.ownRcvbuf ?? sock.rcvbuf / RCVBUF_DOUBLING;
  }

  /**
   * Starts a process on the socket. An empty slot takes it at once; otherwise (a
   * reload) it is promoted when ready and the one it displaces is retired.
   * Resolves when it is ready.
   */
  async start(): Promise<WorkerHandle> {
    this.cancelRestart();
    // Its turn among the group's starts (at once while one is free); the ready limit runs from the spawn.
    const gate = this.deps.startGate;
    let leave = gate ? gate.tryEnter() : () => undefined;
    if (!leave) {
      const epoch = this.retirements;
      leave = await gate!.enter();
      // Retired (a stop, a shrink) or closed while it waited for its turn: nothing to start.
      if (this.closed || this.retirements !== epoch) {
        leave();
        throw new ShardgramError('ERR_SHARDGRAM_STATE', `worker ${this.index} was retired before its turn to start came`);
      }
    }
    const done = leave;
    let proc: WorkerHandle;
    let restart: boolean;
    try {
      restart = this.generation++ > 0;
      proc = this.deps.launch(this);
      this.live.add(proc);
      this.lastPid = proc.pid || this.lastPid;
      if (!this.current) {
        this.current = proc;
        this.raiseWhileCold();
      }
      const started = proc;
      void started.exited.then((exit) => this.onExit(started, exit));
    } catch (err) {
      done();
      throw err;
    }
    try {
      await proc.ready;
    } finally {
      done();
    }
    // A process already asked to leave, or already gone, is never promoted.
    if (proc.expected || !this.live.has(proc)) return proc;
    if (this.current !== proc) {
      const old = this.current;
      this.current = proc;
      if (old) void this.retire(old);
    }
    this.state = 'running';
    this.lowerBuffer?.();
    this.lowerBuffer = undefined;
    this.deps.onReady?.(this, proc, restart);
    return proc;
  }

  /** Asks a process of this slot to drain and exit; resolves when it has. */
  async retire(proc: WorkerHandle, drainTimeoutMs = this.deps.drainTimeoutMs): Promise<void> {
    if (this.current === proc) this.current = undefined;
    this.leaving.add(proc);
    await proc.retire(drainTimeoutMs);
  }

  /** Retires every process of the slot (stop, shrink; a hand-over with no drain, as the socket stays open elsewhere). */
  async retireAll(drainTimeoutMs = this.deps.drainTimeoutMs): Promise<void> {
    this.cancelRestart();
    this.retirements++;
    this.state = 'stopping';
    await Promise.all([...(this.current ? [this.current] : []), ...this.leaving].map((p) => this.retire(p, drainTimeoutMs)));
    this.state = 'stopped';
  }

  private onExit(proc: WorkerHandle, exit: ExitInfo): void {
    addInto(this.base, proc.counters());
    this.live.delete(proc);
    this.leaving.delete(proc);
    const wasCurrent = this.current === proc;
    if (wasCurrent) this.current = undefined;
    const unasked = !proc.expected && !this.deps.stopping() && !this.closed;
    // The socket has no reader from now until the restarted process is ready.
    if (unasked && wasCurrent) this.raiseWhileCold();
    this.deps.onExit?.(this, proc, exit);
    if (!unasked) {
      if (wasCurrent && !this.current) this.state = 'stopped';
      return;
    }
    if (wasCurrent) this.scheduleRestart(proc, exit.why);
  }

  /** Until a process reads, datagrams only queue: a longer queue then, rather than a full one. */
  private raiseWhileCold(): void {
    if (!this.closed) this.lowerBuffer ??= this.deps.raiseBuffer?.(this);
  }

  private scheduleRestart(proc: Pick<WorkerHandle, 'pid' | 'startedAt' | 'lastWords'>, why: string): void {
    const now = this.deps.now?.() ?? Date.now();
    const lived = now - proc.startedAt;
    const d = nextRestart(this.crashStreak, lived);
    this.crashStreak = d.streak;
    const last = proc.lastWords ? ` Last words: ${proc.lastWords}` : '';
    const who = `worker ${this.index} (pid ${proc.pid}) ${why} after ${(lived / 1000).toFixed(1)} s`;
    this.deps.log(
      d.crashLoop
        ? `${who}, ${d.streak} times in a row within 5 s each: crash loop, backing off ${d.delayMs} ms before the next start.${last}`
        : `${who}; restarting it on the same socket (its queue is kept) in ${d.delayMs} ms.${last}`,
    );
    // A stalled slot shows as stalled until its replacement reads.
    if (this.state !== 'stalled') this.state = 'backoff';
    const fire = (): void => {
      this.restartTimer = undefined;
      if (this.deps.stopping() || this.closed) return;
      this.restarts++;
      this.start().catch((err: Error) => {
        this.deps.log(err.message);
        // A process that never started leaves no exit behind: back off and try again. (One
        // that did is still current here, or its exit has already scheduled the restart.)
        if (!this.current && !this.restartTimer && !this.deps.stopping() && !this.closed) {
          this.scheduleRestart({ startedAt: this.deps.now?.() ?? Date.now(), pid: 0, lastWords: err.message }, 'could not be started');
        }
      });
    };
    this.restartTimer = this.deps.setTimer ? this.deps.setTimer(fire, d.delayMs) : setTimeout(fire, d.delayMs);
  }

  /**
   * The current process reads nothing (or says nothing) while it should: mark the
   * slot stalled and end the process; its exit restarts it on the same socket.
   */
  replaceStalled(reason: string): void {
    const proc = this.current;
    if (!proc || this.state !== 'running') return;
    this.stalls++;
    this.state = 'stalled';
    this.deps.log(
      `warning: worker ${this.index} (pid ${proc.pid}) is stalled: ${reason}. Killing it and starting a new one on the same socket (its queue is kept).`,
    );
    proc.kill('SIGKILL');
  }

  /** Whether a restart is waiting for its backoff. */
  get inBackoff(): boolean {
    return this.restartTimer !== undefined;
  }

  cancelRestart(): void {
    if (this.restartTimer === undefined) return;
    if (this.deps.clearTimer) this.deps.clearTimer(this.restartTimer);
    else clearTimeout(this.restartTimer as NodeJS.Timeout);
    this.restartTimer = undefined;
  }

  /** Counters over every process this slot has had, live ones included. */
  counters(): Counters {
    const c = addInto(zeroCounters(), this.base);
    for (const p of this.live) addInto(c, p.counters());
    c.restarts += this.restarts;
    c.stalls += this.stalls;
    c.droppedAtClose += this.droppedAtClose;
    c.kernelDrops += this.lastMem.drops - this.dropsBefore;
    return c;
  }

  /** Top senders of the slot's live processes (each counts from its own start). */
  topSenders(): TopSendersReport | undefined {
    const reports = [...this.live].flatMap((p) => (p.topSenders ? [p.topSenders] : []));
    return reports.length ? mergeTopSenders(reports) : undefined;
  }

  /** The socket as a raise of its buffer sees it (see buffers.ts). */
  raisable(): RaisedSocket {
    return { fd: this.sock.fd, inode: this.sock.inode, own: this.ownRcvbuf, stillOpen: () => !this.closed };
  }

  /** The kernel's view of the socket now (the last one read, once closed: the fd may be reused). */
  memInfo(): SocketMemInfo {
    if (!this.closed) this.lastMem = socketMemInfo(this.sock.fd);
    return this.lastMem;
  }

  /**
   * Lets go of the socket without reading its queue: another process holds it too
   * (a hand-over, a service manager's fd store) and goes on reading it.
   */
  release(): void {
    this.letGo(false);
  }

  /**
   * Closes the socket, after counting (by reading them out) any datagrams still
   * queued: what a closed socket drops is never dropped silently.
   */
  close(): void {
    this.letGo(true);
  }

  /** The end of the socket here: its raise ends, its last figures are kept, then (`readOut`: after reading out its queue, counted) its fd closes. */
  private letGo(readOut: boolean): void {
    if (this.closed) return;
    this.cancelRestart();
    // Its raise ends with it (another holder's raise may still be in force).
    this.lowerBuffer?.({ keep: true });
    this.lowerBuffer = undefined;
    this.lastMem = socketMemInfo(this.sock.fd);
    if (readOut) {
      const left = discardQueued(this.sock.fd);
      if (left > 0) {
        this.droppedAtClose += left;
        this.deps.log(
          `socket ${this.index}: ${left} datagrams (${this.lastMem.queueBytes} bytes) were still queued at close and are dropped; counted in droppedAtClose`,
        );
      }
      // Drops the kernel counted while the queue was read out are this socket's too.
      this.lastMem = { ...this.lastMem, drops: socketMemInfo(this.sock.fd).drops };
    }
    closeFd(this.sock.fd);
    this.closed = true;
  }
}
