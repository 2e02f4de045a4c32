/**
 * The supervisor side's flush rounds. Every flush interval (aligned to the start):
 *
 * 1. broadcast `flush {id}` to the workers (those that said hello and have not sent a
 *    final partial);
 * 2. merge each worker's reply as it arrives; wait until every one has answered, or
 *    `flushTimeout` has passed — a worker that did not answer is logged and counted
 *    (`missing_partials`), and its partial, when it does come, is merged into the next
 *    flush (nothing is dropped, it is only late);
 * 3. finish the interval (merge.ts) and hand the result to the outputs (JSON file,
 *    Graphite) one flush at a time.
 *
 * On a graceful stop every worker drains its socket and its close hook sends a final
 * partial; the app's stop hook then runs (after all of them arrived), finishes a round
 * still open, and flushes the last partial interval (`final: true`).
 *
 * Workers are tracked by pid, so a reload (a new process on the slot while the old one
 * drains) and a crash restart (the old process is gone with its unflushed partial)
 * both work: a member that misses a round and has been replaced by a newer process on
 * its slot, or that missed three rounds in a row, is dropped from the rounds.
 */
import { sampledLog, type SampledLog, describeError } from '@shardgram/udp-core';
import type { Partial } from './aggregate.js';
import { GaugeStore, IntervalMerge, type FlushResult, type MergeLimits } from './merge.js';
import type { StatsdOptions } from './options.js';
import type { FlushRequest, FromWorker } from './protocol.js';
import { PromWriter, type PromFamily } from '@shardgram/udp-core/prom';
import { formatPrometheus, promLabelRecord } from './flush.js';
import { TimerHistograms } from './histogram.js';
import { DialectTotals } from './dialect-metrics.js';
import { Mapper } from './mapper.js';
import { effectiveTimerSchema } from './options.js';
import { DROP_REASONS, ExporterRegistry } from './prom-registry.js';

export type FlushOutput = (r: FlushResult) => Promise<void>;

/** Time and timers of the collector: the real ones by default; tests pass a manual clock. */
export interface CollectorClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Calls `fn` once after `ms`; returns what cancels it. An `unref` timer does not
   * keep the process alive by itself.
   */
  setTimer(fn: () => void, ms: number, opts?: { unref?: boolean }): () => void;
}

export const realClock: CollectorClock = {
  now: () => Date.now(),
  setTimer(fn, ms, opts) {
    const t = setTimeout(fn, ms);
    if (opts?.unref) t.unref();
    return () => clearTimeout(t);
  },
};

export interface CollectorDeps {
  options: StatsdOptions;
  log(line: string): void;
  broadcast(message: FlushRequest): void;
  /** Where each flush goes (e.g. the JSON file and Graphite). */
  outputs: { name: string; write: FlushOutput }[];
  /** Default: `realClock`. */
  clock?: CollectorClock;
}

interface Member {
  index: number;
  pid: number;
  /** Hello order: a higher number on the same index is a newer process. */
  order: number;
  misses: number;
}

interface Round {
  id: number;
  waiting: Map<number, Member>;
  finish: () => void;
  cancelTimer: () => void;
}

const MAX_MISSES = 3;

export class FlushCollector {
  private readonly o: StatsdOptions;
  private readonly members = new Map<number, Member>();
  private helloCount = 0;
  private readonly limits: MergeLimits;
  private pending: IntervalMerge;
  private readonly gauges = new GaugeStore();
  private round: Round | undefined;
  private roundSeq = 0;
  private cancelTimer: (() => void) | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly clock: CollectorClock;
  private startedAt: number;
  private lastFlushAt: number;
  /** Resolves the stop hook's wait once the last member has sent its final partial. */
  private onMembersGone: (() => void) | undefined;
  private readonly late: SampledLog;
  // For /metrics.
  private last: FlushResult | undefined;
  private readonly counterTotals = new Map<string, number>();
  /** The flush that last changed each counter total (they expire like gauges). */
  private readonly counterUpdated = new Map<string, number>();
  private readonly histograms: TimerHistograms;
  private readonly dialect = new DialectTotals();
  /** The statsd_exporter layout's metrics (promLayout=exporter). */
  private readonly registry: ExporterRegistry | undefined;
  private totals = {
    badLines: 0,
    metrics: 0,
    packets: 0,
    flushes: 0,
    missingPartials: 0,
    outputErrors: 0,
    namesTooLong: 0,
    keysOverLimit: 0,
    overflows: 0,
    gaugesExpired: 0,
  };

