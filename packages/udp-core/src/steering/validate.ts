/**
 * The kernel's classic BPF checker, replayed in TypeScript: bpf_check_basics_ok,
 * bpf_check_classic and check_load_and_stores (net/core/filter.c), rule for rule and
 * in the same order, so a program that passes here is one setsockopt will accept
 * (and one that fails would have failed there with EINVAL, with no hint of why).
 */
import { ShardgramError } from '../errors.js';
import {
  BPF_A,
  BPF_ABS,
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_B,
  BPF_DIV,
  BPF_H,
  BPF_IMM,
  BPF_IND,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_JSET,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_LSH,
  BPF_MAXINSNS,
  BPF_MEM,
  BPF_MEMWORDS,
  BPF_MISC,
  BPF_MOD,
  BPF_MSH,
  BPF_MUL,
  BPF_NEG,
  BPF_OR,
  BPF_RET,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_TAX,
  BPF_TXA,
  BPF_W,
  BPF_X,
  BPF_XOR,
  SKF_AD_MAX,
  SKF_AD_OFF,
} from '../ffi/kernel.js';
import type { Insn } from './cbpf.js';

export type CbpfRule =
  | 'malformed'
  | 'empty'
  | 'too-long'
  | 'unknown-opcode'
  | 'division-by-zero'
  | 'shift-out-of-range'
  | 'memory-index'
  | 'jump-out-of-range'
  | 'unknown-ancillary'
  | 'no-final-ret'
  | 'memory-uninitialized';

export interface CbpfViolation {
  rule: CbpfRule;
  /** Index of the offending instruction (-1 for whole-program rules). */
  pc: number;
  message: string;
}

const ALU_OPS = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_MOD, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH];
const COND_JUMPS = [BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET];

/** chk_code_allowed(): every opcode the classic checker admits. */
export const ALLOWED_OPCODES: ReadonlySet<number> = new Set<number>([
  ...ALU_OPS.flatMap((op) => [BPF_ALU | op | BPF_K, BPF_ALU | op | BPF_X]),
  BPF_ALU | BPF_NEG,
  BPF_LD | BPF_W | BPF_ABS,
  BPF_LD | BPF_H | BPF_ABS,
  BPF_LD | BPF_B | BPF_ABS,
  BPF_LD | BPF_W | BPF_LEN,
  BPF_LD | BPF_W | BPF_IND,
  BPF_LD | BPF_H | BPF_IND,
  BPF_LD | BPF_B | BPF_IND,
  BPF_LD | BPF_IMM,
  BPF_LD | BPF_MEM,
  BPF_LDX | BPF_W | BPF_LEN,
  BPF_LDX | BPF_B | BPF_MSH,
  BPF_LDX | BPF_IMM,
  BPF_LDX | BPF_MEM,
  BPF_ST,
  BPF_STX,
  BPF_MISC | BPF_TAX,
  BPF_MISC | BPF_TXA,
  BPF_RET | BPF_K,
  BPF_RET | BPF_A,
  BPF_JMP | BPF_JA,
  ...COND_JUMPS.flatMap((op) => [BPF_JMP | op | BPF_K, BPF_JMP | op | BPF_X]),
]);

const COND_JUMP_CODES: ReadonlySet<number> = new Set(COND_JUMPS.flatMap((op) => [BPF_JMP | op | BPF_K, BPF_JMP | op | BPF_X]));
const AD_OFF_U32 = SKF_AD_OFF >>> 0;

function isU(v: number, bits: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < 2 ** bits;
}

function v(rule: CbpfRule, pc: number, message: string): CbpfViolation {
  return { rule, pc, message: pc >= 0 ? `instruction ${pc}: ${message}` : message };
}

