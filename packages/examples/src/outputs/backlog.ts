/**
 * A bounded backlog in front of one output (a Graphite server, a file; later a
 * Prometheus remote-write endpoint), so that a slow or dead destination delays only
 * its own queue, never the caller (the flush clock) or the other outputs.
 *
 * - `push` never waits: the item joins the queue; one sender loop delivers the queue
 *   in order, a batch at a time (`send`).
 * - A failed attempt keeps its batch at the head of the queue and is retried after a
 *   backoff that doubles from `retryMinMs` up to `retryMaxMs`, each wait drawn uniformly
 *   between half and all of it (jitter: senders that failed together do not retry
 *   together; `random` is injectable). A `RetryLater` failure (a 429 or 503 with
 *   Retry-After) waits at least what the destination asked, capped by `retryMaxMs`. The
 *   first success resets the backoff. The failure is logged once (and again only if the
 *   reason changes), then counted; the recovery is logged with what happened meanwhile.
 * - At most `capacity` units wait (what `units` says an item weighs: lines, samples,
 *   flushes), and at most `capacityBytes` bytes when `bytes` is given; the batch being
 *   sent (at most `maxBatchUnits` ≤ `capacity`) is held on top, so what is held stays
 *   below twice the capacity, and an item no heavier than the capacity is never dropped
 *   while the destination keeps up. A push that would pass a cap drops the oldest
 *   waiting items (never the batch being sent) and, if the item alone passes it, the
 *   new item; every unit dropped is counted (`dropped`), none silently.
 * - A batch the destination refuses for good (`send` rejects with `Undeliverable`: a
 *   remote write receiver's 400, say) is not retried, since sending it again cannot
 *   help: its units are counted as `rejected`, the reason logged (once per reason
 *   until a delivery succeeds), and the queue goes on at once.
 * - `close` stops taking items and tries to deliver what is left until a deadline;
 *   what is still there then is counted as `droppedAtClose`, and the attempt in flight
 *   is aborted (the `AbortSignal` given to `send`), so that it can neither deliver
 *   what was counted as dropped nor keep a socket or a timer alive.
 *
 * Every unit pushed ends in exactly one of `delivered`, `dropped`, `rejected`,
 * `droppedAtClose`, or is still `queued`:
 * accepted = delivered + dropped + rejected + droppedAtClose + queued.
 */
import type { PromWriter } from '@shardgram/udp-core/prom';
import { describeError } from '@shardgram/udp-core';

/** What `send` rejects with when the destination refused the batch for good: it is counted as rejected, not retried. */
export class Undeliverable extends Error {
  override readonly name = 'Undeliverable';
}

/** A failure (retried) after which the destination asked to wait `afterMs` (HTTP Retry-After). */
export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  constructor(
    message: string,
    readonly afterMs: number,
  ) {
    super(message);
  }
}

export interface BacklogOptions<T> {
  /** For log lines: `graphite 127.0.0.1:2003`. */
  name: string;
  /** Most units waiting (the batch being sent is on top). */
  capacity: number;
  /** What one item weighs, in the unit of `capacity` and of the counts (≥ 0). */
  units(item: T): number;
  /** Most bytes waiting, with `bytes` (a second cap, e.g. on encoded size). */
  capacityBytes?: number;
  /** What one item weighs in bytes, for `capacityBytes`. */
  bytes?(item: T): number;
  /**
   * Delivers a batch (in order); rejects when it was not delivered (it is then retried).
   * `signal` aborts when `close` gives up on it: stop, free what it holds.
   */
  send(batch: readonly T[], signal: AbortSignal): Promise<void>;
  /** Most units per attempt (a first item heavier than this goes alone). Default and most: `capacity`. */
  maxBatchUnits?: number;
  /** Default 100. */
  retryMinMs?: number;
  /** Default 10 000. */
  retryMaxMs?: number;
  /** What the units are, for log lines (`lines`, `flushes`). */
  unitName?: string;
  log(line: string): void;
  /** Called at each failed attempt and each rejected batch (after it is counted), e.g. to feed a service-wide error counter. */
  onFailedAttempt?(): void;
  now?: () => number;
  /** Uniform in [0, 1), for the jitter. Default Math.random. */
  random?: () => number;
}

