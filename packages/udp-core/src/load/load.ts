/**
 * The load generator behind `shardgram load`: a bounded burst of protobuf probes
 * (sender, sequence number, send time) from many source ports, with an optional
 * rate limit. Against the echo app, the replies give loss, duplicates and
 * round-trip percentiles per worker.
 *
 * Two senders: `native` (default) sends batches of prebuilt probes with sendmmsg
 * through libc (sender.ts) and saturates a receiver; `dgram` sends one
 * `socket.send` per probe through Node. Replies are read through node:dgram either way.
 */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { invalidArg } from '../errors.js';
import { familyOf, sourceBindAddress } from '../ffi/sockaddr.js';
import { UDP_MAX_PAYLOAD } from '../ffi/kernel.js';
import { readProcUdp } from '../ffi/holders.js';
import { parseEchoReply } from '../app/builtin/echo-format.js';
import { NativeSender, probePad } from './sender.js';
import { decodeProbe, encodeProbe } from '../stats/snapshot.js';
import { DEFAULTS } from '../defaults.js';

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
  /** Datagram size in bytes (at least the probe's own ~20 bytes). Default 64. */
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

export interface WorkerLoadStats {
  worker: number;
  pids: number[];
  replies: number;
  /** Senders whose every reply came from this worker. */
  senders: number;
  rttMs: { p50: number; p90: number; p99: number; max: number };
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

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw invalidArg(name, v, `an integer from ${min} to ${max}`);
  return v;
}