/** check_load_and_stores(): M[i] must be written on every path before it is read. */
function checkLoadsAndStores(prog: readonly Insn[]): CbpfViolation | undefined {
  const n = prog.length;
  // One bit per scratch word: "written on every path reaching this pc".
  const masks = new Uint16Array(n).fill(0xffff);
  let memvalid = 0;
  for (let pc = 0; pc < n; pc++) {
    const { code, k, jt, jf } = prog[pc]!;
    memvalid &= masks[pc]!;
    if (code === BPF_ST || code === BPF_STX) {
      memvalid |= 1 << k;
    } else if (code === (BPF_LD | BPF_MEM) || code === (BPF_LDX | BPF_MEM)) {
      if (!(memvalid & (1 << k))) return v('memory-uninitialized', pc, `reads M[${k}], which is not written on every path to it`);
    } else if (code === (BPF_JMP | BPF_JA)) {
      masks[pc + 1 + k] = masks[pc + 1 + k]! & memvalid;
      memvalid = 0xffff;
    } else if (COND_JUMP_CODES.has(code)) {
      masks[pc + 1 + jt] = masks[pc + 1 + jt]! & memvalid;
      masks[pc + 1 + jf] = masks[pc + 1 + jf]! & memvalid;
      memvalid = 0xffff;
    }
    // As in the kernel, a RET does not reset memvalid for the instruction after it.
  }
  return undefined;
}

/** The first rule the program breaks, in the kernel's order; undefined if the kernel would accept it. */
export function validateProgram(prog: readonly Insn[]): CbpfViolation | undefined {
  const n = prog.length;
  if (n === 0) return v('empty', -1, 'the program is empty');
  if (n > BPF_MAXINSNS) return v('too-long', -1, `the program has ${n} instructions; the kernel allows at most BPF_MAXINSNS = ${BPF_MAXINSNS}`);
  for (let pc = 0; pc < n; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    if (!isU(code, 16) || !isU(jt, 8) || !isU(jf, 8) || !isU(k, 32)) {
      return v('malformed', pc, `fields out of range (code u16, jt u8, jf u8, k u32): ${JSON.stringify(prog[pc])}`);
    }
    if (!ALLOWED_OPCODES.has(code))
      return v('unknown-opcode', pc, `opcode 0x${code.toString(16).padStart(2, '0')} is not a classic BPF instruction the kernel accepts`);
    switch (code) {
      case BPF_ALU | BPF_DIV | BPF_K:
      case BPF_ALU | BPF_MOD | BPF_K:
        if (k === 0) return v('division-by-zero', pc, `${code === (BPF_ALU | BPF_DIV | BPF_K) ? 'div' : 'mod'} by constant 0`);
        break;
      case BPF_ALU | BPF_LSH | BPF_K:
      case BPF_ALU | BPF_RSH | BPF_K:
        if (k >= 32) return v('shift-out-of-range', pc, `shift by ${k} (must be < 32)`);
        break;
      case BPF_LD | BPF_MEM:
      case BPF_LDX | BPF_MEM:
      case BPF_ST:
      case BPF_STX:
        if (k >= BPF_MEMWORDS) return v('memory-index', pc, `scratch memory index ${k} (M[0] … M[${BPF_MEMWORDS - 1}] exist)`);
        break;
      case BPF_JMP | BPF_JA:
        if (k >= n - pc - 1) return v('jump-out-of-range', pc, `ja +${k} lands at ${pc + 1 + k}, past the last instruction ${n - 1}`);
        break;
      case BPF_LD | BPF_W | BPF_ABS:
      case BPF_LD | BPF_H | BPF_ABS:
      case BPF_LD | BPF_B | BPF_ABS:
        if (k >= AD_OFF_U32) {
          const field = k - AD_OFF_U32;
          if (field % 4 !== 0 || field >= SKF_AD_MAX) return v('unknown-ancillary', pc, `ancillary load SKF_AD_OFF + ${field} is not one the kernel knows`);
        }
        break;
      default:
        if (COND_JUMP_CODES.has(code) && (pc + jt + 1 >= n || pc + jf + 1 >= n)) {
          return v('jump-out-of-range', pc, `jump to ${pc + 1 + jt} / ${pc + 1 + jf}, past the last instruction ${n - 1}`);
        }
    }
  }
  const last = prog[n - 1]!.code;
  if (last !== (BPF_RET | BPF_K) && last !== (BPF_RET | BPF_A)) return v('no-final-ret', n - 1, 'the last instruction must be a ret');
  return checkLoadsAndStores(prog);
}

/** Throws ERR_SHARDGRAM_INVALID_ARG naming the broken rule, if the kernel would refuse the program. */
export function assertValidProgram(prog: readonly Insn[], what = 'classic BPF program'): void {
  const bad = validateProgram(prog);
  if (bad) {
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${what} would be refused by the kernel's checker (${bad.rule}): ${bad.message}`, {
      option: 'program',
    });
  }
}
