/** The statistics report: per-worker counters merged with the kernel's, and fairness. */
import { COUNTERS, addInto, zeroCounters, type Counters } from './counters.js';
import { fairness, shares, type Fairness } from './fairness.js';
import type { PortHolder } from '../errors.js';
import type { ImbalanceState } from './imbalance.js';
import { PromWriter, type PromFamily } from './prom-text.js';
import { mergeTopSenders, type TopSendersReport } from './top-senders.js';
import type { PolicySpec } from '../steering/steering.js';

export type WorkerState = 'starting' | 'running' | 'stalled' | 'backoff' | 'stopping' | 'stopped';

/** One socket of the group and its worker: every counter of the list, cumulative over the socket's processes. */
export interface WorkerStats extends Counters {
  index: number;
  pid: number;
  state: WorkerState;
  engine: string;
  /** Bytes waiting in this socket's receive queue now. */
  queueBytes: number;
  /** The socket's receive buffer limit in bytes. */
  rcvbuf: number;
  /** This worker's fraction of all datagrams received (0..1). */
  share: number;
  /** Who sent the most datagrams to this worker's current process (a fixed-memory sketch; see top-senders.ts). */
  topSenders?: TopSendersReport | undefined;
}

export interface StatsReport {
  service: {
    app: string;
    engine: string;
    address: string;
    port: number;
    family: 'udp4' | 'udp6';
    workers: number;
    startedAt: string;
    uptimeSeconds: number;
  };
  workers: WorkerStats[];
  /** The steering policy in force. */
  policy?: PolicySpec;
  /** Whether one worker has been getting far more than its share (judged under `hash`). */
  imbalance?: ImbalanceState;
  /** Sockets in the group's SO_REUSEPORT group that are not the service's (they take a share unseen). */
  intruders?: PortHolder[];
  /** What sockets retired by a shrink counted (included in `total`). */
  retired: Counters & { workers: number };
  /** What the service this one took over from (an upgrade hand-over) had counted (included in `total`). */
  inherited?: Counters & { pid: number };
  /** Everything since the service started, retired sockets and inherited counts included; `queueBytes` is now. */
  total: Counters & { queueBytes: number };
  fairness: Fairness;
  /** The service's top senders: the workers' lists merged. */
  topSenders?: TopSendersReport;
}

export type WorkerRow = Omit<WorkerStats, 'share'>;
export type RetiredTotals = StatsReport['retired'];

export function noRetired(): RetiredTotals {
  return { ...zeroCounters(), workers: 0 };
}

export function summarize(
  service: StatsReport['service'],
  rows: WorkerRow[],
  retired: RetiredTotals = noRetired(),
  inherited?: StatsReport['inherited'],
): StatsReport {
  const counts = rows.map((w) => w.datagrams);
  const s = shares(counts);
  const total = addInto(zeroCounters(), retired);
  if (inherited) addInto(total, inherited);
  let queueBytes = 0;
  for (const w of rows) {
    addInto(total, w);
    queueBytes += w.queueBytes;
  }
  const senders = rows.flatMap((w) => (w.topSenders ? [w.topSenders] : []));
  return {
    service,
    workers: rows.map((w, i) => ({ ...w, share: s[i] ?? 0 })),
    retired: { ...retired },
    ...(inherited ? { inherited: { ...inherited } } : {}),
    total: { ...total, queueBytes },
    fairness: fairness(counts),
    ...(senders.length ? { topSenders: mergeTopSenders(senders) } : {}),
  };
}

/** The report's Prometheus families (for the protobuf format). */
export function statsFamilies(r: StatsReport): PromFamily[] {
  const w = new PromWriter();
  toPrometheus(r, w);
  return w.families();
}

/** The report in Prometheus text exposition format: one family per counter of the list, per worker and for the service. */
export function toPrometheus(r: StatsReport, out = new PromWriter()): string {
  const svc = { app: r.service.app, port: r.service.port };
  for (const c of COUNTERS) {
    const name = `shardgram_worker_${c.prom.name}_total`;
    const scale = 'scale' in c.prom ? c.prom.scale : 1;
    out.family(name, 'counter', c.help);
    for (const w of r.workers) out.sample(name, { ...svc, worker: w.index }, w[c.key] * scale);
  }
  const perWorker = (name: string, help: string, pick: (w: WorkerStats) => number): void => {
    out.family(name, 'gauge', help);
    for (const w of r.workers) out.sample(name, { ...svc, worker: w.index }, pick(w));
  };
  perWorker('shardgram_worker_queue_bytes', 'Bytes in the socket receive queue.', (w) => w.queueBytes);
  perWorker('shardgram_worker_rcvbuf_bytes', 'The socket receive buffer limit.', (w) => w.rcvbuf);
  perWorker('shardgram_worker_share', 'Fraction of all datagrams received by this worker.', (w) => w.share);
  perWorker('shardgram_worker_up', 'The worker is running (1) or not: starting, stalled, in backoff, stopping (0).', (w) => (w.state === 'running' ? 1 : 0));
  perWorker('shardgram_worker_stalled', 'The worker has stopped reading while its queue holds datagrams (1) or not (0).', (w) =>
    w.state === 'stalled' ? 1 : 0,
  );
  const gauge = (name: string, help: string, v: number): void => {
    out.family(name, 'gauge', help).sample(name, svc, Number.isFinite(v) ? v : 0);
  };
  gauge('shardgram_fairness_jain', "Jain's fairness index of the per-worker datagram counts.", r.fairness.jain);
  gauge('shardgram_fairness_min_share', 'Smallest worker share.', r.fairness.minShare);
  gauge('shardgram_fairness_max_share', 'Largest worker share.', r.fairness.maxShare);
  gauge('shardgram_fairness_chi_square_p', 'Chi-square p-value of the split against an even one.', r.fairness.chiSquareP);
  gauge('shardgram_workers', 'Workers in the group.', r.workers.length);
  gauge(
    'shardgram_group_intruders',
    "Sockets in the SO_REUSEPORT group that are not the service's (another process of the same user).",
    r.intruders?.length ?? 0,
  );
  gauge('shardgram_imbalance_detected', 'One worker has had far more than its share for a while (1) or not (0).', r.imbalance?.detected ? 1 : 0);
  for (const c of COUNTERS) {
    const name = `shardgram_${c.prom.name}_total`;
    const scale = 'scale' in c.prom ? c.prom.scale : 1;
    out.family(name, 'counter', `${c.help} Since the service started, retired sockets included.`).sample(name, svc, r.total[c.key] * scale);
  }
  return out.text();
}
