/**
 * The load generator behind `shardgram load`: a bounded burst of protobuf probes
 * (sender, sequence number, send time) from many source ports, with an optional
 * rate limit. Against the echo app, the replies give loss, duplicates and
 * round-trip percentiles per worker.
 *
 * Two senders: `native` (default) sends batches of prebuilt probes with sendmmsg
 * through libc (sender.ts) and saturates a receiver; `dgram` sends one
 * `socket.send` per probe through Node. Replies are read through node:dgram either way.
 *
 * A run, step by step (runLoad): the options checked once (planOf), the source sockets
 * opened (openSources), the replies tallied as they come (reply-tally.ts), one of the
 * two send phases (sendNative, sendDgram), the wait for replies (repliesIn), then the
 * loss put down to workers and the report (lossOf, reportOf).
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { invalidArg } from '../errors.js';
import { familyOf, sourceBindAddress } from '../ffi/sockaddr.js';
import { readProcUdp, type ProcUdpRow } from '../ffi/holders.js';
import { NativeSender, checkLoadOption, probePad } from './sender.js';
import { encodeProbe } from './probe.js';
import { DEFAULTS, LOAD_DEFAULTS, LOAD_LIMITS } from '../defaults.js';
import { ReplyTally, type LossAttribution, type WorkerLoadStats } from './reply-tally.js';
import { SenderRuns } from './sender-runs.js';

export type { WorkerLoadStats } from './reply-tally.js';

export type LoadSender = 'native' | 'dgram';

export interface LoadOptions {
  address?: string;
  port: number;
  /** Number of source sockets (source ports). Default 64. */
  sources?: number;
  /** Datagrams to send in all. Default 10 000. */
  count?: number;
  /** Datagrams per second; 0 = as fast as possible. Default 0. */
  rate?: number;
  /** Datagram size in bytes (LOAD_LIMITS.size: at least a probe's header). Default 64. */
  size?: number;
  /** How long to wait for replies after the last send, in ms. Default 1000. */
  replyTimeoutMs?: number;
  /** Hard limit on the whole run, in ms. Default 120 000. */
  maxDurationMs?: number;
  /** Expect echo replies (otherwise just send). Default true. */
  expectReplies?: boolean;
  /**
   * How to send: `native` (sendmmsg batches of prebuilt probes through libc, the
   * fastest) or `dgram` (one node:dgram send per probe). Default `native`.
   */
  sender?: LoadSender;
  /** Called about every 100 ms. */
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadProgress {
  sent: number;
  replies: number;
  count: number;
  elapsedMs: number;
  /** Replies so far, by worker index. */
  perWorker: number[];
}

export interface LoadReport {
  sent: number;
  sendErrors: number;
  /** Distinct probes answered. */
  received: number;
  duplicates: number;
  lost: number;
  /**
   * Replies the kernel dropped on this run's own sockets (their receive queues were
   * full): part of `lost` that is the load generator's, not the service's.
   */
  replyDrops: number;
  lossPercent: number;
  /** Replies that were not echo replies of this run's probes. */
  strayReplies: number;
  durationMs: number;
  /** Datagrams per second over the sending phase. */
  sendRate: number;
  /** How long the sending phase took, in ms (the rest of `durationMs` is waiting for replies). */
  sendMs: number;
  sender: LoadSender;
  workers: WorkerLoadStats[];
  /** Lost probes attributed to a worker through their sender, where each sender was served by one worker. */
  lostByWorker: Record<number, number>;
  unattributedLoss: number;
  timedOut: boolean;
}

/** runLoad's defaults and ranges, which `shardgram load` shows and uses too, live with every other (defaults.ts). */
export { LOAD_DEFAULTS, LOAD_LIMITS };

/** `v` within the option's LOAD_LIMITS range (the sender's check, sender.ts). */
const checkInt = checkLoadOption;

/** The options checked, with their defaults: the run's plan. */
interface Plan {
  address: string;
  family: 'udp4' | 'udp6';
  port: number;
  sources: number;
  count: number;
  rate: number;
  size: number;
  replyTimeoutMs: number;
  maxDurationMs: number;
  expectReplies: boolean;
  sender: LoadSender;
}

function planOf(opts: LoadOptions): Plan {
  const address = opts.address ?? DEFAULTS.address;
  const family = familyOf(address);
  if (!family) throw invalidArg('address', address, 'an IPv4 or IPv6 literal');
  const plan: Plan = {
    address,
    family,
    port: checkInt('port', opts.port),
    sources: checkInt('sources', opts.sources ?? LOAD_DEFAULTS.sources),
    count: checkInt('count', opts.count ?? LOAD_DEFAULTS.count),
    rate: checkInt('rate', opts.rate ?? LOAD_DEFAULTS.rate),
    size: checkInt('size', opts.size ?? LOAD_DEFAULTS.size),
    replyTimeoutMs: checkInt('replyTimeoutMs', opts.replyTimeoutMs ?? LOAD_DEFAULTS.replyTimeoutMs),
    maxDurationMs: checkInt('maxDurationMs', opts.maxDurationMs ?? LOAD_DEFAULTS.maxDurationMs),
    expectReplies: opts.expectReplies ?? true,
    sender: opts.sender ?? LOAD_DEFAULTS.sender,
  };
  if (plan.sender !== 'native' && plan.sender !== 'dgram') throw invalidArg('sender', plan.sender, '"native" or "dgram"');
  return plan;
}

