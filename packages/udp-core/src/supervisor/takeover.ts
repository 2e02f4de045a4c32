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
import { ShardgramError } from '../errors.js';
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
  /** Stops this service; with `touch` false the sockets are let go unread (the old side keeps them). */
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

export async function takeOverGroup(side: TakingOver, source: TakeoverSource, patienceMs: number): Promise<TakeoverResult> {
  const { log } = side;
  const o = source.offer;
  const from = `the old service (pid ${o.pid})`;
  let adopted = false;
  let readySent = false;
  const died = (loss: SourceLoss): void => {
    if (side.sole) return;
    side.becomeSoleOwner();
    log(`takeover: ${from} ${loss.detail}; this service now owns the sockets alone (its counts are lost; nothing queued is)`);
  };
  /** The old side gave up on us and serves on: leave without touching the group. */
  let left = false;
  const givenUp = async (loss: SourceLoss): Promise<never> => {
    left = true;
    await side.stop();
    await restoreBuffers({ keep: true });
    throw new ShardgramError(
      'ERR_SHARDGRAM_STATE',
      `--takeover: ${from} gave up on this service (${loss.detail}) and serves on; this one leaves the group untouched`,
      { state: 'taking-over' },
    );
  };
  // Our own duplicates of the sockets, to set their buffers whatever the supervisor lets go of.
  const dups = source.sockets.map((k) => libc().fcntl(k.fd, F_DUPFD_CLOEXEC, 0));
  let dupsOpen = true;
  const own = Array.isArray(o.rcvbufs) && o.rcvbufs.length === dups.length && o.rcvbufs.every((n) => Number.isInteger(n) && n > 0) ? o.rcvbufs : undefined;
  const letGo = side.buffers.raise(
    dups.map((fd, i) => ({ fd, inode: source.sockets[i]!.inode, stillOpen: () => dupsOpen, ...(own ? { own: own[i]! } : {}) })),
    side.changeRcvbuf,
  );
  /** Our raise ends (see buffers.ts: the buffers go back once their queues fit them), then our duplicates close. */
  const restoreBuffers = (how?: LetGo): Promise<void> =>
    letGo(how).finally(() => {
      if (dupsOpen) for (const fd of dups) libc().close(fd);
      dupsOpen = false;
    });
  let loss: SourceLoss | undefined;
  void source.lost.then((l) => {
    loss = l;
    if (l.lost === 'died') died(l);
  });
  try {
    const starting = side.start(async () => {
      // Given up on while the app loaded (this process was stopped, say): no worker touches the group.
      if (loss?.lost === 'abandoned')
        throw new ShardgramError('ERR_SHARDGRAM_STATE', `--takeover: ${from} gave up on this service (${loss.detail})`, { state: 'taking-over' });
      adopted = true;
      return { sockets: source.sockets, workers: o.workers, policy: o.policy, dropsBefore: o.dropsBefore, ...(own ? { rcvbufs: own } : {}) };
    });
    starting.catch(() => undefined);
    const started = await orLoss(starting, source.lost);
    if ('lost' in started) {
      if (started.lost === 'abandoned') await givenUp(started);
      // Died: our start goes on, on sockets that are ours alone now.
      await starting;
    }
    // Each new worker handles a datagram (or the traffic is quiet) before the old ones stop.
    if (!side.sole) {
      const warm = await orLoss(waitWarm(side, source.lost), source.lost);
      if ('lost' in warm && warm.lost === 'abandoned') await givenUp(warm);
    }
    if (side.sole) {
      void restoreBuffers();
      return { from: o.pid, how: 'old-side-died' };
    }
    readySent = true;
    const r = await source.ready(patienceMs);
    if ('done' in r) {
      side.inherit(r.done, o.pid);
      source.ack();
      void restoreBuffers();
      return { from: o.pid, how: 'handed-over' };
    }
    if ('silent' in r) {
      const reason = `${from} said nothing for ${patienceMs / 1000} s after this service's workers read`;
      source.take(reason);
      died({ lost: 'died', detail: 'was silent past its patience' });
      log(`takeover: ${reason}: this service holds the group; the old one leaves it when it wakes`);
      void restoreBuffers();
      return { from: o.pid, how: 'taken' };
    }
    if (r.lost === 'abandoned') await givenUp(r);
    died(r);
    void restoreBuffers();
    return { from: o.pid, how: 'old-side-died' };
  } catch (err) {
    if (left) throw err;
    // Read before the stop, which leaves the taking-over state (and its `sole`) behind.
    const sole = side.sole;
    if (!readySent && !sole) source.abort((err as Error).message);
    // As the sole holder a stop reads out and counts the queues; as a guest it lets them be.
    await side.stop();
    if (!adopted && !sole) for (const k of source.sockets) libc().close(k.fd);
    // A braced old service puts its buffers back itself; an older one, which did not
    // raise them, has them put back from here before this process exits.
    await restoreBuffers(sole ? {} : o.braced ? { keep: true } : { giveUpMs: TAKEOVER_LOWER_MS, ref: true });
    throw err;
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
