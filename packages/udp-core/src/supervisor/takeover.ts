/**
 * Upgrade hand-over, the new side (the model: Envoy's HotRestartingChild). The old
 * service owns the group until it says done; until then this one is its guest:
 *
 *   sockets received ─► buffers raised ─► our workers start on them ─► each has read
 *   (seen at their snapshots; or a quiet WARM_TIMEOUT_MS) ─► ready ─► done: the group
 *   and the old counts are ours ─► ack.
 *
 * An old side that dies at any step leaves the group to us at once (its counts are
 * lost, which we say): we go on, and a stop from then on reads out and counts the
 * queues, as the only holder. An old side that gave up on us (we were too slow, or
 * stopped) has gone on serving: we leave without touching the group and fail. An old
 * side silent past our patience after ready is told we took the group. The transport
 * is control/takeover/new-side.ts.
 */
import type { Counters } from '../stats/counters.js';
import { ShardgramError, describeError } from '../errors.js';
import { F_DUPFD_CLOEXEC } from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import type { BufferRaises, LetGo } from './buffers.js';
import type { Adoption, SourceLoss, TakeoverSource } from './types.js';

/** How long the new side waits for each of its workers to handle a first datagram. */
export const WARM_TIMEOUT_MS = 3000;
/** A takeover that failed waits at most this long for the queues to fit their own buffers again before it exits. */
const TAKEOVER_LOWER_MS = 2000;

/** What the new side needs from its supervisor. */
export interface TakingOver {
  log(line: string): void;
  changeRcvbuf: number;
  /** The raises in force on the group's sockets (its Group's): ours on the received sockets count among them. */
  buffers: BufferRaises;
  /** Starts on the adopted sockets (the old side still owns them). */
  start(adopt: () => Promise<Adoption>): Promise<void>;
  /** The old side died: the group is ours alone from now on (the lifecycle's taking-over state says `sole`). */
  becomeSoleOwner(): void;
  /** Whether the group is ours alone: read from the lifecycle (taking-over, `sole`), which holds it. */
  readonly sole: boolean;
  /** Stops this service: as the sole holder it reads out and counts the queues; as a guest it lets the sockets go unread (the old side keeps them). */
  stop(): Promise<unknown>;
  /** How many of our workers have handled no datagram yet. */
  coldWorkers(): number;
  /** Calls `listener` each time one of our workers' snapshots arrives (its counts have moved on); returns the unsubscribe. */
  onSnapshot(listener: () => void): () => void;
  inherit(counters: Partial<Counters>, pid: number): void;
}

export type TakeoverResult = { from: number; how: 'handed-over' | 'old-side-died' | 'taken' };

/** Resolves with `work`'s value, or with the old side's loss if that comes first. */
function orLoss<T>(work: Promise<T>, lost: Promise<SourceLoss>): Promise<{ value: T } | SourceLoss> {
  return Promise.race([work.then((value) => ({ value })), lost]);
}

/**
 * The hand-over, the new side's steps (the flow above): our buffers raised on the
 * received sockets, the old side watched, our workers started and read, then ready
 * and the old side's answer. A step that fails backs out as far as the takeover got.
 */
export async function takeOverGroup(side: TakingOver, source: TakeoverSource, patienceMs: number): Promise<TakeoverResult> {
  const own = offeredRcvbufs(source);
  const attempt = new Takeover(side, source, own, raiseOnDuplicates(side, source, own));
  attempt.watchOldSide();
  try {
    await attempt.startOnOfferedSockets();
    await attempt.waitForOurWorkersToRead();
    if (side.sole) return attempt.ours('old-side-died');
    return await attempt.sayReady(patienceMs);
  } catch (err) {
    await attempt.backOut(err);
    throw err;
  }
}

