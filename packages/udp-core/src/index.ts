/**
 * @shardgram/udp-core — what an app author needs: the `Supervisor`, `defineApp` /
 * `defineAppSupervisor`, `ShardgramError`, `startStatsServer`, the app-options
 * contract (schemas, sizes, sampled logs, `escapeText` for network text in a log), and their types.
 *
 * The rest is namespaced in subpaths (see package.json "exports"):
 *   @shardgram/udp-core/steering  reuseport steering: policies, the cBPF builder, checker, interpreter, attach
 *   @shardgram/udp-core/load      the load generator, its probes, the echo reply format, the native sender
 *   @shardgram/udp-core/sockets   raw SO_REUSEPORT sockets through libc, SO_MEMINFO, who holds a port
 *   @shardgram/udp-core/stats     fairness, the Prometheus text of a report, worker snapshots
 *   @shardgram/udp-core/prom      a Prometheus text writer with correct label escaping
 */
export { Supervisor } from './supervisor/supervisor.js';
export type { SupervisorOptions, SupervisorEvents, StopReport } from './supervisor/supervisor.js';
export { defineApp, defineAppSupervisor } from './shard-socket.js';
export type { ShardApp, AppDefaults, AppSupervisor, AppSupervisorContext, AppSupervisorHooks, ShardSocket, AppContext, AppHooks, RemoteInfo, EngineName, SendData, SendCallback } from './shard-socket.js';
export { ShardgramError, describeError } from './errors.js';
export type { ShardgramErrorCode, ShardgramErrorDetails, PortHolder } from './errors.js';
export { STATS_SERVER_DEFAULTS, startStatsServer } from './stats-server.js';
export type { StatsServer, StatsServerOptions, StatsSource } from './stats-server.js';
// The apps' contract: option schemas, the byte-size grammar, sampled logs, outputs that may close.
export type { AppModule } from './shard-socket.js';
export { defineAppOptions, parseAppOptions, wholeNumber, byteSize, textMatching, outputFile, kebabCase } from './app-options.js';
export type { AppOption, AppOptionSchema, AppOptionValues } from './app-options.js';
export { parseByteSize, formatByteSize } from './byte-size.js';
export { OptionValueError } from './option-error.js';
export { sampledLog } from './log-sampler.js';
export { escapeText } from './escape-text.js';
export type { EscapeTextOptions } from './escape-text.js';
export type { SampledLog, SampledLogOptions } from './log-sampler.js';
export { guardOutput } from './output-guard.js';
export type { GuardedOutput } from './output-guard.js';
// Types that appear in the Supervisor's options and reports (their functions live in subpaths).
export type { StatsReport, WorkerStats, WorkerState } from './stats.js';
export type { Counters, CounterKey } from './counters.js';
export type { Fairness } from './fairness.js';
export type { PolicyName, SteeringPolicy, KeyPolicy, KeyPolicyOptions } from './steering/policies.js';
export type { ImbalanceOptions } from './imbalance.js';
