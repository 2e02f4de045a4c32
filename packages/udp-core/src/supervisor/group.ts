/**
 * The group as a whole: its slots (one socket each) and the steering program over
 * them; opening or adopting the sockets, growing and shrinking without loss, rolling
 * reloads, and letting go at the end.
 * It knows nothing of processes beyond what a slot does with them.
 */
import { ShardgramError } from '../errors.js';
import { checkGroupable, type AdoptedSocket } from '../ffi/adopt.js';
import { closeFd, sealSocket, socketMemInfo, type OpenedSocket } from '../ffi/socket.js';
import { describeError } from '../errors.js';
import { BufferRaises, type LetGo } from './buffers.js';
import { Steering, type PolicySpec } from '../steering/steering.js';
import type { EffectiveConfig } from './config.js';
import { Slot, type SlotDeps } from './slot.js';
import { StartGate } from './start-gate.js';
import { openGroupSocket } from './sockets.js';
import type { Adoption, SharedWith } from './types.js';

/** How long a sealed socket is left before its last read-out: routing decisions already made land within microseconds. */
const SEAL_SETTLE_MS = 5;

/** Sockets passed to us (a service manager's, an old supervisor's) must be one group, where we were asked to serve. */
export function checkAdoption(sockets: readonly AdoptedSocket[], cfg: EffectiveConfig): void {
  const first = sockets[0];
  if (!first) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'no sockets were passed to take over');
  for (const s of sockets) {
    if (s.port !== first.port || s.address !== first.address || s.family !== first.family) {
      throw new ShardgramError(
        'ERR_SHARDGRAM_INVALID_ARG',
        `the sockets passed are not one group: udp ${first.address}:${first.port} and udp ${s.address}:${s.port}`,
      );
    }
  }
  if ((cfg.port !== 0 && cfg.port !== first.port) || cfg.address !== first.address) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `the sockets passed are bound to udp ${first.address}:${first.port}, not the ${cfg.address}:${cfg.port} asked for: give the same --address and --port, or leave them out`,
      { option: 'port', port: first.port, address: first.address },
    );
  }
  // Before any worker starts: without SO_REUSEPORT the kernel would refuse the second bind or the steering program only later.
  checkGroupable(sockets, cfg.workers, cfg.policy.name);
}

/**
 * A group of `workers` must keep a worker on each of the `held` sockets a service
 * manager holds open (its .socket unit's): one without a reader fills unread.
 */
export function checkKeepsHeld(held: number, workers: number): void {
  if (workers >= held) return;
  throw new ShardgramError(
    'ERR_SHARDGRAM_INVALID_ARG',
    `the service manager keeps ${held} sockets of this group open (its .socket unit): ${workers} workers would leave some unread. ` +
      `Give at least ${held} workers (or leave --workers out), or change the ListenDatagram= lines of the unit.`,
    { option: 'workers' },
  );
}

/** What the group needs from its supervisor: the config, what each slot needs, and who else holds the sockets. */
export interface GroupDeps {
  config(): EffectiveConfig;
  slot: SlotDeps;
  /**
   * Another process holds every socket of the group too: a service manager (its fd
   * store), or the other supervisor of a hand-over. A stop then lets go of the sockets
   * without reading out their queues, which the other holder keeps. (The supervisor's
   * state says which; see lifecycle.ts.)
   */
  sharedWith(): SharedWith;
}

export class Group {
  readonly slots: Slot[] = [];
  private steer: Steering | undefined;
  /** Buffers raised ahead of a hand-over (see brace()); no timer once the hand-over has begun. */
  private braced: { letGo: (how?: LetGo) => Promise<void>; timer: NodeJS.Timeout | undefined } | undefined;

  /** What each slot gets: the supervisor's deps, and one pace for all the group's starts (start-gate.ts). */
  private readonly slotDeps: SlotDeps;
  /** The raises in force on this group's sockets (buffers.ts), the group's own and a takeover's. */
  readonly buffers = new BufferRaises();

  constructor(private readonly deps: GroupDeps) {
    this.slotDeps = { ...deps.slot, startGate: deps.slot.startGate ?? new StartGate() };
  }

  get size(): number {
    return this.slots.length;
  }

  /** The first socket (the group's address, port, family, and where steering attaches). */
  get first(): OpenedSocket | undefined {
    return this.slots[0]?.sock;
  }

  /** The steering in force; undefined before the group is steered. */
  get steering(): Steering | undefined {
    return this.steer;
  }