/** The run's source sockets: read through node:dgram (for the replies), and the native sender's when it sends. */
interface Sources {
  socks: dgram.Socket[];
  native: NativeSender | undefined;
}

function bindSocket(s: dgram.Socket, opt: dgram.BindOptions): Promise<void> {
  return new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.bind(opt, () => {
      s.off('error', rej);
      res();
    });
  });
}

async function openSources(plan: Plan): Promise<Sources> {
  const socks: dgram.Socket[] = [];
  if (plan.sender === 'dgram') {
    for (let i = 0; i < plan.sources; i++) {
      const s = dgram.createSocket({ type: plan.family, recvBufferSize: 1 << 20 });
      socks.push(s);
      await bindSocket(s, { port: 0, address: sourceBindAddress(plan.address) });
    }
    return { socks, native: undefined };
  }
  const native = new NativeSender({ address: plan.address, port: plan.port, sources: plan.sources, rcvbuf: 1 << 20 });
  if (!plan.expectReplies) return { socks, native };
  // Replies are read through node:dgram on the same sockets, which then own the fds.
  try {
    for (const fd of native.fds) {
      const s = dgram.createSocket({ type: plan.family });
      socks.push(s);
      await bindSocket(s, { fd });
    }
    native.releaseFds();
  } catch (err) {
    for (const s of socks) s.close();
    native.releaseFds();
    throw err;
  }
  return { socks, native };
}

/** The sending phase as it goes: what the progress reports and the report sums up. */
interface Sending {
  readonly start: number;
  /** When the last probe was handed to the kernel. */
  done: number;
  sent: number;
  sendErrors: number;
  /** dgram sends not yet completed. */
  inFlight: number;
  timedOut: boolean;
  /** Called when the last send in flight completes. */
  onIdle: (() => void) | undefined;
}

/** sendmmsg batches of prebuilt probes; `runs` (when replies are expected) learns which socket sent each. */
async function sendNative(native: NativeSender, plan: Plan, sending: Sending, runs: SenderRuns | undefined): Promise<void> {
  const r = await native.sendProbes({
    count: plan.count,
    size: plan.size,
    rate: plan.rate,
    maxDurationMs: plan.maxDurationMs,
    onProgress: (n) => {
      sending.sent = n;
    },
    onSent: runs ? (first, _n, sender) => runs.record(first, sender) : undefined,
  });
  sending.sent = r.sent;
  sending.sendErrors = r.sendErrors;
  sending.timedOut = r.timedOut;
}

/** One node:dgram send per probe, socket `seq % sources`, at most 512 a turn and 8192 in flight, paced to the rate. */
async function sendDgram(socks: readonly dgram.Socket[], plan: Plan, sending: Sending, pad: Buffer): Promise<void> {
  const { start } = sending;
  const done = (err: Error | null): void => {
    sending.inFlight--;
    if (err) sending.sendErrors++;
    if (sending.inFlight === 0) sending.onIdle?.();
  };
  while (sending.sent < plan.count) {
    const now = performance.now();
    if (now - start > plan.maxDurationMs) {
      sending.timedOut = true;
      break;
    }
    let allowed = plan.count - sending.sent;
    if (plan.rate > 0) allowed = Math.min(allowed, Math.floor(((now - start) / 1000) * plan.rate) - sending.sent + 1);
    allowed = Math.min(allowed, 512, 8192 - sending.inFlight);
    for (let i = 0; i < allowed; i++) {
      const sender = sending.sent % plan.sources;
      const probe = encodeProbe({ sender, seq: sending.sent, sentAt: performance.now(), pad });
      sending.inFlight++;
      socks[sender]!.send(probe, plan.port, plan.address, done);
      sending.sent++;
    }
    // Let replies and send completions run; with a rate limit, wait for the next slot.
    await new Promise((r) => (plan.rate > 0 && allowed <= 0 ? setTimeout(r, Math.max(1, 1000 / plan.rate)) : setImmediate(r)));
  }
}

/** Resolves when the dgram sends in flight have completed, or after 5 s. */
function sendsCompleted(sending: Sending): Promise<void> {
  if (sending.inFlight === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const end = (): void => {
      clearTimeout(timer);
      sending.onIdle = undefined;
      resolve();
    };
    const timer = setTimeout(end, 5000);
    sending.onIdle = end;
  });
}

