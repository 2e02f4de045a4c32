/** Messages between the supervisor and a worker process (IPC, advanced serialization). */

export const WORKER_FD = 4; // stdio slot the worker's socket is inherited on (0-2 std, 3 IPC)
export const COUNTERS_FD = 5; // stdio slot of the memfd holding the worker's counters (shared-counters.ts)
export const WORKER_ENV = 'SHARDGRAM_WORKER';

export interface WorkerConfig {
  /** The supervisor's pid: the worker dies with it (PR_SET_PDEATHSIG). */
  supervisorPid: number;
  index: number;
  workers: number;
  engine: 'dgram' | 'native';
  family: 'udp4' | 'udp6';
  /** Absolute module URL of the app. */
  app: string;
  appOptions: Record<string, string>;
  snapshotIntervalMs: number;
  maxDatagram: number;
  batch: number;
  maxReadDelayUs: number;
  /** The socket's own receive buffer as SO_MEMINFO counts it (EngineOptions.ownRcvbuf). */
  ownRcvbuf: number;
}

export type ToSupervisor =
  | { t: 'ready'; pid: number }
  | { t: 'snap'; b: Uint8Array }
  | { t: 'log'; line: string }
  | { t: 'fatal'; message: string }
  | { t: 'drained'; leftBytes: number }
  | { t: 'app'; m: unknown };

export type ToWorker = { t: 'stop'; timeoutMs: number } | { t: 'app'; m: unknown };
