/**
 * The statsd app's flush outputs, JSON lines (`jsonOut`), Graphite plaintext
 * (`graphite`) and Prometheus remote write (`remoteWrite`), each behind a backlog of its
 * own (../outputs/backlog.ts): a flush is formatted and queued at once, so a slow, full
 * or dead output never delays the flush clock or the other outputs. A failed delivery
 * is retried with backoff; what a full backlog drops, what a receiver refuses for good,
 * and what is still queued at stop, is counted (Graphite in lines, JSON in flushes,
 * remote write in samples) on /metrics and in the stop line.
 *
 * - Graphite: one TCP connection per attempt (as Etsy's backend), up to 10 000 lines
 *   of queued flushes in it; delivered when the server closes its side after reading
 *   the lot, failed on an error or 5 s without progress (../outputs/graphite.ts: a
 *   slow but steady Graphite is waited for). A failed attempt is sent again whole (a
 *   line may then reach Graphite twice: the same value at the same time, which
 *   Graphite stores once). A flush is queued in parts of at most that many lines (and
 *   at most `graphiteBacklog`), so a flush bigger than the backlog is still delivered
 *   part after part to a Graphite that keeps up. After a failed attempt, the next
 *   successful one first sends again what was delivered in the `graphiteReplayMs`
 *   before the failure (../outputs/graphite-replay.ts: plaintext has no acknowledgement,
 *   and a server stopping may lose what it had read); counted as `replayed` lines.
 * - JSON: appended as whole lines or not at all (a short write on a full disk is
 *   rolled back; a removed file is created again: ../syslog/writer.ts). The write is
 *   synchronous, on the flush's own path: a disk that blocks (not one that fails)
 *   delays the flush clock by as long (docs/statsd.md).
 * - At stop, each backlog keeps delivering for `outputStopTimeoutMs`, then counts what
 *   is left and abandons the attempt in flight (its socket closed).
 * - Remote write: at each flush, the app's /metrics families (`families`: the same
 *   series, names and labels a scrape gets) at the flush time (../outputs/remote-write.ts).
 */
import type { PromFamily, PromWriter } from '@shardgram/udp-core/prom';
import { Backlog, writeBacklogMetrics, type BacklogCounts } from '../outputs/backlog.js';
import { ReplayWindow } from '../outputs/graphite-replay.js';
import { RemoteWriteOutput } from '../outputs/remote-write.js';
import { AppendWriter } from '../syslog/writer.js';
import type { FlushOutput } from './collector.js';
import { formatGraphite, formatJson, sendGraphite } from './flush.js';
import type { StatsdOptions } from './options.js';
import { describeError } from '@shardgram/udp-core';

/** Graphite lines sent over one connection at most (and the most lines of one queued part of a flush). */
export const GRAPHITE_BATCH_LINES = 10_000;

function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** `text` (whole lines) cut in parts of at most `max` lines each. */
export function splitLines(text: string, max: number): string[] {
  const parts: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = start;
    for (let n = 0; n < max; n++) {
      const nl = text.indexOf('\n', end);
      if (nl < 0) {
        end = text.length;
        break;
      }
      end = nl + 1;
    }
    parts.push(text.slice(start, end));
    start = end;
  }
  return parts;
}

interface Output {
  /** `graphite`, `json` or `remote_write`: the `output` label. */
  id: string;
  /** For log lines. */
  name: string;
  unit: string;
  backlog: { counts(): BacklogCounts; close(timeoutMs: number): Promise<void> };
  /** Graphite: lines sent again after a failure (the replay window). */
  replayed?: () => number;
  /** After the backlog closed (may throw: logged). */
  close(): void;
}

export class FlushOutputs {
  private readonly outputs: Output[] = [];
  private readonly stopTimeoutMs: number;
  /** For the collector: formatting and queueing, never waiting for a delivery. */
  readonly list: { name: string; write: FlushOutput }[] = [];

