/**
 * @shardgram/udp-core — the package's whole public surface.
 */
export { Supervisor } from './supervisor.js';
export type { SupervisorOptions, SupervisorEvents, StopReport } from './supervisor.js';
export { defineApp, defineAppSupervisor } from './shard-socket.js';
export type { ShardApp, AppSupervisor, AppSupervisorContext, AppSupervisorHooks, ShardSocket, AppContext, AppHooks, RemoteInfo, EngineName, SendData, SendCallback } from './shard-socket.js';
export { ShardgramError, errnoName } from './errors.js';
export type { ShardgramErrorCode, PortHolder } from './errors.js';
export { openReusePortSocket, socketMemInfo, closeFd, localAddress } from './ffi/socket.js';
export type { OpenSocketOptions, OpenedSocket, SocketMemInfo } from './ffi/socket.js';
export { findPortHolders } from './ffi/holders.js';
export { fairness, chiSquareSurvival } from './fairness.js';
export type { Fairness } from './fairness.js';
export { toPrometheus } from './stats.js';
export type { StatsReport, WorkerStats } from './stats.js';
export { startStatsServer } from './stats-server.js';
export type { StatsServer, StatsSource } from './stats-server.js';
export { encodeSnapshot, decodeSnapshot, encodeProbe, decodeProbe, PROTO_PATH } from './snapshot.js';
export type { WorkerSnapshot, Probe } from './snapshot.js';
export { runLoad } from './load.js';
export type { LoadOptions, LoadReport, LoadProgress, WorkerLoadStats } from './load.js';
export { echoPrefix, parseEchoReply } from './echo-format.js';
export type { EchoReply } from './echo-format.js';
