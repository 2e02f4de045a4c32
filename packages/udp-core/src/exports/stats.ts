/** @shardgram/udp-core/stats — how evenly a group shared the load, a report as Prometheus text, worker snapshots, the stats server's limits. */
export { fairness, chiSquareSurvival } from '../stats/fairness.js';
export type { Fairness } from '../stats/fairness.js';
export { toPrometheus } from '../stats/report.js';
export type { StatsReport, WorkerStats, WorkerState } from '../stats/report.js';
export type { Counters, CounterKey } from '../stats/counters.js';
export { encodeSnapshot, decodeSnapshot, PROTO_PATH } from '../stats/snapshot.js';
export type { WorkerSnapshot } from '../stats/snapshot.js';
export { STATS_SERVER_DEFAULTS } from '../http/stats-server.js';