/**
 * Resolves once every probe sent has been answered, or no reply has come for
 * `replyTimeoutMs`, or at `maxDurationMs`. A reply already queued on one of our sockets
 * when the wait runs out is read first: were this process held up (a busy machine), the
 * timer would otherwise fire before the replies that came meanwhile, and count them lost.
 */
function repliesIn(tally: ReplyTally, sending: Sending, plan: Plan, socks: readonly dgram.Socket[]): Promise<void> {
  tally.lastReplyAt = Math.max(tally.lastReplyAt, performance.now());
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      clearTimeout(timer);
      const now = performance.now();
      const end = sending.start + plan.maxDurationMs;
      const deadline = Math.min(tally.lastReplyAt + plan.replyTimeoutMs, end);
      if (tally.received < sending.sent && now < deadline) {
        timer = setTimeout(check, deadline - now);
        return;
      }
      if (tally.received < sending.sent && now < end && ownRows(socks).some((r) => r.rxQueue > 0)) {
        // After the poll phase, which reads them.
        setImmediate(check);
        return;
      }
      tally.onAnswer = undefined;
      resolve();
    };
    tally.onAnswer = () => {
      if (tally.received >= sending.sent) check();
    };
    check();
  });
}

/** Our reply sockets' rows in /proc/net/udp, found by their local addresses. */
function ownRows(socks: readonly dgram.Socket[]): ProcUdpRow[] {
  const mine = new Set<string>();
  for (const s of socks) {
    try {
      const a = s.address();
      mine.add(`${a.address} ${a.port}`);
    } catch {
      // not bound: nothing was queued on it
    }
  }
  return readProcUdp().filter((row) => mine.has(`${row.address} ${row.port}`));
}

/** Kernel drops on the run's reply sockets. */
function replyDropsOf(socks: readonly dgram.Socket[]): number {
  return ownRows(socks).reduce((sum, row) => sum + row.drops, 0);
}

/** The lost probes put down to workers (none when no replies were expected). */
function lossOf(tally: ReplyTally, sending: Sending, plan: Plan, runs: SenderRuns | undefined): LossAttribution {
  if (!plan.expectReplies) return { lostByWorker: {}, unattributedLoss: 0 };
  return tally.attributeLoss(sending.sent, runs ? runs.inOrder() : (seq) => seq % plan.sources);
}

function reportOf(plan: Plan, sending: Sending, tally: ReplyTally, loss: LossAttribution, replyDrops: number, durationMs: number): LoadReport {
  const { sent, start, done } = sending;
  const lost = plan.expectReplies ? sent - tally.received : 0;
  return {
    sent,
    sendErrors: sending.sendErrors,
    received: tally.received,
    duplicates: tally.duplicates,
    lost,
    replyDrops,
    lossPercent: sent ? (100 * lost) / sent : 0,
    strayReplies: tally.stray,
    durationMs,
    sendRate: sent / (Math.max(1e-3, done - start) / 1000),
    sendMs: done - start,
    sender: plan.sender,
    workers: tally.workers(),
    lostByWorker: loss.lostByWorker,
    unattributedLoss: loss.unattributedLoss,
    timedOut: sending.timedOut,
  };
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const plan = planOf(opts);
  const { socks, native } = await openSources(plan);
  const tally = new ReplyTally(plan.count, plan.sources, performance.now());
  socks.forEach((s, sender) => {
    s.on('message', (msg) => tally.add(msg, sender, performance.now()));
  });
  // Pad so that the largest probe of the run is `size` bytes (smaller sequence numbers encode a byte or two shorter).
  const pad = probePad(plan.size, plan.sources, plan.count);
  const start = performance.now();
  const sending: Sending = { start, done: start, sent: 0, sendErrors: 0, inFlight: 0, timedOut: false, onIdle: undefined };
  // Which source socket sent each probe: seq % sources for the dgram sender; recorded for the native one.
  const runs = native && plan.expectReplies ? new SenderRuns() : undefined;
  const progress = (): void =>
    opts.onProgress?.({ sent: sending.sent, replies: tally.received, count: plan.count, elapsedMs: performance.now() - start, perWorker: tally.perWorker() });
  const ticker = setInterval(progress, 100);
  let replyDrops = 0;
  try {
    if (native) await sendNative(native, plan, sending, runs);
    else await sendDgram(socks, plan, sending, pad);
    sending.done = performance.now();
    await sendsCompleted(sending);
    if (plan.expectReplies) await repliesIn(tally, sending, plan, socks);
  } finally {
    clearInterval(ticker);
    progress();
    replyDrops = plan.expectReplies ? replyDropsOf(socks) : 0;
    for (const s of socks) s.close();
    native?.close();
  }
  const durationMs = performance.now() - start;
  return reportOf(plan, sending, tally, lossOf(tally, sending, plan, runs), replyDrops, durationMs);
}