/** Kernel drops on the run's reply sockets, from /proc/net/udp by their local addresses. */
function replyDropsOf(socks: readonly dgram.Socket[]): number {
  const mine = new Set<string>();
  for (const s of socks) {
    try {
      const a = s.address();
      mine.add(`${a.address} ${a.port}`);
    } catch {
      // not bound: nothing was queued on it
    }
  }
  let drops = 0;
  for (const row of readProcUdp()) if (mine.has(`${row.address} ${row.port}`)) drops += row.drops;
  return drops;
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const address = opts.address ?? DEFAULTS.address;
  const family = familyOf(address);
  if (!family) throw invalidArg('address', address, 'an IPv4 or IPv6 literal');
  const port = checkInt('port', opts.port, 1, 65535);
  const sources = checkInt('sources', opts.sources ?? 64, 1, 4096);
  const count = checkInt('count', opts.count ?? 10_000, 1, 100_000_000);
  const rate = checkInt('rate', opts.rate ?? 0, 0, 100_000_000);
  const size = checkInt('size', opts.size ?? 64, 1, UDP_MAX_PAYLOAD - 64);
  const replyTimeoutMs = opts.replyTimeoutMs ?? 1000;
  const maxDurationMs = opts.maxDurationMs ?? 120_000;
  const expectReplies = opts.expectReplies ?? true;
  const senderKind = opts.sender ?? 'native';
  if (senderKind !== 'native' && senderKind !== 'dgram') throw invalidArg('sender', senderKind, '"native" or "dgram"');

  const socks: dgram.Socket[] = [];
  let native: NativeSender | undefined;
  const bindSocket = (s: dgram.Socket, opt: dgram.BindOptions): Promise<void> =>
    new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind(opt, () => {
        s.off('error', rej);
        res();
      });
    });
  if (senderKind === 'native') {
    native = new NativeSender({ address, port, sources, rcvbuf: 1 << 20 });
    if (expectReplies) {
      // Replies are read through node:dgram on the same sockets, which then own the fds.
      try {
        for (const fd of native.fds) {
          const s = dgram.createSocket({ type: family });
          socks.push(s);
          await bindSocket(s, { fd });
        }
        native.releaseFds();
      } catch (err) {
        for (const s of socks) s.close();
        native.releaseFds();
        throw err;
      }
    }
  } else {
    for (let i = 0; i < sources; i++) {
      const s = dgram.createSocket({ type: family, recvBufferSize: 1 << 20 });
      socks.push(s);
      await bindSocket(s, { port: 0, address: sourceBindAddress(address) });
    }
  }

  const seen = new Uint8Array(count);
  const senderWorker = new Int32Array(sources).fill(-1); // -2: more than one worker
  const perWorkerRtt = new Map<number, number[]>();
  const perWorkerPids = new Map<number, Set<number>>();
  const perWorkerCount: number[] = [];
  let received = 0;
  let duplicates = 0;
  let stray = 0;
  let replies = 0;
  let lastReplyAt = performance.now();

  socks.forEach((s, sender) => {
    s.on('message', (msg) => {
      const now = performance.now();
      lastReplyAt = now;
      const reply = parseEchoReply(msg);
      let probe;
      try {
        probe = reply ? decodeProbe(reply.payload) : undefined;
      } catch {
        probe = undefined;
      }
      if (!reply || !probe || probe.seq >= count || probe.sender !== sender) {
        stray++;
        return;
      }
      replies++;
      if (seen[probe.seq]) {
        duplicates++;
        return;
      }
      seen[probe.seq] = 1;
      received++;
      const w = reply.worker;
      perWorkerCount[w] = (perWorkerCount[w] ?? 0) + 1;
      let rtts = perWorkerRtt.get(w);
      if (!rtts) perWorkerRtt.set(w, (rtts = []));
      rtts.push(now - probe.sentAt);
      let pids = perWorkerPids.get(w);
      if (!pids) perWorkerPids.set(w, (pids = new Set()));
      pids.add(reply.pid);
      const prev = senderWorker[sender]!;
      senderWorker[sender] = prev === -1 || prev === w ? w : -2;
    });
  });

  // Pad so that the largest probe of the run is `size` bytes (smaller sequence numbers encode a byte or two shorter).
  const pad = probePad(size, sources, count);
  const start = performance.now();
  let sent = 0;
  let sendErrors = 0;
  let inFlight = 0;
  let timedOut = false;
  let replyDrops = 0;
  const progress = (): void =>
    opts.onProgress?.({ sent, replies: received, count, elapsedMs: performance.now() - start, perWorker: [...perWorkerCount].map((v) => v ?? 0) });
  const ticker = setInterval(progress, 100);

  let sendDone = start;
  // Which source socket sent each probe: seq % sources for the dgram sender; runs of
  // consecutive sequence numbers, one per sendmmsg call, for the native one.
  let runStart = new Uint32Array(1024);
  let runSender = new Uint16Array(1024);
  let runs = 0;
  try {
    if (native) {
      const r = await native.sendProbes({
        count, size, rate, maxDurationMs,
        onProgress: (n) => {
          sent = n;
        },
        onSent: expectReplies
          ? (first, _n, sender) => {
              if (runs > 0 && runSender[runs - 1] === sender) return;
              if (runs === runStart.length) {
                const a = new Uint32Array(runs * 2);
                a.set(runStart);
                runStart = a;
                const b = new Uint16Array(runs * 2);
                b.set(runSender);
                runSender = b;
              }
              runStart[runs] = first;
              runSender[runs] = sender;
              runs++;
            }
          : undefined,
      });
      sent = r.sent;
      sendErrors = r.sendErrors;
      timedOut = r.timedOut;
    }
    while (!native && sent < count) {
      const now = performance.now();
      if (now - start > maxDurationMs) {
        timedOut = true;
        break;
      }
      let allowed = count - sent;
      if (rate > 0) allowed = Math.min(allowed, Math.floor(((now - start) / 1000) * rate) - sent + 1);
      allowed = Math.min(allowed, 512, 8192 - inFlight);
      for (let i = 0; i < allowed; i++) {
        const sender = sent % sources;
        const probe = encodeProbe({ sender, seq: sent, sentAt: performance.now(), pad });
        inFlight++;
        socks[sender]!.send(probe, port, address, (err) => {
          inFlight--;
          if (err) sendErrors++;
        });
        sent++;
      }
      // Let replies and send completions run; with a rate limit, wait for the next slot.
      await new Promise((r) => (rate > 0 && allowed <= 0 ? setTimeout(r, Math.max(1, 1000 / rate)) : setImmediate(r)));
    }
    sendDone = performance.now();
    while (inFlight > 0 && performance.now() - sendDone < 5000) await new Promise((r) => setTimeout(r, 1));
    if (expectReplies) {
      lastReplyAt = Math.max(lastReplyAt, performance.now());
      while (received < sent && performance.now() - lastReplyAt < replyTimeoutMs && performance.now() - start < maxDurationMs) {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } finally {
    clearInterval(ticker);
    progress();
    replyDrops = expectReplies ? replyDropsOf(socks) : 0;
    for (const s of socks) s.close();
    native?.close();
  }

  const durationMs = performance.now() - start;
  const lostByWorker: Record<number, number> = {};
  let unattributedLoss = 0;
  if (expectReplies) {
    let run = 0;
    for (let seq = 0; seq < sent; seq++) {
      if (seen[seq]) continue;
      let sender = seq % sources;
      if (native) {
        while (run + 1 < runs && runStart[run + 1]! <= seq) run++;
        sender = runSender[run]!;
      }
      const w = senderWorker[sender]!;
      if (w >= 0) lostByWorker[w] = (lostByWorker[w] ?? 0) + 1;
      else unattributedLoss++;
    }
  }
  const workers: WorkerLoadStats[] = [...perWorkerRtt.keys()].sort((a, b) => a - b).map((w) => {
    const rtts = Float64Array.from(perWorkerRtt.get(w) ?? []).sort();
    return {
      worker: w,
      pids: [...(perWorkerPids.get(w) ?? [])],
      replies: perWorkerCount[w] ?? 0,
      senders: [...senderWorker].filter((x) => x === w).length,
      rttMs: { p50: percentile(rtts, 0.5), p90: percentile(rtts, 0.9), p99: percentile(rtts, 0.99), max: rtts[rtts.length - 1] ?? 0 },
    };
  });
  const lost = expectReplies ? sent - received : 0;
  return {
    sent, sendErrors, received, duplicates, lost, replyDrops, lossPercent: sent ? (100 * lost) / sent : 0, strayReplies: stray,
    durationMs, sendRate: sent / (Math.max(1e-3, sendDone - start) / 1000), sendMs: sendDone - start, sender: senderKind, workers, lostByWorker, unattributedLoss, timedOut,
  };
}
