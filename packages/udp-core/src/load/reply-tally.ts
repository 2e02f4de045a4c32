/**
 * The replies of a load run, tallied as they arrive: which probes came back (once, or
 * again: duplicates), which datagrams were not this run's replies (strays), and per
 * worker its replies, round trips and pids. It also keeps which worker served each
 * sender, so that a probe that never came back is put down to that worker where there
 * was only one.
 */
import { parseEchoReply } from '../app/builtin/echo-format.js';
import { decodeProbe, type Probe } from './probe.js';

export interface WorkerLoadStats {
  worker: number;
  pids: number[];
  replies: number;
  /** Senders whose every reply came from this worker. */
  senders: number;
  rttMs: { p50: number; p90: number; p99: number; max: number };
}

/** What the replies say of the probes that never came back. */
export interface LossAttribution {
  /** Lost probes attributed to a worker through their sender, where each sender was served by one worker. */
  lostByWorker: Record<number, number>;
  unattributedLoss: number;
}

/** senderWorker's marks: no reply yet, and replies from more than one worker. */
const NO_WORKER = -1;
const MANY_WORKERS = -2;

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function probeOf(payload: Buffer): Probe | undefined {
  try {
    return decodeProbe(payload);
  } catch {
    return undefined;
  }
}

export class ReplyTally {
  /** Distinct probes answered. */
  received = 0;
  duplicates = 0;
  stray = 0;
  /** When the last datagram came in, reply or not (performance.now()). */
  lastReplyAt: number;
  /** Called after each probe answered for the first time. */
  onAnswer: (() => void) | undefined;
  private readonly seen: Uint8Array;
  /** Per sender: the one worker that answered it, or NO_WORKER, or MANY_WORKERS. */
  private readonly senderWorker: Int32Array;
  private readonly rtts = new Map<number, number[]>();
  private readonly pids = new Map<number, Set<number>>();
  private readonly replies: number[] = [];

  constructor(
    private readonly count: number,
    sources: number,
    now: number,
  ) {
    this.seen = new Uint8Array(count);
    this.senderWorker = new Int32Array(sources).fill(NO_WORKER);
    this.lastReplyAt = now;
  }

  /** A datagram that came in on source socket `sender` at `now`. */
  add(msg: Buffer, sender: number, now: number): void {
    this.lastReplyAt = now;
    const reply = parseEchoReply(msg);
    const probe = reply ? probeOf(reply.payload) : undefined;
    if (!reply || !probe || probe.seq >= this.count || probe.sender !== sender) {
      this.stray++;
      return;
    }
    if (this.seen[probe.seq]) {
      this.duplicates++;
      return;
    }
    this.seen[probe.seq] = 1;
    this.received++;
    const w = reply.worker;
    this.replies[w] = (this.replies[w] ?? 0) + 1;
    let rtts = this.rtts.get(w);
    if (!rtts) this.rtts.set(w, (rtts = []));
    rtts.push(now - probe.sentAt);
    let pids = this.pids.get(w);
    if (!pids) this.pids.set(w, (pids = new Set()));
    pids.add(reply.pid);
    const prev = this.senderWorker[sender]!;
    this.senderWorker[sender] = prev === NO_WORKER || prev === w ? w : MANY_WORKERS;
    this.onAnswer?.();
  }

  /** Distinct replies so far, by worker index. */
  perWorker(): number[] {
    return [...this.replies].map((v) => v ?? 0);
  }

  /** The probes among the first `sent` that never came back, by the worker that served their sender (`senderOf`, asked in increasing order). */
  attributeLoss(sent: number, senderOf: (seq: number) => number): LossAttribution {
    const lostByWorker: Record<number, number> = {};
    let unattributedLoss = 0;
    for (let seq = 0; seq < sent; seq++) {
      if (this.seen[seq]) continue;
      const w = this.senderWorker[senderOf(seq)]!;
      if (w >= 0) lostByWorker[w] = (lostByWorker[w] ?? 0) + 1;
      else unattributedLoss++;
    }
    return { lostByWorker, unattributedLoss };
  }

  /** Each worker that answered, by index: its pids, replies, senders and round-trip percentiles. */
  workers(): WorkerLoadStats[] {
    return [...this.rtts.keys()]
      .sort((a, b) => a - b)
      .map((w) => {
        const rtts = Float64Array.from(this.rtts.get(w) ?? []).sort();
        return {
          worker: w,
          pids: [...(this.pids.get(w) ?? [])],
          replies: this.replies[w] ?? 0,
          senders: [...this.senderWorker].filter((x) => x === w).length,
          rttMs: { p50: percentile(rtts, 0.5), p90: percentile(rtts, 0.9), p99: percentile(rtts, 0.99), max: rtts[rtts.length - 1] ?? 0 },
        };
      });
  }
}
