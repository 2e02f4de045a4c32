/** The statistics report: per-worker counters merged with the kernel's, and fairness. */
import { fairness, shares, type Fairness } from './fairness.js';
import type { ImbalanceState } from './imbalance.js';
import type { PolicySpec } from './steering/steering.js';

export interface WorkerStats {
  index: number;
  pid: number;
  state: 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped';
  engine: string;
  datagrams: number;
  bytes: number;
  handlerErrors: number;
  truncated: number;
  batches: number;
  sends: number;
  sendErrors: number;
  cpuUserMicros: number;
  cpuSystemMicros: number;
  /** Datagrams the kernel dropped on this socket (receive buffer full), since the service started. */
  kernelDrops: number;
  /** Bytes waiting in this socket's receive queue now. */
  queueBytes: number;
  /** The socket's receive buffer limit in bytes. */
  rcvbuf: number;
  restarts: number;
  /** Datagrams still queued when this socket was closed (read out and counted, not handled). */
  droppedAtClose: number;
  /** This worker's fraction of all datagrams received (0..1). */
  share: number;
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
  /** What workers retired by a shrink received (included in `total`). */
  retired: {
    workers: number;
    datagrams: number;
    bytes: number;
    kernelDrops: number;
  };
  /** Everything since the service started: live workers and retired ones. */
  total: {
    datagrams: number;
    bytes: number;
    kernelDrops: number;
    /** Datagrams read out and dropped with a socket as it closed (stop, or a slot stuck in crash backoff). */
    droppedAtClose: number;
    queueBytes: number;
    handlerErrors: number;
    truncated: number;
    restarts: number;
    cpuUserMicros: number;
    cpuSystemMicros: number;
  };
  fairness: Fairness;
}

type Row = Omit<WorkerStats, 'share'>;
export type RetiredTotals = Pick<Row, 'datagrams' | 'bytes' | 'handlerErrors' | 'truncated' | 'restarts' | 'cpuUserMicros' | 'cpuSystemMicros' | 'kernelDrops' | 'droppedAtClose'> & { workers: number };
const NONE: RetiredTotals = { datagrams: 0, bytes: 0, handlerErrors: 0, truncated: 0, restarts: 0, cpuUserMicros: 0, cpuSystemMicros: 0, kernelDrops: 0, droppedAtClose: 0, workers: 0 };

export function summarize(service: StatsReport['service'], rows: Row[], retired: RetiredTotals = NONE): StatsReport {
  const counts = rows.map((w) => w.datagrams);
  const s = shares(counts);
  const workers = rows.map((w, i) => ({ ...w, share: s[i] ?? 0 }));
  const sum = (k: keyof Omit<WorkerStats, 'share' | 'state' | 'engine'>): number => rows.reduce((a, w) => a + w[k], 0);
  const withRetired = (k: keyof Omit<RetiredTotals, 'workers'>): number => sum(k) + retired[k];
  return {
    service,
    workers,
    retired: { workers: retired.workers, datagrams: retired.datagrams, bytes: retired.bytes, kernelDrops: retired.kernelDrops },
    total: {
      datagrams: withRetired('datagrams'),
      bytes: withRetired('bytes'),
      kernelDrops: withRetired('kernelDrops'),
      droppedAtClose: withRetired('droppedAtClose'),
      queueBytes: sum('queueBytes'),
      handlerErrors: withRetired('handlerErrors'),
      truncated: withRetired('truncated'),
      restarts: withRetired('restarts'),
      cpuUserMicros: withRetired('cpuUserMicros'),
      cpuSystemMicros: withRetired('cpuSystemMicros'),
    },
    fairness: fairness(counts),
  };
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** The report in Prometheus text exposition format (version 0.0.4). */
export function toPrometheus(r: StatsReport): string {
  const out: string[] = [];
  const svc = `app="${esc(r.service.app)}",port="${r.service.port}"`;
  const perWorker = (name: string, type: 'counter' | 'gauge', help: string, pick: (w: WorkerStats) => number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const w of r.workers) out.push(`${name}{${svc},worker="${w.index}"} ${pick(w)}`);
  };
  perWorker('shardgram_worker_datagrams_total', 'counter', 'Datagrams handed to the app.', (w) => w.datagrams);
  perWorker('shardgram_worker_bytes_total', 'counter', 'Payload bytes handed to the app.', (w) => w.bytes);
  perWorker('shardgram_worker_handler_errors_total', 'counter', 'Exceptions thrown by the message handler.', (w) => w.handlerErrors);
  perWorker('shardgram_worker_truncated_total', 'counter', 'Datagrams larger than the receive buffer, counted and not delivered.', (w) => w.truncated);
  perWorker('shardgram_worker_kernel_drops_total', 'counter', 'Datagrams the kernel dropped on this socket.', (w) => w.kernelDrops);
  perWorker('shardgram_worker_queue_bytes', 'gauge', 'Bytes in the socket receive queue.', (w) => w.queueBytes);
  perWorker('shardgram_worker_cpu_user_seconds_total', 'counter', 'User CPU time of the worker processes.', (w) => w.cpuUserMicros / 1e6);
  perWorker('shardgram_worker_cpu_system_seconds_total', 'counter', 'System CPU time of the worker processes.', (w) => w.cpuSystemMicros / 1e6);
  perWorker('shardgram_worker_restarts_total', 'counter', 'Worker process restarts on this socket.', (w) => w.restarts);
  perWorker('shardgram_worker_share', 'gauge', 'Fraction of all datagrams received by this worker.', (w) => w.share);
  const gauge = (name: string, help: string, v: number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${svc}} ${Number.isFinite(v) ? v : 0}`);
  };
  gauge('shardgram_fairness_jain', "Jain's fairness index of the per-worker datagram counts.", r.fairness.jain);
  gauge('shardgram_fairness_min_share', 'Smallest worker share.', r.fairness.minShare);
  gauge('shardgram_fairness_max_share', 'Largest worker share.', r.fairness.maxShare);
  gauge('shardgram_fairness_chi_square_p', 'Chi-square p-value of the split against an even one.', r.fairness.chiSquareP);
  gauge('shardgram_workers', 'Workers in the group.', r.workers.length);
  gauge('shardgram_imbalance_detected', 'One worker has had far more than its share for a while (1) or not (0).', r.imbalance?.detected ? 1 : 0);
  const total = (name: string, help: string, v: number): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${svc}} ${v}`);
  };
  total('shardgram_datagrams_total', 'Datagrams received since the service started, retired workers included.', r.total.datagrams);
  total('shardgram_dropped_at_close_total', 'Datagrams still queued when a socket closed, counted as they were dropped.', r.total.droppedAtClose);
  total('shardgram_kernel_drops_total', 'Datagrams the kernel dropped since the service started, retired sockets included.', r.total.kernelDrops);
  return out.join('\n') + '\n';
}