  /**
   * Fills the group, before any worker starts: with the sockets `adoption` gives (a
   * service manager's, or a running supervisor's in a hand-over), else opening
   * `config.workers` of its own. Then attaches the policy (after bind: a program
   * attached before gives a socket a group of its own). Returns the warnings of
   * opening (e.g. a capped SO_RCVBUF). On failure every socket is closed again.
   */
  fill(policy: PolicySpec, adoption?: Adoption): string[] {
    const cfg = this.deps.config();
    try {
      if (adoption) {
        checkAdoption(adoption.sockets, cfg);
        checkKeepsHeld(adoption.heldElsewhere?.filter(Boolean).length ?? 0, cfg.workers);
        for (const [i, sock] of adoption.sockets.entries()) {
          this.add(sock, {
            dropsBefore: adoption.dropsBefore?.[i] ?? socketMemInfo(sock.fd).drops,
            heldElsewhere: adoption.heldElsewhere?.[i] ?? false,
            ...(adoption.rcvbufs?.[i] !== undefined ? { ownRcvbuf: adoption.rcvbufs[i] } : {}),
          });
        }
      } else {
        let port = cfg.port;
        for (let i = 0; i < cfg.workers; i++) port = this.open(port).sock.port;
      }
      this.steer = new Steering(policy);
      this.steer.apply(this.slots[0]!.sock.fd, this.slots.length);
    } catch (err) {
      for (const s of this.slots) closeFd(s.sock.fd);
      this.slots.length = 0;
      throw err;
    }
    return adoption ? [] : this.slots[0]!.sock.warnings;
  }

  private open(port: number): Slot {
    return this.add(openGroupSocket(this.deps.config(), this.slots.length, port, new Set(this.slots.map((s) => s.sock.inode))));
  }

  private add(sock: OpenedSocket, opts: { dropsBefore?: number; heldElsewhere?: boolean; ownRcvbuf?: number } = {}): Slot {
    const slot = new Slot(this.slots.length, sock, this.slotDeps, opts);
    this.slots.push(slot);
    return slot;
  }

  /**
   * Grows the group to `count` sockets: new ones are opened at the end and get no
   * datagram until their workers read; on failure the group is rolled back (nothing
   * was steered to the new sockets, so their queues are empty).
   */
  async grow(count: number): Promise<void> {
    const steering = this.steer!;
    const from = this.slots.length;
    checkGroupable([this.slots[0]!.sock], count, steering.policy.name);
    const fd0 = this.slots[0]!.sock.fd;
    steering.applyBeforeGrow(fd0, from);
    try {
      for (let i = from; i < count; i++) this.open(this.slots[0]!.sock.port);
      await Promise.all(this.slots.slice(from).map((s) => s.start()));
    } catch (err) {
      for (const s of this.slots.slice(from).reverse()) {
        await s.retireAll();
        s.close();
      }
      this.slots.length = from;
      steering.apply(fd0, from);
      throw err;
    }
    steering.apply(fd0, count);
  }

  /**
   * Shrinks the group to `count` sockets, retiring the last ones: new datagrams are
   * steered away from them and they are sealed (see sealAll), then each is drained by
   * its worker, read out and closed last-first (closing the last socket of a group moves
   * no other's index). `beforeClose` runs just before a socket closes, `retired` just after.
   */
  async shrink(count: number, beforeClose: (slot: Slot) => void, retired: (slot: Slot) => void): Promise<void> {
    checkKeepsHeld(this.slots.filter((s) => s.heldElsewhere).length, count);
    const steering = this.steer!;
    const fd0 = this.slots[0]!.sock.fd;
    const leaving = this.slots.slice(count);
    steering.applyDuringShrink(fd0, count);
    this.sealAll(leaving, 'shrink');
    await Promise.all(leaving.map((s) => s.retireAll()));
    for (const s of [...leaving].reverse()) {
      beforeClose(s);
      s.close();
      retired(s);
    }
    this.slots.length = count;
    steering.apply(fd0, count);
  }

  /**
   * Rolling reload: one slot at a time, a new process starts on the same socket;
   * once it is ready the old one drains and exits. No socket is ever without a reader.
   */
  async reload(): Promise<void> {
    for (const slot of this.slots) {
      const old = slot.current;
      await slot.start();
      if (old && old !== slot.current) await old.exited;
    }
  }

  /** Ends every worker (draining each queue unless `drainTimeoutMs` is 0); the sockets stay open. */
  async retireWorkers(drainTimeoutMs?: number): Promise<void> {
    await Promise.all(this.slots.map((s) => s.retireAll(drainTimeoutMs)));
  }

  /** Starts a worker on every open socket again (a hand-over whose new side died after ours had stopped). */
  async restartWorkers(): Promise<void> {
    await Promise.all(this.slots.filter((s) => !s.closed && !s.current).map((s) => s.start()));
  }

  /** The open sockets, by slot. */
  openSockets(): { index: number; fd: number; inode: number }[] {
    return this.slots.filter((s) => !s.closed).map((s) => ({ index: s.index, fd: s.sock.fd, inode: s.sock.inode }));
  }

  /** Raises every open socket's receive buffer for the length of a change; returns the undo (see buffers.ts). */
  raiseBuffers(bytes: number): (how?: LetGo) => Promise<void> {
    return this.buffers.raise(
      this.slots.filter((s) => !s.closed).map((s) => s.raisable()),
      bytes,
    );
  }

