/** @shardgram/udp-core/steering — how the kernel picks a group member: policies as classic BPF programs. */
export { attachSteering, attachProgram, detachSteering } from '../steering/attach.js';
export type { AttachedSteering, AttachProgramOptions } from '../steering/attach.js';
export {
  parsePolicy,
  policyProgram,
  keyHash,
  keySocketIndex,
  payloadKey,
  POLICY_NAMES,
  KEY_DEFAULT_DELIMITER,
  KEY_DEFAULT_MAX_LENGTH,
  KEY_MAX_LENGTH_LIMIT,
} from '../steering/policies.js';
export type { PolicyName, SteeringPolicy, KeyPolicy, KeyPolicyOptions } from '../steering/policies.js';
export { CbpfBuilder, insn, encodeProgram, decodeProgram, toSockFprog, MAX_COND_JUMP } from '../steering/cbpf.js';
export type { Insn, LoadSize, AluOp, JumpCond, Operand, JumpTarget, SockFprog } from '../steering/cbpf.js';
export { validateProgram, assertValidProgram, ALLOWED_OPCODES } from '../steering/validate.js';
export type { CbpfRule, CbpfViolation } from '../steering/validate.js';
export { runProgram } from '../steering/interpret.js';
export type { RunContext } from '../steering/interpret.js';