  constructor(private readonly deps: CollectorDeps) {
    this.o = deps.options;
    const schema = effectiveTimerSchema(this.o);
    this.limits = { maxKeys: this.o.maxKeys, gaugeExpiry: this.o.gaugeExpiry, timerSchema: schema };
    this.pending = new IntervalMerge(this.limits);
    this.clock = deps.clock ?? realClock;
    this.startedAt = this.clock.now();
    this.lastFlushAt = this.startedAt;
    this.histograms = new TimerHistograms(this.o.timerBucketsMs, this.o.maxKeys);
    this.registry =
      this.o.promLayout === 'exporter'
        ? new ExporterRegistry({
            mapper: new Mapper(this.o.mappingConfig),
            maxSeries: this.o.maxKeys,
            schema,
            maxBuckets: this.o.timerMaxBuckets,
            now: () => this.clock.now(),
          })
        : undefined;
    this.late = sampledLog(deps.log, 'late partial', { first: 20 });
  }

  /** Starts the flush timer. */
  start(): void {
    this.startedAt = this.clock.now();
    this.lastFlushAt = this.startedAt;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = this.o.flushIntervalMs;
    const delay = every - ((this.clock.now() - this.startedAt) % every);
    this.cancelTimer = this.clock.setTimer(
      () => {
        this.cancelTimer = undefined;
        this.chain = this.chain
          .then(() => this.flushRound())
          .catch((err: unknown) => this.deps.log(`flush failed: ${describeError(err, true)}`))
          .then(() => this.schedule());
      },
      delay,
      { unref: true },
    );
  }

  /** A failed delivery that an output counts itself (its backlog retries it): added to `output_errors`. */
  countOutputError(): void {
    this.totals.outputErrors++;
  }

  /** A message a worker sent (the app's supervisor `message` hook). */
  message(index: number, m: FromWorker): void {
    if (m.t === 'statsd.hello') {
      this.members.set(m.pid, { index, pid: m.pid, order: ++this.helloCount, misses: 0 });
      return;
    }
    this.merge(m.partial);
    const member = this.members.get(m.pid);
    const r = this.round;
    if (m.final) {
      this.members.delete(m.pid);
      if (this.members.size === 0) this.onMembersGone?.();
      if (r?.waiting.delete(m.pid) && r.waiting.size === 0) r.finish();
      return;
    }
    if (member) member.misses = 0;
    // A worker given up on after too many misses (and not replaced) is back: wait for it again.
    else if (![...this.members.values()].some((o) => o.index === index)) this.members.set(m.pid, { index, pid: m.pid, order: ++this.helloCount, misses: 0 });
    if (r && m.id === r.id) {
      if (r.waiting.delete(m.pid) && r.waiting.size === 0) r.finish();
    } else {
      this.late.note(() => `from worker ${index} (pid ${m.pid}) for flush round ${m.id}: merged into the next flush`);
    }
  }

  private merge(p: Partial): void {
    this.pending.add(p);
  }