  /**
   * Raises every buffer to `bytes` ahead of a hand-over, for at most `holdMs` (again:
   * the time starts over); see holdBrace and unbrace.
   */
  brace(bytes: number, holdMs: number): void {
    const letGo = this.braced?.letGo ?? this.raiseBuffers(bytes);
    if (this.braced?.timer) clearTimeout(this.braced.timer);
    this.braced = { letGo, timer: setTimeout(() => this.unbrace(), holdMs).unref() };
  }

  /** Whether the buffers are raised ahead of a hand-over. */
  get isBraced(): boolean {
    return this.braced !== undefined;
  }

  /** The hand-over has begun: the brace holds until it ends, however long that takes. */
  holdBrace(): void {
    if (this.braced?.timer) clearTimeout(this.braced.timer);
    if (this.braced) this.braced.timer = undefined;
  }

  /** Ends a brace: the buffers go back, or (`keep`) are left to the service that took the sockets on. */
  unbrace(how: LetGo = {}): void {
    if (!this.braced) return;
    if (this.braced.timer) clearTimeout(this.braced.timer);
    void this.braced.letGo(how);
    this.braced = undefined;
  }

  /** Puts the group's own steering back (a hand-over's new side may have attached its program). */
  resteer(): void {
    this.steer?.reset(this.slots[0]!.sock.fd, this.slots.length);
  }

  /**
   * Ends every worker (draining each queue unless `drainTimeoutMs` is 0), then lets
   * go of the sockets: a shared one, or one a service manager holds, is released with
   * its queue for the other holder; any other is closed, what was left in it read out
   * and counted. A socket left to a service manager gets its own buffer size back now
   * (the next service would take a raised size for its own); in a hand-over the other
   * supervisor puts the buffers back. Returns the bytes each socket had left at close.
   *
   * A group closed whole under traffic loses nothing unaccounted between a socket's last
   * read-out and its close: from the start of the stop every new datagram is steered to
   * socket 0 and the others are sealed, so they are read out and closed with nothing on
   * its way to them (as a shrink does), last-first; socket 0 is then sealed too (what
   * arrives from then on finds no socket, counted by the kernel as NoPorts) before its
   * own read-out.
   */
  async stop(drainTimeoutMs?: number): Promise<number[]> {
    const shared = this.deps.sharedWith();
    const closesAll = !shared && this.slots.length > 0 && this.slots.every((s) => !s.closed && !s.heldElsewhere);
    if (closesAll && this.slots.length > 1) {
      this.steerAllToFirst();
      this.sealAll(this.slots.slice(1), 'stop');
    }
    await this.retireWorkers(drainTimeoutMs);
    const handOver = shared === 'hand-over';
    this.unbrace(handOver ? { keep: true } : {});
    const left = this.slots.map(() => 0);
    for (const s of [...this.slots].reverse()) {
      if (s.closed) continue;
      if (shared || s.heldElsewhere) {
        if (!handOver) this.buffers.lowerNow([s.raisable()]);
        s.release();
        continue;
      }
      if (closesAll && s.index === 0) await this.seal(s);
      s.close();
      left[s.index] = s.lastMem.queueBytes;
    }
    return left;
  }

  /** Every new datagram to socket 0 (best effort: without it the stop closes as before). */
  private steerAllToFirst(): void {
    try {
      this.steer?.applyDuringShrink(this.slots[0]!.sock.fd, 1);
    } catch (err) {
      this.deps.slot.log(`stop: could not steer the group to its first socket before closing the others (${describeError(err)})`);
    }
  }

  /**
   * Seals sockets that are leaving while the group goes on (connects each to itself):
   * steering alone does not keep datagrams off a closing socket. The kernel takes a
   * socket out of its reuseport group a moment before it takes it out of the lookup
   * list, and a lookup that meets it in between (IPv4 lists the newest sockets, the
   * leaving ones, first) queues the datagram on it to be freed unread at the close,
   * counted nowhere. A connected socket matches only datagrams from its peer, so a
   * sealed one is never chosen. Sealing happens before the workers' drain, which reads
   * whatever the kernel had already routed. Connecting one member marks the group as
   * having connections for as long as it lives: the kernel then scores every member
   * per datagram instead of stopping at the first (docs/steering.md has the cost).
   */
  private sealAll(slots: readonly Slot[], during: string): void {
    for (const s of [...slots].reverse()) {
      if (!s.closed && !s.heldElsewhere) this.trySeal(s, `${during}: could not seal socket ${s.index} before its drain`);
    }
  }

  /** The last socket: sealed, then given a moment for datagrams the kernel had already routed to it to land. */
  private async seal(s: Slot): Promise<void> {
    if (this.trySeal(s, `stop: could not seal socket ${s.index} before its last read-out`)) await new Promise((r) => setTimeout(r, SEAL_SETTLE_MS));
  }

  /** Seals one socket (sealSocket); if that fails, logs `what` with the reason and what it risks, and returns false. */
  private trySeal(s: Slot, what: string): boolean {
    try {
      sealSocket(s.sock.fd, s.sock.address, s.sock.port);
      return true;
    } catch (err) {
      this.deps.slot.log(`${what} (${describeError(err)}); a datagram the kernel routes to it while it closes may go uncounted`);
      return false;
    }
  }
}
