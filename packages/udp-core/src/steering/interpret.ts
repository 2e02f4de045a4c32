/**
 * A reference interpreter for classic BPF over one datagram's payload, with the
 * semantics the kernel gives a reuseport program: offset 0 is the first payload
 * byte, `ld len` is the payload length, an out-of-bounds load or a division by
 * X = 0 ends the program with return value 0. It lets tests and tools predict which
 * socket a datagram goes to without sending it.
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
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_LSH,
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
  BPF_TXA,
  BPF_W,
  BPF_X,
  BPF_XOR,
  SKF_AD_CPU,
  SKF_AD_OFF,
  SKF_AD_RANDOM,
} from '../ffi/kernel.js';
import type { Insn } from './cbpf.js';
import { assertValidProgram } from './validate.js';

export interface RunContext {
  /** What `ld cpu` yields (default 0). */
  cpu?: number;
  /** Source of `ld rand` values, each an unsigned 32-bit integer (default Math.random). */
  random?: () => number;
}

const AD_OFF_U32 = SKF_AD_OFF >>> 0;

/** Runs a (valid) program over `packet` and returns its u32 result. */
export function runProgram(prog: readonly Insn[], packet: Uint8Array, ctx: RunContext = {}): number {
  assertValidProgram(prog);
  const len = packet.length;
  const mem = new Uint32Array(BPF_MEMWORDS);
  let a = 0;
  let x = 0;

  // undefined = out of bounds: the kernel's program ends with 0.
  const load = (size: number, off: number): number | undefined => {
    const n = size === BPF_W ? 4 : size === BPF_H ? 2 : 1;
    if (off < 0 || off + n > len) return undefined;
    let r = 0;
    for (let i = 0; i < n; i++) r = r * 256 + packet[off + i]!;
    return r >>> 0;
  };
  const ancillary = (k: number): number => {
    const field = k - AD_OFF_U32;
    if (field === SKF_AD_CPU) return (ctx.cpu ?? 0) >>> 0;
    if (field === SKF_AD_RANDOM) return (ctx.random ? ctx.random() : Math.floor(Math.random() * 2 ** 32)) >>> 0;
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `runProgram: ancillary load SKF_AD_OFF + ${field} is not modelled`, { option: 'program' });
  };

  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    const cls = code & 0x07;
    switch (cls) {
      case BPF_LD:
      case BPF_LDX: {
        const mode = code & 0xe0;
        const size = code & 0x18;
        let val: number | undefined;
        if (mode === BPF_IMM) val = k;
        else if (mode === BPF_MEM) val = mem[k]!;
        else if (mode === BPF_LEN) val = len;
        else if (mode === BPF_ABS) val = k >= AD_OFF_U32 ? ancillary(k) : k >= 2 ** 31 ? undefined : load(size, k);
        else if (mode === BPF_IND) val = load(size, (x + k) | 0);
        else if (mode === BPF_MSH) {
          const b = load(BPF_B, k);
          val = b === undefined ? undefined : (b & 0xf) * 4;
        }
        if (val === undefined) return 0;
        if (cls === BPF_LD) a = val >>> 0;
        else x = val >>> 0;
        break;
      }
      case BPF_ST:
        mem[k] = a;
        break;
      case BPF_STX:
        mem[k] = x;
        break;
      case BPF_ALU: {
        const op = code & 0xf0;
        const src = (code & BPF_X) === BPF_X ? x : k;
        switch (op) {
          case BPF_ADD:
            a = (a + src) >>> 0;
            break;
          case BPF_SUB:
            a = (a - src) >>> 0;
            break;
          case BPF_MUL:
            a = Math.imul(a, src) >>> 0;
            break;
          case BPF_DIV:
            if (src === 0) return 0;
            a = Math.floor(a / src) >>> 0;
            break;
          case BPF_MOD:
            if (src === 0) return 0;
            a = (a % src) >>> 0;
            break;
          case BPF_AND:
            a = (a & src) >>> 0;
            break;
          case BPF_OR:
            a = (a | src) >>> 0;
            break;
          case BPF_XOR:
            a = (a ^ src) >>> 0;
            break;
          // A shift by X ≥ 32 is masked to 5 bits, as x86 does.
          case BPF_LSH:
            a = (a << (src & 31)) >>> 0;
            break;
          case BPF_RSH:
            a = a >>> (src & 31);
            break;
          case BPF_NEG:
            a = -a >>> 0;
            break;
        }
        break;
      }
      case BPF_JMP: {
        const op = code & 0xf0;
        if (op === BPF_JA) {
          pc += k;
          break;
        }
        const src = (code & BPF_X) === BPF_X ? x : k;
        const taken = op === BPF_JEQ ? a === src : op === BPF_JGT ? a > src : op === BPF_JGE ? a >= src : op === BPF_JSET ? (a & src) !== 0 : false;
        pc += taken ? jt : jf;
        break;
      }
      case BPF_RET:
        return (code & 0x18) === BPF_A ? a : k;
      case BPF_MISC:
        if ((code & 0xf8) === BPF_TXA) a = x;
        else x = a;
        break;
    }
  }
  // Unreachable for a valid program (its last instruction is a ret).
  return 0;
}
