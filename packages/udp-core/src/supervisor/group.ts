/**
 * The group as a whole: growing and shrinking it without loss, checks on sockets
 * taken from elsewhere, and the receive buffers raised for the length of a change.
 */
import { ShardgramError } from '../errors.js';
import { checkGroupable, type AdoptedSocket } from '../ffi/adopt.js';
import { SOL_SOCKET, SO_RCVBUF } from '../ffi/kernel.js';
import { getIntOption, setReceiveBuffer } from '../ffi/socket.js';
import type { Steering } from '../steering/steering.js';
import type { EffectiveConfig } from './config.js';
import type { Slot } from './slot.js';

/** Receive buffer each socket gets for the length of a change (see raiseBuffers). */
export const CHANGE_RCVBUF = 8 * 1024 * 1024;

/** Sockets passed to us (a service manager's, an old supervisor's) must be one group, where we were asked to serve. */
export function checkAdoption(sockets: readonly AdoptedSocket[], cfg: EffectiveConfig): void {
  const first = sockets[0];
  if (!first) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', 'no sockets were passed to take over');
  for (const s of sockets) {
    if (s.port !== first.port || s.address !== first.address || s.family !== first.family) {
      throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `the sockets passed are not one group: udp ${first.address}:${first.port} and udp ${s.address}:${s.port}`);
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

/**
 * Raises every socket's receive buffer to at least `bytes` for the length of a
 * change (a hand-over, a reload, a resize): a worker starting cold, or a machine
 * busy starting processes, then finds its queue longer rather than full. Returns
 * the function that puts the sizes back. Without CAP_NET_ADMIN the raise is capped
 * by net.core.rmem_max; 0 raises nothing.
 */
export function raiseBuffers(slots: readonly Slot[], bytes: number): () => void {
  const open = slots.filter((s) => !s.closed);
  return raiseBuffersOf(open.map((s) => s.sock.fd), bytes, (i) => !open[i]!.closed);
}

/** The same for raw fds; the undo skips those for which `stillOpen(i)` says no (their number may be reused). */
export function raiseBuffersOf(fds: readonly number[], bytes: number, stillOpen: (i: number) => boolean = () => true): () => void {
  if (bytes <= 0) return () => undefined;
  const sizes = fds.map((fd) => getIntOption(fd, SOL_SOCKET, SO_RCVBUF) / 2);
  fds.forEach((fd, i) => sizes[i]! < bytes && setReceiveBuffer(fd, bytes));
  return () => fds.forEach((fd, i) => stillOpen(i) && sizes[i]! < bytes && setReceiveBuffer(fd, sizes[i]!));
}

/**
 * Grows the group to `count` sockets: new ones are opened at the end and get no
 * datagram until their workers read; on failure the group is rolled back (nothing
 * was steered to the new sockets, so their queues are empty).
 */
export async function growGroup(slots: Slot[], steering: Steering, count: number, open: (index: number) => Slot): Promise<void> {
  const from = slots.length;
  const fd0 = slots[0]!.sock.fd;
  steering.applyBeforeGrow(fd0, from);
  try {
    for (let i = from; i < count; i++) open(i);
    await Promise.all(slots.slice(from).map((s) => s.start()));
  } catch (err) {
    for (const s of slots.slice(from).reverse()) {
      await s.retireAll();
      s.close();
    }
    slots.length = from;
    steering.apply(fd0, from);
    throw err;
  }
  steering.apply(fd0, count);
}

/**
 * Shrinks the group to `count` sockets, retiring the last ones: new datagrams are
 * steered away from them first, then each is drained by its worker and closed
 * last-first (closing the last socket of a group moves no other's index).
 */
export async function shrinkGroup(slots: Slot[], steering: Steering, count: number, retired: (slot: Slot) => void, beforeClose: (slot: Slot) => void): Promise<void> {
  const fd0 = slots[0]!.sock.fd;
  const leaving = slots.slice(count);
  steering.applyDuringShrink(fd0, count);
  await Promise.all(leaving.map((s) => s.retireAll()));
  for (const s of [...leaving].reverse()) {
    beforeClose(s);
    s.close();
    retired(s);
  }
  slots.length = count;
  steering.apply(fd0, count);
}
