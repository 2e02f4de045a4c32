/**
 * @shardgram/udp-core — what an app author needs: the `Supervisor`, `defineApp` /
 * `defineAppSupervisor`, `ShardgramError`, `startStatsServer`, sampled logs, `escapeText` for
 * network text in a log, an output that may close, and their types.
 *
 * The rest is namespaced in subpaths (see package.json "exports"):
 *   @shardgram/udp-core/app-options  an app's option schema, its parsers, the size grammar, OptionValueError
 *   @shardgram/udp-core/steering  reuseport steering: policies, the cBPF builder, checker, interpreter, attach
 *   @shardgram/udp-core/load      the load generator, its probes, the echo reply format, the native sender
 *   @shardgram/udp-core/sockets   raw SO_REUSEPORT sockets through libc, SO_MEMINFO, who holds a port
 *   @shardgram/udp-core/stats     fairness, the Prometheus text of a report, worker snapshots, the stats server's limits
 *   @shardgram/udp-core/prom      a Prometheus text writer with correct label escaping
 */
export { Supervisor } from './supervisor/supervisor.js';
export type { SupervisorOptions, SupervisorEvents, StopReport } from './supervisor/supervisor.js';
export { defineApp, defineAppSupervisor } from './app/shard-socket.js';
export type {
  ShardApp,
  AppDefaults,
  AppSupervisor,
  AppSupervisorContext,
  AppSupervisorHooks,
  ShardSocket,
  AppContext,
  AppHooks,
  RemoteInfo,
  EngineName,
  SendData,
  SendCallback,
} from './app/shard-socket.js';
export { ShardgramError, describeError } from './errors.js';
export type { ShardgramErrorCode, ShardgramErrorDetails, PortHolder } from './errors.js';
export { startStatsServer } from './http/stats-server.js';
export type { StatsServer, StatsServerOptions, StatsSource } from './http/stats-server.js';
// The apps' contract: sampled logs, escaped network text, outputs that may close (option schemas: /app-options).
export type { AppModule } from './app/shard-socket.js';
export type { AppOption, AppOptionSchema, AppOptionValues } from './app/app-options.js';
export { sampledLog } from './app/log-sampler.js';
export { escapeText } from './app/escape-text.js';
export type { EscapeTextOptions } from './app/escape-text.js';
export type { SampledLog, SampledLogOptions } from './app/log-sampler.js';
export { guardOutput } from './app/output-guard.js';
export type { GuardedOutput } from './app/output-guard.js';
// Types that appear in the Supervisor's options and reports (their functions live in subpaths).
export type { StatsReport, WorkerStats, WorkerState } from './stats/report.js';
export type { Counters, CounterKey } from './stats/counters.js';
export type { Fairness } from './stats/fairness.js';
export type { PolicyName, SteeringPolicy, KeyPolicy, KeyPolicyOptions } from './steering/policies.js';
export type { ImbalanceOptions } from './stats/imbalance.js';
