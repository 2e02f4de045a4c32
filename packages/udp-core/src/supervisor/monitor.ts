/**
 * Health checks run once a second while the service runs:
 * - imbalance: one worker taking far more than its share under `hash` (the kernel
 *   hash puts each source port on one socket), logged and shown in /stats;
 * - stalls: a worker that reads nothing while its queue holds datagrams, or that has
 *   sent no heartbeat (snapshot), for `stallTimeoutMs` is replaced on its socket;
 * - membership: a socket in our group that is not ours (a same-uid process that
 *   bound the port with SO_REUSEPORT takes a share of the traffic unseen) is named,
 *   with its pid and command, in the log and in /stats.
 */
import { describeHolder } from '../ffi/holders.js';
import { competingHolders } from '../ffi/socket.js';
import type { PortHolder } from '../errors.js';
import { ImbalanceDetector, type ImbalanceOptions, type ImbalanceState } from '../stats/imbalance.js';
import type { PolicySpec } from '../steering/steering.js';
import type { Slot } from './slot.js';

export const MONITOR_INTERVAL_MS = 1000;
/** Membership is read from /proc every this many checks. */
const MEMBERSHIP_EVERY = 2;

const HASH_ADVICE =
  'the kernel hash sends each source port to one worker; a few busy senders overload one. Use --policy random (even per datagram) or --policy key (per key, e.g. StatsD metric name).';

export interface MonitorSource {
  slots(): readonly Slot[];
  policy(): PolicySpec;
  address(): string;
  port(): number;
}

export interface MonitorOptions {
  imbalance?: ImbalanceOptions;
  /** A worker silent, or reading nothing with a non-empty queue, this long is stalled. 0: never. */
  stallTimeoutMs: number;
}

interface Progress {
  pid: number;
  datagrams: number;
  /** Since when the queue has been non-empty without a datagram read. */
  stuckSince: number | undefined;
}

export class Monitor {
  private readonly imbalance: ImbalanceDetector;
  private timer: NodeJS.Timeout | undefined;
  private readonly progress = new Map<Slot, Progress>();
  private ticks = 0;
  /** Sockets in our group that are not ours, as last seen. */
  intruders: PortHolder[] = [];
  private readonly reported = new Set<number>();

  constructor(
    private readonly source: MonitorSource,
    private readonly log: (line: string) => void,
    private readonly opts: MonitorOptions,
  ) {
    this.imbalance = new ImbalanceDetector(opts.imbalance);
  }

  get imbalanceState(): ImbalanceState {
    return this.imbalance.current;
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(Date.now()), MONITOR_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The group changed size: judge afresh. */
  reset(): void {
    this.imbalance.reset();
  }

  check(now: number): void {
    this.checkStalls(now);
    if (this.ticks++ % MEMBERSHIP_EVERY === 0) this.checkMembership();
    this.checkImbalance(now);
  }

  private checkStalls(now: number): void {
    const limit = this.opts.stallTimeoutMs;
    if (limit <= 0) return;
    const slots = this.source.slots();
    for (const s of this.progress.keys()) if (!slots.includes(s)) this.progress.delete(s);
    for (const slot of slots) {
      const proc = slot.current;
      if (!proc || slot.state !== 'running') {
        this.progress.delete(slot);
        continue;
      }
      const datagrams = slot.counters().datagrams;
      const queued = slot.memInfo().queueBytes;
      let p = this.progress.get(slot);
      if (!p || p.pid !== proc.pid) {
        p = { pid: proc.pid, datagrams, stuckSince: undefined };
        this.progress.set(slot, p);
      }
      if (datagrams !== p.datagrams || queued === 0) p.stuckSince = undefined;
      else p.stuckSince ??= now;
      p.datagrams = datagrams;
      const silentMs = now - proc.lastHeard;
      if (p.stuckSince !== undefined && now - p.stuckSince >= limit) {
        slot.replaceStalled(`it has read nothing for ${((now - p.stuckSince) / 1000).toFixed(1)} s while ${queued} bytes wait in its socket's queue`);
      } else if (silentMs >= limit) {
        slot.replaceStalled(`it has sent no heartbeat for ${(silentMs / 1000).toFixed(1)} s (its event loop is blocked, or it was stopped)`);
      }
    }
  }

  private checkMembership(): void {
    const slots = this.source.slots();
    if (slots.length === 0) return;
    const own = new Set(slots.map((s) => s.sock.inode));
    const address = this.source.address();
    let found: PortHolder[];
    try {
      found = competingHolders(address, this.source.port(), own);
    } catch {
      return;
    }
    this.intruders = found;
    for (const h of found) {
      if (this.reported.has(h.inode)) continue;
      this.reported.add(h.inode);
      this.log(
        `WARNING: a socket that is not ours is in this service's SO_REUSEPORT group and takes a share of its datagrams: ${describeHolder(h)}. ` +
          `Stop that process; it can only join because it runs as the same user.`,
      );
    }
  }

  private checkImbalance(now: number): void {
    // A stalled (or stalling: queue filling, nothing read) or restarting worker gets less
    // than its share through no fault of the hash: the advice would blame the wrong one.
    if (this.source.policy().name !== 'hash') return;
    if (this.source.slots().some((s) => s.state !== 'running' || this.progress.get(s)?.stuckSince !== undefined)) return;
    const counts = this.source.slots().map((s) => s.counters().datagrams);
    const { state, changed } = this.imbalance.observe(now, counts, HASH_ADVICE);
    if (!state.detected) return;
    // Name who causes it: the worker's top sender (sketch counts, since its process started).
    const slots = this.source.slots();
    const top = slots[state.worker!]?.topSenders()?.senders[0];
    const counted = slots.reduce((a, s) => a + (s.topSenders()?.total ?? 0), 0);
    const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
    state.topSender = top && counted > 0 ? { sender: top.sender, count: top.count, share: top.count / counted } : undefined;
    const who = state.topSender ? `: ${state.topSender.sender} alone sent ${pct(state.topSender.share)}` : '';
    state.message = `worker ${state.worker} holds ${pct(state.share!)}${who}; use --policy random`;
    if (changed) {
      this.log(
        `warning: worker ${state.worker} has received ${pct(state.share!)} of the datagrams for ${((now - Date.parse(state.since!)) / 1000).toFixed(0)} s ` +
          `(even would be ${pct(state.evenShare)})${who}: ${state.advice}`,
      );
    }
  }
}