export interface BacklogCounts {
  /** Units pushed. */
  accepted: number;
  delivered: number;
  /** Dropped because the backlog was full. */
  dropped: number;
  /** Refused for good by the destination (`Undeliverable`), not retried. */
  rejected: number;
  /** Still undelivered when `close` gave up. */
  droppedAtClose: number;
  /** Units waiting now (the batch being sent included). */
  queued: number;
  /** Attempts that failed. */
  failedAttempts: number;
  /** The `capacity`. */
  capacity: number;
}

interface Entry<T> {
  item: T;
  units: number;
  bytes: number;
}

export class Backlog<T> {
  private queue: Entry<T>[] = [];
  /** Index of the first live entry of `queue` (shifting a long array one at a time is slow). */
  private head = 0;
  private inflight: Entry<T>[] = [];
  private queuedUnits = 0;
  private inflightUnits = 0;
  private queuedBytes = 0;
  private inflightAbort: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  /** The current outage: since when, its last reason, what it cost. */
  private outage: { since: number; reason: string; attempts: number; droppedAtStart: number } | undefined;
  private fullSaid = false;
  /** The last rejection reason logged (said again only when it changes, or after a delivery). */
  private rejectedSaid: string | undefined;
  private closing = false;
  private closed = false;
  private idle: (() => void) | undefined;
  private readonly now: () => number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly unit: string;
  private readonly random: () => number;
  private readonly maxBatch: number;
  private readonly capBytes: number;
  private readonly c = { accepted: 0, delivered: 0, dropped: 0, rejected: 0, droppedAtClose: 0, failedAttempts: 0 };

  constructor(private readonly o: BacklogOptions<T>) {
    if (!(Number.isInteger(o.capacity) && o.capacity >= 1)) throw new RangeError(`capacity must be a whole number of at least 1; got ${o.capacity}`);
    this.now = o.now ?? Date.now;
    this.minMs = o.retryMinMs ?? 100;
    this.maxMs = Math.max(this.minMs, o.retryMaxMs ?? 10_000);
    this.unit = o.unitName ?? 'units';
    this.random = o.random ?? Math.random;
    this.maxBatch = Math.min(o.capacity, o.maxBatchUnits ?? o.capacity);
    this.capBytes = o.bytes ? (o.capacityBytes ?? Infinity) : Infinity;
  }

  /** Takes an item for delivery; never waits, never throws (a full backlog drops and counts). */
  push(item: T): void {
    const units = this.o.units(item);
    this.c.accepted += units;
    if (this.closing) {
      this.c.droppedAtClose += units;
      return;
    }
    const bytes = this.o.bytes ? this.o.bytes(item) : 0;
    // Heavier than the backlog: no eviction makes room for it.
    if (units > this.o.capacity || bytes > this.capBytes) {
      this.drop(units, bytes > this.capBytes);
      return;
    }
    while ((this.queuedUnits + units > this.o.capacity || this.queuedBytes + bytes > this.capBytes) && this.head < this.queue.length) {
      const byBytes = this.queuedUnits + units <= this.o.capacity;
      const old = this.queue[this.head]!;
      this.queue[this.head++] = undefined as unknown as Entry<T>;
      this.queuedUnits -= old.units;
      this.queuedBytes -= old.bytes;
      this.drop(old.units, byBytes);
    }
    this.compact();
    this.queue.push({ item, units, bytes });
    this.queuedUnits += units;
    this.queuedBytes += bytes;
    this.pump();
  }

  /** The counts so far. */
  counts(): BacklogCounts {
    return { ...this.c, queued: this.queuedUnits + this.inflightUnits, capacity: this.o.capacity };
  }