/** The old side's own buffer sizes, one per socket, when it sent them (an older service does not). */
function offeredRcvbufs(source: TakeoverSource): number[] | undefined {
  const r = source.offer.rcvbufs;
  return Array.isArray(r) && r.length === source.sockets.length && r.every((n) => Number.isInteger(n) && n > 0) ? r : undefined;
}

/**
 * Raises the buffers of our own duplicates of the sockets, to set them whatever the
 * supervisor lets go of. Returns the restore: our raise ends (see buffers.ts: the
 * buffers go back once their queues fit them), then our duplicates close.
 */
function raiseOnDuplicates(side: TakingOver, source: TakeoverSource, own: number[] | undefined): (how?: LetGo) => Promise<void> {
  const dups = source.sockets.map((k) => libc().fcntl(k.fd, F_DUPFD_CLOEXEC, 0));
  let dupsOpen = true;
  const letGo = side.buffers.raise(
    dups.map((fd, i) => ({ fd, inode: source.sockets[i]!.inode, stillOpen: () => dupsOpen, ...(own ? { own: own[i]! } : {}) })),
    side.changeRcvbuf,
  );
  return (how) =>
    letGo(how).finally(() => {
      if (dupsOpen) for (const fd of dups) libc().close(fd);
      dupsOpen = false;
    });
}

/** One takeover, step by step: what it has done so far decides how a failure backs out. */
class Takeover {
  private readonly from: string;
  /** The old side's loss, once it died or gave up on us. */
  private loss: SourceLoss | undefined;
  /** Our start took the sockets (from then on the supervisor closes them). */
  private adopted = false;
  /** We told the old side our workers read (too late to abort then). */
  private readySent = false;
  /** The old side gave up on us and we left: the group is untouched, nothing to back out. */
  private left = false;

  constructor(
    private readonly side: TakingOver,
    private readonly source: TakeoverSource,
    private readonly own: number[] | undefined,
    private readonly restoreBuffers: (how?: LetGo) => Promise<void>,
  ) {
    this.from = `the old service (pid ${source.offer.pid})`;
  }

  /** Notes the old side's loss when it comes; a death leaves the group to us at once. */
  watchOldSide(): void {
    void this.source.lost.then((l) => {
      this.loss = l;
      if (l.lost === 'died') this.died(l);
    });
  }

  /** Our workers start on the sockets; the old side giving up meanwhile makes us leave, its death does not. */
  async startOnOfferedSockets(): Promise<void> {
    const starting = this.side.start(() => this.adopt());
    starting.catch(() => undefined);
    const started = await orLoss(starting, this.source.lost);
    if ('lost' in started) {
      if (started.lost === 'abandoned') await this.givenUp(started);
      // Died: our start goes on, on sockets that are ours alone now.
      await starting;
    }
  }

  /** Each new worker handles a datagram (or the traffic is quiet) before the old ones stop. */
  async waitForOurWorkersToRead(): Promise<void> {
    if (this.side.sole) return;
    const warm = await orLoss(waitWarm(this.side, this.source.lost), this.source.lost);
    if ('lost' in warm && warm.lost === 'abandoned') await this.givenUp(warm);
  }

  /** Tells the old side our workers read, and ends on its answer: done, silence past `patienceMs`, or a loss. */
  async sayReady(patienceMs: number): Promise<TakeoverResult> {
    this.readySent = true;
    const r = await this.source.ready(patienceMs);
    if ('done' in r) {
      this.side.inherit(r.done, this.source.offer.pid);
      this.source.ack();
      return this.ours('handed-over');
    }
    if ('silent' in r) return this.takeFromSilent(patienceMs);
    if (r.lost === 'abandoned') await this.givenUp(r);
    this.died(r);
    return this.ours('old-side-died');
  }

  /** The group is ours: our raise ends in its own time. */
  ours(how: TakeoverResult['how']): TakeoverResult {
    void this.restoreBuffers();
    return { from: this.source.offer.pid, how };
  }

