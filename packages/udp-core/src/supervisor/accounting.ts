/**
 * Accounting: every slot's counters, the totals of sockets retired by a shrink, and
 * the report. Nothing counted is ever forgotten: a retired socket's counts move
 * into `retired` and stay in `total`.
 */
import { addInto, zeroCounters, type Counters } from '../stats/counters.js';
import { noRetired, summarize, type RetiredTotals, type StatsReport, type WorkerRow } from '../stats/report.js';
import type { Slot } from './slot.js';

export class Accounting {
  private readonly retired: RetiredTotals = noRetired();
  private inherited: StatsReport['inherited'];

  /** Counts of the service this one took over from: they carry on in `total`. */
  inherit(from: Partial<Counters>, pid: number): void {
    this.inherited = { ...addInto(zeroCounters(), from), pid };
  }

  /** Folds a slot that leaves the group for good into the retired totals. */
  retire(slot: Slot): void {
    addInto(this.retired, slot.counters());
    this.retired.workers++;
  }

  row(slot: Slot, engine: string): WorkerRow {
    const mem = slot.memInfo();
    return {
      index: slot.index,
      pid: slot.current?.pid ?? slot.lastPid,
      state: slot.state,
      engine,
      ...slot.counters(),
      queueBytes: mem.queueBytes,
      rcvbuf: mem.rcvbuf,
      topSenders: slot.topSenders(),
    };
  }

  report(service: StatsReport['service'], slots: readonly Slot[]): StatsReport {
    return summarize(
      service,
      slots.map((s) => this.row(s, service.engine)),
      this.retired,
      this.inherited,
    );
  }
}