  /**
   * Stops taking items; tries to deliver what is queued (at once, then with the
   * backoff) until `timeoutMs` has passed; counts what is left as dropped at close.
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.pendingUnits() > 0) {
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      this.pump();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => resolve(), timeoutMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
        if (this.pendingUnits() === 0) this.idle();
      });
      this.idle = undefined;
    }
    this.closed = true;
    this.inflightAbort?.abort(new Error('given up at stop'));
    this.inflightAbort = undefined;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const left = this.pendingUnits();
    if (left > 0) {
      this.c.droppedAtClose += left;
      this.o.log(`${this.o.name}: ${left} ${this.unit} not delivered at stop${this.outage ? ` (${this.outage.reason})` : ''}; counted as dropped`);
    }
    this.queue.length = 0;
    this.head = 0;
    this.inflight = [];
    this.queuedUnits = 0;
    this.queuedBytes = 0;
    this.inflightUnits = 0;
  }

  private pendingUnits(): number {
    return this.queuedUnits + this.inflightUnits;
  }

  /** `byBytes`: the byte cap, not the unit cap, was passed. */
  private drop(units: number, byBytes = false): void {
    this.c.dropped += units;
    if (this.fullSaid) return;
    this.fullSaid = true;
    const cap = byBytes ? `${this.capBytes} bytes` : `${this.o.capacity} ${this.unit}`;
    this.o.log(
      `${this.o.name}: backlog full (${cap}): dropping the oldest; every ${singular(this.unit)} dropped is counted (said once until it is delivered to again)`,
    );
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Sends the next batch unless one is in flight or a retry is waiting. */
  private pump(): void {
    if (this.closed || this.inflight.length || this.retryTimer || this.head >= this.queue.length) return;
    const max = this.maxBatch;
    const batch: Entry<T>[] = [];
    let units = 0;
    let bytes = 0;
    while (this.head < this.queue.length) {
      const e = this.queue[this.head]!;
      if (batch.length > 0 && units + e.units > max) break;
      batch.push(e);
      units += e.units;
      bytes += e.bytes;
      this.queue[this.head++] = undefined as unknown as Entry<T>;
    }
    this.compact();
    this.inflight = batch;
    this.inflightUnits = units;
    this.queuedUnits -= units;
    this.queuedBytes -= bytes;
    const abort = new AbortController();
    this.inflightAbort = abort;
    let sent: Promise<void>;
    try {
      sent = this.o.send(
        batch.map((e) => e.item),
        abort.signal,
      );
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      () => this.settled(batch, null),
      (err: unknown) => this.settled(batch, err),
    );
  }

  private settled(batch: Entry<T>[], err: unknown): void {
    if (this.closed || this.inflight !== batch) return; // given up at close: already counted
    this.inflight = [];
    this.inflightAbort = undefined;
    const units = this.inflightUnits;
    this.inflightUnits = 0;
    let waitMs = 0;
    if (err === null) {
      this.c.delivered += units;
      this.backoffMs = 0;
      if (this.outage) {
        const o = this.outage;
        this.o.log(
          `${this.o.name}: delivering again after ${((this.now() - o.since) / 1000).toFixed(1)} s and ${o.attempts} failed attempts` +
            (this.c.dropped > o.droppedAtStart
              ? ` (${this.c.dropped - o.droppedAtStart} ${this.unit} dropped meanwhile, backlog full)`
              : ' (nothing dropped meanwhile)'),
        );
        this.outage = undefined;
      }
      this.fullSaid = false;
      this.rejectedSaid = undefined;
    } else if (err instanceof Undeliverable) {
      // Refused for good: sending it again cannot help; counted, and the queue goes on.
      this.c.rejected += units;
      if (err.message !== this.rejectedSaid) {
        this.rejectedSaid = err.message;
        this.o.log(
          `${this.o.name}: ${units} ${this.unit} refused, not retried (${err.message}); every refused ${singular(this.unit)} is counted (said again when the reason changes, or after a delivery)`,
        );
      }
      this.o.onFailedAttempt?.();
    } else {
      // Back at the head of the queue, in order.
      this.queue = [...batch, ...this.queue.slice(this.head)];
      this.head = 0;
      this.queuedUnits += units;
      this.queuedBytes += batch.reduce((a, e) => a + e.bytes, 0);
      this.c.failedAttempts++;
      this.backoffMs = this.backoffMs ? Math.min(this.maxMs, this.backoffMs * 2) : this.minMs;
      waitMs = retryWaitMs(this.backoffMs, this.random(), err instanceof RetryLater ? err.afterMs : 0, this.maxMs);
      const reason = describeError(err);
      if (!this.outage) {
        this.outage = { since: this.now(), reason, attempts: 0, droppedAtStart: this.c.dropped };
        this.o.log(
          `${this.o.name}: ${reason}; keeping up to ${this.o.capacity} ${this.unit} and retrying (backoff ${this.minMs} ms doubling to ${this.maxMs} ms, jittered); said once, then counted`,
        );
      } else if (reason !== this.outage.reason) {
        this.o.log(`${this.o.name}: still failing, now: ${reason}`);
      }
      this.outage.reason = reason;
      this.outage.attempts++;
      this.o.onFailedAttempt?.();
    }
    if (this.pendingUnits() === 0) this.idle?.();
    if (err !== null && !(err instanceof Undeliverable) && !this.closed) {
      const t = setTimeout(
        () => {
          this.retryTimer = undefined;
          this.pump();
        },
        this.closing ? Math.min(waitMs, 250) : waitMs,
      );
      t.unref();
      this.retryTimer = t;
      return;
    }
    this.pump();
  }
}

/**
 * The wait before a retry: uniform between half and all of `backoffMs` (`random` in
 * [0, 1)), and at least `retryAfterMs` (what the destination asked), capped by `maxMs`.
 */
export function retryWaitMs(backoffMs: number, random: number, retryAfterMs: number, maxMs: number): number {
  const jittered = backoffMs / 2 + (backoffMs / 2) * Math.min(Math.max(random, 0), 1);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs, maxMs)));
}

