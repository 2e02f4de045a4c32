/**
 * Counts (and so frees) what is still queued on a socket that is about to close,
 * so that datagrams dropped with a socket are counted, not just lost.
 */
import { MsgArena } from './arena.js';
import { EINTR, MSG_DONTWAIT } from './kernel.js';
import { libc } from './libc.js';

const BATCH = 64;
/** Small slots: only the count matters, the payload is cut (MSG_TRUNC) and thrown away. */
const SLOT = 64;
const MAX_BATCHES = 1 << 16;

let arena: MsgArena | undefined;

/** Reads `fd` dry without waiting; returns how many datagrams it held. */
export function discardQueued(fd: number): number {
  // The arena stays referenced at module level while the kernel writes into it.
  arena ??= new MsgArena(BATCH, SLOT);
  const c = libc();
  let count = 0;
  for (let i = 0; i < MAX_BATCHES; i++) {
    arena.resetForReceive(BATCH);
    const n = c.recvmmsg(fd, arena.memory, BATCH, MSG_DONTWAIT, null);
    if (n < 0 && c.errno() === EINTR) continue;
    if (n <= 0) break;
    count += n;
    if (n < BATCH) break;
  }
  return count;
}
