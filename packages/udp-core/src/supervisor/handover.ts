/**
 * Upgrade hand-over, the old side's part: offer the group's sockets and state to a
 * new supervisor, and once its workers read them, stop ours without draining (the
 * sockets stay open over there) and let go of our copies, queues untouched.
 * The control socket's takeover handler carries the offer (control/takeover.ts).
 */
import type { Counters } from '../counters.js';
import type { StatsReport } from '../stats.js';
import type { PolicySpec } from '../steering/steering.js';
import type { Group } from './group.js';
import type { HandOverOffer } from './types.js';

/** What the hand-over needs from the supervisor handing over. */
export interface HandingOver {
  group: Group;
  app: string;
  policy: PolicySpec;
  log(line: string): void;
  /** The new side said go: from here no restarts, no health checks. */
  letGo(): void;
  stats(): StatsReport;
  /** The sockets are let go: end the app's supervisor side. */
  done(): Promise<void>;
}

/**
 * `exchange` is given the offer and resolves true once the new supervisor's workers
 * read the sockets (false, or a throw, if it gave up). On true, returns the counts
 * this service had, for the new one to carry on; on false, undefined, with our own
 * steering back in place and the service serving on as before.
 */
export async function handOverGroup(side: HandingOver, exchange: (offer: HandOverOffer) => Promise<boolean>): Promise<Counters | undefined> {
  const { group } = side;
  const first = group.first!;
  // Raised at the new service's first word: held now until the outcome, however long it takes.
  group.holdBrace();
  const offer: HandOverOffer = {
    fds: group.slots.map((s) => s.sock.fd), address: first.address, port: first.port, family: first.family,
    workers: group.size, policy: side.policy, app: side.app, pid: process.pid,
    dropsBefore: group.slots.map((s) => s.dropsBefore), rcvbufs: group.slots.map((s) => s.ownRcvbuf), braced: group.isBraced,
  };
  let go = false;
  try {
    go = await exchange(offer);
  } catch (err) {
    side.log(`takeover failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!go) {
    group.resteer();
    group.unbrace();
    side.log('takeover abandoned: this service goes on serving');
    return undefined;
  }
  side.letGo();
  group.sharedWith = 'hand-over';
  // No drain: the new service reads on from the same queues, and puts the buffers back
  // (it was given their own sizes).
  await group.stop(0);
  const report = side.stats();
  await side.done();
  side.log(`handed over: the ${report.total.datagrams} datagrams counted here carry on in the new service's totals`);
  const { queueBytes: _q, ...counters } = report.total;
  // The live sockets' drops go on in the new service's slots (counted from the same baselines).
  counters.kernelDrops -= report.workers.reduce((a, w) => a + w.kernelDrops, 0);
  return counters;
}
