/**
 * Health checks run once a second while the service runs: one worker taking far
 * more than its share under `hash` (the kernel hash puts each source port on one
 * socket) is logged and shown in /stats.
 */
import { ImbalanceDetector, type ImbalanceOptions, type ImbalanceState } from '../imbalance.js';
import type { PolicySpec } from '../steering/steering.js';
import type { Slot } from './slot.js';

export const MONITOR_INTERVAL_MS = 1000;

const HASH_ADVICE =
  'the kernel hash sends each source port to one worker; a few busy senders overload one. Use --policy random (even per datagram) or --policy key (per key, e.g. StatsD metric name).';

export class Monitor {
  private readonly imbalance: ImbalanceDetector;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: { slots(): readonly Slot[]; policy(): PolicySpec },
    private readonly log: (line: string) => void,
    imbalance?: ImbalanceOptions,
  ) {
    this.imbalance = new ImbalanceDetector(imbalance);
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
    if (this.source.policy().name !== 'hash') return;
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
