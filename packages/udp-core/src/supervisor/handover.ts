/**
 * Upgrade hand-over, the old side (the model: Envoy's HotRestartingParent). This
 * service owns the group until it tells the new one `done`:
 *
 *   offer the sockets ─► wait for the new side's workers to read (patience) ─► stop our
 *   workers without draining ─► done (our counts) ─► wait for its ack ─► let go of our
 *   copies, queues untouched.
 *
 * Before done, a new side that aborts, goes away, or keeps us waiting past our patience
 * leaves us serving as before (our steering back, the buffers back; a silent one is told
 * it was abandoned, and leaves when it wakes). After done, a new side that dies before
 * its ack leaves the group to us again: our workers restart on the sockets we still
 * hold, queues intact. The transport is control/takeover/old-side.ts.
 */
import type { Counters } from '../stats/counters.js';
import type { StatsReport } from '../stats/report.js';
import type { PolicySpec } from '../steering/steering.js';
import type { Group } from './group.js';
import type { HandOverOffer, HandOverPeer } from './types.js';
import { DEFAULTS } from '../defaults.js';

/** How long the old side waits for the new one's workers to read, by default. */
export const HANDOVER_PATIENCE_MS = DEFAULTS.handoverTimeoutMs;
/** After done: how long the old side waits for the new one's ack before it lets go anyway (the new workers read meanwhile). */
const ACK_PATIENCE_MS = 10_000;

/** What the hand-over needs from the supervisor handing over. */
export interface HandingOver {
  group: Group;
  app: string;
  policy: PolicySpec;
  log(line: string): void;
  stats(): StatsReport;
}

/** How a hand-over ended, for the old side: the group went (with the counts passed on), or it is still ours. */
export type HandOverResult =
  | { outcome: 'handed-over'; counters: Partial<Counters> }
  /** The new side took the group after we went silent: we leave without touching it, and exit non-zero. */
  | { outcome: 'taken'; reason: string }
  | { outcome: 'kept'; reason: string };

export async function handOverGroup(side: HandingOver, peer: HandOverPeer, patienceMs: number): Promise<HandOverResult> {
  const { group, log } = side;
  const who = `the new service (pid ${peer.pid})`;
  const keep = (reason: string): HandOverResult => {
    group.resteer();
    group.unbrace();
    log(`takeover abandoned: ${reason}; this service goes on serving`);
    return { outcome: 'kept', reason };
  };
  const first = group.first!;
  // Raised at the new service's first word: held now until the outcome, however long it takes.
  group.holdBrace();
  const offer: HandOverOffer = {
    fds: group.slots.map((s) => s.sock.fd),
    address: first.address,
    port: first.port,
    family: first.family,
    workers: group.size,
    policy: side.policy,
    app: side.app,
    pid: process.pid,
    dropsBefore: group.slots.map((s) => s.dropsBefore),
    rcvbufs: group.slots.map((s) => s.ownRcvbuf),
    braced: group.isBraced,
  };
  try {
    peer.offer(offer);
  } catch (err) {
    return keep(`the offer could not be sent (${(err as Error).message})`);
  }
  for (;;) {
    const w = await peer.next(patienceMs);
    if (w.word === 'ready') break;
    if (w.word === 'abort') return keep(`${who} gave up: ${w.reason}`);
    if (w.word === 'gone') return keep(`${who} ${w.died ? 'died' : 'closed the connection'} before its workers read`);
    if (w.word === 'timeout') {
      const reason = `${who} did not say its workers read within ${patienceMs / 1000} s`;
      peer.abandon(reason);
      return keep(reason);
    }
    if (w.word === 'taken') {
      // Not a word said before ready; a new side that says it anyway holds the group by its own account.
      await group.stop(0);
      return { outcome: 'taken', reason: w.reason };
    }
  }
  // The new workers read: ours stop without draining (the queues stay, read by the new ones).
  await group.retireWorkers(0);
  const report = side.stats();
  const { queueBytes: _q, ...counters } = report.total;
  // The live sockets' drops go on in the new service's slots (counted from the same baselines).
  counters.kernelDrops -= report.workers.reduce((a, w) => a + w.kernelDrops, 0);
  peer.done(counters);
  const w = await peer.next(ACK_PATIENCE_MS);
  if (w.word === 'gone' && w.died) {
    // It died holding the group: the sockets are still open here, with their queues.
    log(`takeover: ${who} died before it confirmed the hand-over; restarting this service's workers on its sockets (their queues are intact)`);
    await group.restartWorkers();
    return keep(`${who} died after our workers stopped`);
  }
  if (w.word === 'timeout') log(`takeover: ${who} has not confirmed within ${ACK_PATIENCE_MS / 1000} s; its workers read the sockets, so this service lets go`);
  // No drain: the new service reads on from the same queues, and puts the buffers back (it was given their own sizes).
  await group.stop(0);
  log(`handed over: the ${report.total.datagrams} datagrams counted here carry on in the new service's totals`);
  return { outcome: 'handed-over', counters };
}
