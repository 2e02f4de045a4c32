/** @shardgram/udp-core/stats — how evenly a group shared the load, a report as Prometheus text, worker snapshots. */
export { fairness, chiSquareSurvival } from '../fairness.js';
export type { Fairness } from '../fairness.js';
export { toPrometheus } from '../stats.js';
export type { StatsReport, WorkerStats, WorkerState } from '../stats.js';
export type { Counters, CounterKey } from '../counters.js';
export { encodeSnapshot, decodeSnapshot, PROTO_PATH } from '../snapshot.js';
export type { WorkerSnapshot } from '../snapshot.js';