  /**
   * A takeover that failed: the old side told (before ready, unless it is gone), this
   * service stopped, and the sockets and buffers let go as befits who holds the group.
   */
  async backOut(err: unknown): Promise<void> {
    if (this.left) return;
    // Read before the stop, which leaves the taking-over state (and its `sole`) behind.
    const sole = this.side.sole;
    if (!this.readySent && !sole) this.source.abort(describeError(err));
    // As the sole holder a stop reads out and counts the queues; as a guest it lets them be.
    await this.side.stop();
    if (!this.adopted && !sole) for (const k of this.source.sockets) libc().close(k.fd);
    // A braced old service puts its buffers back itself; an older one, which did not
    // raise them, has them put back from here before this process exits.
    await this.restoreBuffers(sole ? {} : this.source.offer.braced ? { keep: true } : { giveUpMs: TAKEOVER_LOWER_MS, ref: true });
  }

  /** What our start adopts: the offered sockets, unless the old side gave up on us while the app loaded. */
  private async adopt(): Promise<Adoption> {
    // Given up on while the app loaded (this process was stopped, say): no worker touches the group.
    if (this.loss?.lost === 'abandoned')
      throw new ShardgramError('ERR_SHARDGRAM_STATE', `--takeover: ${this.from} gave up on this service (${this.loss.detail})`, { state: 'taking-over' });
    this.adopted = true;
    const o = this.source.offer;
    return { sockets: this.source.sockets, workers: o.workers, policy: o.policy, dropsBefore: o.dropsBefore, ...(this.own ? { rcvbufs: this.own } : {}) };
  }

  /** The old side was silent past our patience after ready: told we took the group, and taken as dead. */
  private takeFromSilent(patienceMs: number): TakeoverResult {
    const reason = `${this.from} said nothing for ${patienceMs / 1000} s after this service's workers read`;
    this.source.take(reason);
    this.died({ lost: 'died', detail: 'was silent past its patience' });
    this.side.log(`takeover: ${reason}: this service holds the group; the old one leaves it when it wakes`);
    return this.ours('taken');
  }

  /** The old side died: the group is ours alone from now on (said once). */
  private died(loss: SourceLoss): void {
    if (this.side.sole) return;
    this.side.becomeSoleOwner();
    this.side.log(`takeover: ${this.from} ${loss.detail}; this service now owns the sockets alone (its counts are lost; nothing queued is)`);
  }

  /** The old side gave up on us and serves on: leave without touching the group. */
  private async givenUp(loss: SourceLoss): Promise<never> {
    this.left = true;
    await this.side.stop();
    await this.restoreBuffers({ keep: true });
    throw new ShardgramError(
      'ERR_SHARDGRAM_STATE',
      `--takeover: ${this.from} gave up on this service (${loss.detail}) and serves on; this one leaves the group untouched`,
      { state: 'taking-over' },
    );
  }
}

/**
 * Resolves at the first snapshot after which every worker has handled a datagram, or
 * after a quiet WARM_TIMEOUT_MS (said in the log), or once `over` settles (the old side
 * is gone or gave up: no word then).
 */
export function waitWarm(side: Pick<TakingOver, 'log' | 'coldWorkers' | 'onSnapshot'>, over: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    let ended = false;
    const end = (quiet: boolean): void => {
      if (ended) return;
      ended = true;
      off();
      clearTimeout(timer);
      const n = quiet ? side.coldWorkers() : 0;
      if (n) side.log(`takeover: ${n} new workers have had no datagram in ${WARM_TIMEOUT_MS / 1000} s (little traffic); going on`);
      resolve();
    };
    const off = side.onSnapshot(() => {
      if (side.coldWorkers() === 0) end(false);
    });
    const timer = setTimeout(() => end(true), WARM_TIMEOUT_MS);
    void over.then(
      () => end(false),
      () => end(false),
    );
    if (side.coldWorkers() === 0) end(false);
  });
}
