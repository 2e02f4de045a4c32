/** The statistics report: per-worker counters merged with the kernel's, and fairness. */
import { fairness, shares, type Fairness } from './fairness.js';

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
  total: {
    datagrams: number;
    bytes: number;
    kernelDrops: number;
    queueBytes: number;
    handlerErrors: number;
    truncated: number;
    restarts: number;
    cpuUserMicros: number;
    cpuSystemMicros: number;
  };
  fairness: Fairness;
}

export function summarize(service: StatsReport['service'], rows: Omit<WorkerStats, 'share'>[]): StatsReport {
  const counts = rows.map((w) => w.datagrams);
  const s = shares(counts);
  const workers = rows.map((w, i) => ({ ...w, share: s[i] ?? 0 }));
  const sum = (k: keyof Omit<WorkerStats, 'share' | 'state' | 'engine'>): number => rows.reduce((a, w) => a + w[k], 0);
  return {
    service,
    workers,
    total: {
      datagrams: sum('datagrams'),
      bytes: sum('bytes'),
      kernelDrops: sum('kernelDrops'),
      queueBytes: sum('queueBytes'),
      handlerErrors: sum('handlerErrors'),
      truncated: sum('truncated'),
      restarts: sum('restarts'),
      cpuUserMicros: sum('cpuUserMicros'),
      cpuSystemMicros: sum('cpuSystemMicros'),
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
  return out.join('\n') + '\n';
}