  /** One round: ask, wait (bounded), flush. */
  private async flushRound(): Promise<void> {
    const id = ++this.roundSeq;
    const waiting = new Map(this.members);
    let missing: Member[] = [];
    if (waiting.size > 0) {
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          r.cancelTimer();
          if (this.round === r) this.round = undefined;
          missing = [...r.waiting.values()];
          resolve();
        };
        const r: Round = { id, waiting, finish, cancelTimer: this.clock.setTimer(() => finish(), this.o.flushTimeoutMs) };
        this.round = r;
        this.deps.broadcast({ t: 'statsd.flush', id });
      });
    }
    this.noteMissing(id, missing);
    await this.emit(
      false,
      missing.map((m) => m.index),
    );
  }

  private noteMissing(id: number, missing: Member[]): void {
    for (const m of missing) {
      m.misses++;
      this.totals.missingPartials++;
      const newer = [...this.members.values()].find((o) => o.index === m.index && o.order > m.order);
      let fate = 'flushing without it; its partial, if it comes, goes into the next flush';
      if (newer) fate = `it was replaced by pid ${newer.pid}: its figures since its last flush are lost unless they still come`;
      else if (m.misses >= MAX_MISSES) fate = `${m.misses} rounds in a row: no longer waiting for it`;
      this.deps.log(`flush round ${id}: no partial from worker ${m.index} (pid ${m.pid}) within ${this.o.flushTimeoutMs} ms; ${fate}`);
      if (newer || m.misses >= MAX_MISSES) this.members.delete(m.pid);
    }
  }

  private async emit(final: boolean, missingWorkers: number[]): Promise<void> {
    const now = this.clock.now();
    const r = this.pending.finish(
      this.gauges,
      this.o.percentiles,
      {
        timestamp: Math.round(now / 1000),
        flush: ++this.totals.flushes,
        final,
        interval_ms: now - this.lastFlushAt,
        missing_workers: missingWorkers,
      },
      (k, t) => (this.registry ? this.registry.timer(k, t) : this.histograms.observeFlush(k, t)),
      (k, c) => this.registry?.counter(k, c.positive, c.negatives, c.negativeSum),
    );
    this.lastFlushAt = now;
    if (this.registry) {
      // Gauges set or changed in this interval (the others keep their value and their ttl clock).
      for (const [k, v] of Object.entries(r.gauges)) if (this.gauges.updated.get(k) === r.flush) this.registry.gauge(k, v);
      for (const _k of Object.keys(r.sets)) this.registry.set();
    }
    this.last = r;
    this.addCounterTotals(r);
    this.dialect.add(r);
    this.totals.badLines += r.bad_lines_seen;
    this.totals.namesTooLong += r.names_too_long;
    this.totals.keysOverLimit += r.keys_over_limit;
    this.totals.overflows += r.overflows;
    this.totals.gaugesExpired += r.gauges_expired;
    this.totals.metrics += r.metrics_received;
    this.totals.packets += r.packets_received;
    for (const out of this.deps.outputs) {
      try {
        await out.write(r);
      } catch (err) {
        this.totals.outputErrors++;
        this.deps.log(`flush ${r.flush}: ${out.name} output failed: ${describeError(err)}`);
      }
    }
  }

  /**
   * Prometheus totals since the start: one that would overflow starts again from this
   * interval's value (a counter reset, which Prometheus handles) and is counted; one
   * idle for gaugeExpiry flushes is forgotten; no more than maxKeys are kept.
   */
  private addCounterTotals(r: FlushResult): void {
    for (const [k, v] of Object.entries(r.counters)) {
      const old = this.counterTotals.get(k);
      if (old === undefined && this.counterTotals.size >= this.o.maxKeys) continue;
      const sum = (old ?? 0) + v;
      if (!Number.isFinite(sum)) this.totals.overflows++;
      this.counterTotals.set(k, Number.isFinite(sum) ? sum : v);
      this.counterUpdated.set(k, r.flush);
    }
    if (this.o.gaugeExpiry <= 0) return;
    for (const [k, at] of this.counterUpdated) {
      if (r.flush - at < this.o.gaugeExpiry) continue;
      this.counterUpdated.delete(k);
      this.counterTotals.delete(k);
    }
  }

  /**
   * The stop hook: waits (bounded) for the final partials of workers still counted,
   * closes an open round, flushes the last partial interval, waits for the outputs.
   */
  async stop(): Promise<void> {
    if (this.stopped) return this.chain;
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    // Every worker has exited, and their final partials normally arrived before this
    // hook; a process's last IPC message can still be in flight when its exit is seen,
    // so wait for the last final partial, for a bounded time (a crashed worker never sends one).
    if (this.members.size > 0) {
      await new Promise<void>((resolve) => {
        const cancel = this.clock.setTimer(() => resolve(), Math.min(this.o.flushTimeoutMs, 1000));
        this.onMembersGone = () => {
          cancel();
          resolve();
        };
      });
      this.onMembersGone = undefined;
    }
    for (const m of this.members.values())
      this.deps.log(`stop: no final partial from worker ${m.index} (pid ${m.pid}); its figures since its last flush are lost`);
    // Nobody else will answer an open round.
    this.round?.finish();
    await this.chain;
    this.chain = this.emit(true, []);
    return this.chain;
  }

  /** GET /metrics text. */
  metrics(): string {
    return this.writer().text();
  }

  /** GET /metrics as families (the protobuf format: native histograms). */
  metricFamilies(): PromFamily[] {
    return this.writer().families();
  }

  /** The app's /metrics as families: the collector's, then those `also` writes (the outputs'). */
  writer(also?: { write(w: PromWriter): void }): PromWriter {
    const w = new PromWriter();
    const overflows = this.totals.overflows + this.histograms.overflowResets;
    if (this.registry) {
      this.registry.write(w);
      formatPrometheus({ last: this.last, counterTotals: this.counterTotals, ...this.totals, overflows }, w, true);
      w.family(
        'shardgram_statsd_prometheus_dropped_total',
        'counter',
        'StatsD metrics not served on /metrics, as statsd_exporter would not serve them (reason: set, mapping_drop, empty_name, conflict, illegal_negative_counter, tag, series_limit); the other outputs still have them.',
      );
      for (const reason of DROP_REASONS) w.sample('shardgram_statsd_prometheus_dropped_total', { reason }, this.registry.dropped[reason]);
    } else {
      formatPrometheus({ last: this.last, counterTotals: this.counterTotals, ...this.totals, overflows }, w);
      this.histograms.write(w, promLabelRecord);
    }
    this.dialect.write(w);
    also?.write(w);
    return w;
  }

  /** The last flush (for tests and embedding). */
  get lastFlush(): FlushResult | undefined {
    return this.last;
  }
}