/** The backlogs' counts as Prometheus families `<prefix>_delivered_total{output}`, `_dropped_total{output,reason}` (backlog_full, rejected, stop), `_backlog{output}`, `_backlog_capacity{output}`, `_failed_attempts_total{output}`. */
export function writeBacklogMetrics(w: PromWriter, prefix: string, unitsHelp: string, outputs: readonly { output: string; counts: BacklogCounts }[]): void {
  const each = (name: string, type: 'counter' | 'gauge', help: string, value: (c: BacklogCounts) => number): void => {
    w.family(name, type, help);
    for (const { output, counts } of outputs) w.sample(name, { output }, value(counts));
  };
  each(`${prefix}_delivered_total`, 'counter', `Delivered by the output (${unitsHelp}).`, (c) => c.delivered);
  w.family(
    `${prefix}_dropped_total`,
    'counter',
    `Never delivered (${unitsHelp}), by reason: backlog_full, rejected (refused for good by the destination, not retried), stop (still queued when the service stopped).`,
  );
  for (const { output, counts } of outputs) {
    w.sample(`${prefix}_dropped_total`, { output, reason: 'backlog_full' }, counts.dropped);
    w.sample(`${prefix}_dropped_total`, { output, reason: 'rejected' }, counts.rejected);
    w.sample(`${prefix}_dropped_total`, { output, reason: 'stop' }, counts.droppedAtClose);
  }
  each(`${prefix}_backlog`, 'gauge', `Waiting for delivery (${unitsHelp}).`, (c) => c.queued);
  each(`${prefix}_backlog_capacity`, 'gauge', `Most held before the oldest are dropped (${unitsHelp}).`, (c) => c.capacity);
  each(`${prefix}_failed_attempts_total`, 'counter', 'Delivery attempts that failed (each is retried with backoff).', (c) => c.failedAttempts);
}

/** `lines` → `line`, `flushes` → `flush`, `samples` → `sample`: one of the units, for log lines. */
function singular(unit: string): string {
  return unit.endsWith('shes') ? unit.slice(0, -2) : unit.replace(/s$/, '');
}
