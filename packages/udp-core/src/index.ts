/**
 * @shardgram/udp-core — the package's whole public surface.
 */
export { Supervisor } from './supervisor/supervisor.js';
export type { SupervisorOptions, SupervisorEvents, StopReport } from './supervisor/supervisor.js';
export { defineApp, defineAppSupervisor } from './shard-socket.js';
export type { ShardApp, AppDefaults, AppSupervisor, AppSupervisorContext, AppSupervisorHooks, ShardSocket, AppContext, AppHooks, RemoteInfo, EngineName, SendData, SendCallback } from './shard-socket.js';
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
// Steering policies for the reuseport group (classic BPF).
export { attachSteering, attachProgram, detachSteering } from './steering/attach.js';
export type { AttachedSteering, AttachProgramOptions } from './steering/attach.js';
export {
  parsePolicy, policyProgram, keyHash, keySocketIndex, payloadKey, POLICY_NAMES, KEY_DEFAULT_DELIMITER,
  KEY_DEFAULT_MAX_LENGTH, KEY_MAX_LENGTH_LIMIT,
} from './steering/policies.js';
export type { PolicyName, SteeringPolicy, KeyPolicy, KeyPolicyOptions } from './steering/policies.js';
export { CbpfBuilder, insn, encodeProgram, decodeProgram, toSockFprog, MAX_COND_JUMP } from './steering/cbpf.js';
export type { Insn, LoadSize, AluOp, JumpCond, Operand, JumpTarget, SockFprog } from './steering/cbpf.js';
export { validateProgram, assertValidProgram, ALLOWED_OPCODES } from './steering/validate.js';
export type { CbpfRule, CbpfViolation } from './steering/validate.js';
export { runProgram } from './steering/interpret.js';
export type { RunContext } from './steering/interpret.js';