  /**
   * Opens the JSON file (throws when it cannot be appended to) and sets up the
   * backlogs; `onFailedAttempt` is called at each failed delivery (the collector's `output_errors`);
   * `families` gives the app's /metrics families at a flush (remote write sends them).
   */
  constructor(o: StatsdOptions, log: (line: string) => void, onFailedAttempt: () => void = () => undefined, families: () => readonly PromFamily[] = () => []) {
    this.stopTimeoutMs = o.outputStopTimeoutMs;
    const retry = { retryMaxMs: o.outputRetryMaxMs, log, onFailedAttempt };
    if (o.jsonOut !== undefined) {
      const writer = new AppendWriter(o.jsonOut);
      const name = `jsonOut ${o.jsonOut}`;
      const backlog = new Backlog<string>({
        ...retry,
        name,
        capacity: o.jsonBacklog,
        unitName: 'flushes',
        units: () => 1,
        send: async (batch) => void writer.write(Buffer.from(batch.join(''), 'utf8')),
      });
      this.add({ id: 'json', name, unit: 'flushes', backlog, close: () => writer.close() }, (r) => backlog.push(formatJson(r)));
    }
    if (o.graphite) {
      const g = o.graphite;
      const name = `graphite ${g.host}:${g.port}`;
      // Bounded in lines as the backlog is: memory at most about one more backlog.
      const replay = new ReplayWindow({ windowMs: o.graphiteReplayMs, maxLines: o.graphiteBacklog });
      const backlog = new Backlog<string>({
        ...retry,
        name,
        capacity: o.graphiteBacklog,
        unitName: 'lines',
        units: lineCount,
        maxBatchUnits: GRAPHITE_BATCH_LINES,
        send: async (batch, signal) => {
          const text = batch.join('');
          try {
            await sendGraphite(g, replay.prefix() + text, { signal });
          } catch (err) {
            replay.failed();
            throw err;
          }
          replay.delivered(text, lineCount(text));
        },
      });
      const partLines = Math.min(GRAPHITE_BATCH_LINES, o.graphiteBacklog);
      this.add({ id: 'graphite', name, unit: 'lines', backlog, close: () => undefined, replayed: () => replay.replayed }, (r) => {
        const text = formatGraphite(r, o.graphitePrefix, o.flushIntervalMs);
        for (const part of splitLines(text, partLines)) backlog.push(part);
      });
    }
    if (o.remoteWrite) {
      const rw = new RemoteWriteOutput({
        target: o.remoteWrite,
        capacity: o.remoteWriteBacklog,
        capacityBytes: o.remoteWriteBacklogBytes,
        retryMaxMs: o.outputRetryMaxMs,
        log,
        onFailedAttempt,
      });
      this.add(
        {
          id: 'remote_write',
          name: rw.name,
          unit: 'samples',
          backlog: { counts: () => rw.backlog.counts(), close: (ms) => rw.close(ms) },
          close: () => undefined,
        },
        () => rw.push(families()),
      );
    }
  }

  private add(out: Output, take: (r: Parameters<FlushOutput>[0]) => void): void {
    this.outputs.push(out);
    this.list.push({ name: out.name, write: async (r) => take(r) });
  }

  counts(id: string): BacklogCounts | undefined {
    return this.outputs.find((out) => out.id === id)?.backlog.counts();
  }

  /** Lines the output sent again after a failure (Graphite's replay window); undefined for an output without one. */
  replayed(id: string): number | undefined {
    return this.outputs.find((out) => out.id === id)?.replayed?.();
  }

  /** `shardgram_statsd_output_*{output}` families, into the app's /metrics. */
  write(w: PromWriter): void {
    if (!this.outputs.length) return;
    writeBacklogMetrics(
      w,
      'shardgram_statsd_output',
      'graphite: lines, json: flushes, remote_write: samples',
      this.outputs.map((out) => ({ output: out.id, counts: out.backlog.counts() })),
    );
    const replaying = this.outputs.filter((out) => out.replayed);
    if (!replaying.length) return;
    w.family(
      'shardgram_statsd_output_replayed_total',
      'counter',
      'Delivered lines sent again after a failed attempt (graphite: lines delivered within graphiteReplay before it; the server stores each point once).',
    );
    for (const out of replaying) w.sample('shardgram_statsd_output_replayed_total', { output: out.id }, out.replayed!());
  }

  /** After the last flush: delivers what is queued (bounded), counts the rest, closes the file; one line per output. */
  async close(log: (line: string) => void, timeoutMs = this.stopTimeoutMs): Promise<void> {
    await Promise.all(this.outputs.map((out) => out.backlog.close(timeoutMs)));
    for (const out of this.outputs) {
      try {
        out.close();
      } catch (err) {
        log(`closing ${out.name} failed: ${describeError(err)}`);
      }
      const c = out.backlog.counts();
      log(
        `statsd: ${out.name}: ${c.delivered} of ${c.accepted} ${out.unit} delivered, ${c.dropped} dropped (backlog full), ` +
          (c.rejected ? `${c.rejected} refused by the receiver, ` : '') +
          `${c.droppedAtClose} dropped at stop, ${c.failedAttempts} failed attempts` +
          (out.replayed ? `, ${out.replayed()} ${out.unit} replayed` : ''),
      );
    }
  }
}
