/**
 * Classic BPF (struct sock_filter) programs: instruction encoding, a builder with
 * named labels for forward jumps, and serialization into the sock_filter array and
 * struct sock_fprog that setsockopt(SO_ATTACH_REUSEPORT_CBPF) takes.
 */
import koffi from 'koffi';
import { endianness } from 'node:os';
import { invalidArg } from '../errors.js';
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
  BPF_MEM,
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
  FPROG_FILTER,
  FPROG_LEN,
  SKF_AD_CPU,
  SKF_AD_OFF,
  SKF_AD_RANDOM,
  SOCK_FILTER_SIZE,
  SOCK_FPROG_SIZE,
} from '../ffi/kernel.js';

/** One struct sock_filter: `{ u16 code; u8 jt; u8 jf; u32 k }`. */
export interface Insn {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  /** Unsigned 32-bit. */
  readonly k: number;
}

export type LoadSize = 'w' | 'h' | 'b';
export type AluOp = 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'and' | 'or' | 'xor' | 'lsh' | 'rsh';
export type JumpCond = 'jeq' | 'jgt' | 'jge' | 'jset';
/** An ALU or jump operand: a constant (`#k`) or the X register. */
export type Operand = number | 'x';
/** A forward jump target: a label's name, or how many instructions to skip (0 = the next one). */
export type JumpTarget = string | number;

/** Largest conditional jump offset: jt and jf are u8. */
export const MAX_COND_JUMP = 255;

const SIZE: Record<LoadSize, number> = { w: BPF_W, h: BPF_H, b: BPF_B };
const ALU: Record<AluOp, number> = {
  add: BPF_ADD,
  sub: BPF_SUB,
  mul: BPF_MUL,
  div: BPF_DIV,
  mod: BPF_MOD,
  and: BPF_AND,
  or: BPF_OR,
  xor: BPF_XOR,
  lsh: BPF_LSH,
  rsh: BPF_RSH,
};
const JMP: Record<JumpCond, number> = { jeq: BPF_JEQ, jgt: BPF_JGT, jge: BPF_JGE, jset: BPF_JSET };

function u32(k: number, what: string): number {
  if (!Number.isInteger(k) || k < -(2 ** 31) || k > 2 ** 32 - 1) throw invalidArg(what, k, 'an integer that fits in 32 bits');
  return k >>> 0;
}

function u8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_COND_JUMP) throw invalidArg(what, v, 'an integer from 0 to 255');
  return v;
}

/** A raw instruction; `k` may be negative (it is stored as its 32-bit two's complement). */
export function insn(code: number, k = 0, jt = 0, jf = 0): Insn {
  if (!Number.isInteger(code) || code < 0 || code > 0xffff) throw invalidArg('code', code, 'a u16 opcode');
  return { code, jt: u8(jt, 'jt'), jf: u8(jf, 'jf'), k: u32(k, 'k') };
}

interface Pending {
  code: number;
  k: number | JumpTarget;
  jt: JumpTarget;
  jf: JumpTarget;
  /** `ja`: k is the target; conditional jumps: jt/jf are targets. */
  kind: 'plain' | 'ja' | 'cond';
}

/**
 * Builds a program one instruction at a time; jumps name labels defined later with
 * `label()`, resolved by `build()`. Classic BPF jumps only forward; a conditional
 * jump reaches at most 255 instructions (use `ja`, which has a 32-bit offset, as a
 * trampoline for further ones).
 */
export class CbpfBuilder {
  private readonly items: Pending[] = [];
  private readonly labels = new Map<string, number>();

  /** Number of instructions emitted so far (the index the next one gets). */
  get length(): number {
    return this.items.length;
  }

  /** Names the position of the next instruction. */
  label(name: string): this {
    if (this.labels.has(name)) throw invalidArg('label', name, 'a name not defined before');
    this.labels.set(name, this.items.length);
    return this;
  }

  /** Appends an already encoded instruction. */
  raw(i: Insn): this {
    return this.push(insn(i.code, i.k, i.jt, i.jf));
  }

  /** `ld{,h,b} [k]`: A = packet bytes at offset k (big-endian), or an ancillary field. */
  ldAbs(size: LoadSize, offset: number): this {
    return this.push(insn(BPF_LD | SIZE[size] | BPF_ABS, offset));
  }

  /** `ld{,h,b} [x + k]`. */
  ldInd(size: LoadSize, offset: number): this {
    return this.push(insn(BPF_LD | SIZE[size] | BPF_IND, offset));
  }

  /** `ld len`: A = packet length (for a UDP reuseport program: the payload length). */
  ldLen(): this {
    return this.push(insn(BPF_LD | BPF_W | BPF_LEN));
  }

  /** `ld #k`. */
  ldImm(k: number): this {
    return this.push(insn(BPF_LD | BPF_IMM, k));
  }

  /** `ld M[i]`. */
  ldMem(i: number): this {
    return this.push(insn(BPF_LD | BPF_MEM, i));
  }

  /** `ld cpu`: A = the CPU running the program (SKF_AD_CPU). */
  ldCpu(): this {
    return this.ldAbs('w', SKF_AD_OFF + SKF_AD_CPU);
  }

  /** `ld rand`: A = a pseudo-random u32 (SKF_AD_RANDOM). */
  ldRandom(): this {
    return this.ldAbs('w', SKF_AD_OFF + SKF_AD_RANDOM);
  }

  /** `ldx #k`. */
  ldxImm(k: number): this {
    return this.push(insn(BPF_LDX | BPF_W | BPF_IMM, k));
  }

  /** `ldx M[i]`. */
  ldxMem(i: number): this {
    return this.push(insn(BPF_LDX | BPF_W | BPF_MEM, i));
  }

  /** `ldx len`. */
  ldxLen(): this {
    return this.push(insn(BPF_LDX | BPF_W | BPF_LEN));
  }

  /** `ldxb 4*([k]&0xf)` (the IPv4 header length idiom). */
  ldxMsh(offset: number): this {
    return this.push(insn(BPF_LDX | BPF_B | BPF_MSH, offset));
  }

  /** `st M[i]`: M[i] = A. */
  st(i: number): this {
    return this.push(insn(BPF_ST, i));
  }

  /** `stx M[i]`: M[i] = X. */
  stx(i: number): this {
    return this.push(insn(BPF_STX, i));
  }

  /** A = A op operand (32-bit, unsigned). */
  alu(op: AluOp, src: Operand): this {
    return src === 'x' ? this.push(insn(BPF_ALU | ALU[op] | BPF_X)) : this.push(insn(BPF_ALU | ALU[op] | BPF_K, src));
  }

  /** A = -A. */
  neg(): this {
    return this.push(insn(BPF_ALU | BPF_NEG));
  }

  /** X = A. */
  tax(): this {
    return this.push(insn(BPF_MISC | BPF_TAX));
  }

  /** A = X. */
  txa(): this {
    return this.push(insn(BPF_MISC | BPF_TXA));
  }

  /** Unconditional forward jump (32-bit offset). */
  ja(target: JumpTarget): this {
    this.items.push({ code: BPF_JMP | BPF_JA, k: target, jt: 0, jf: 0, kind: 'ja' });
    return this;
  }

  /** `if (A cond operand) goto jt else goto jf`. */
  jmp(cond: JumpCond, src: Operand, jt: JumpTarget, jf: JumpTarget): this {
    const code = BPF_JMP | JMP[cond] | (src === 'x' ? BPF_X : BPF_K);
    const k = src === 'x' ? 0 : u32(src, 'k');
    this.items.push({ code, k, jt, jf, kind: 'cond' });
    return this;
  }

  /** `ret #k`. */
  retK(k: number): this {
    return this.push(insn(BPF_RET | BPF_K, k));
  }

  /** `ret a`. */
  retA(): this {
    return this.push(insn(BPF_RET | BPF_A));
  }

  /** Resolves labels; throws if one is missing, behind the jump, or too far for a u8. */
  build(): Insn[] {
    return this.items.map((it, pc) => {
      if (it.kind === 'plain') return insn(it.code, it.k as number, 0, 0);
      if (it.kind === 'ja') return insn(it.code, this.offset(pc, it.k, 2 ** 32 - 1), 0, 0);
      return insn(it.code, it.k as number, this.offset(pc, it.jt, MAX_COND_JUMP), this.offset(pc, it.jf, MAX_COND_JUMP));
    });
  }

  private push(i: Insn): this {
    this.items.push({ code: i.code, k: i.k, jt: i.jt, jf: i.jf, kind: 'plain' });
    return this;
  }

  private offset(pc: number, target: JumpTarget, max: number): number {
    let off: number;
    if (typeof target === 'number') {
      off = target;
    } else {
      const at = this.labels.get(target);
      if (at === undefined) throw invalidArg('jump target', target, 'a label defined with label()');
      off = at - pc - 1;
      if (off < 0) throw invalidArg('jump target', target, `a label after the jump at ${pc} (classic BPF jumps only forward)`);
    }
    if (!Number.isInteger(off) || off < 0 || off > max) {
      throw invalidArg(
        'jump target',
        target,
        `at most ${max} instructions ahead of the jump at ${pc} (it is ${off}); ` +
          (max === MAX_COND_JUMP ? 'jt/jf are u8: route far targets through a `ja` trampoline' : 'a u32 offset'),
      );
    }
    return off;
  }
}

/** The program as an array of 8-byte struct sock_filter, in host byte order. */
export function encodeProgram(prog: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(prog.length * SOCK_FILTER_SIZE);
  const le = endianness() === 'LE';
  prog.forEach((i, n) => {
    const o = n * SOCK_FILTER_SIZE;
    if (le) buf.writeUInt16LE(i.code, o);
    else buf.writeUInt16BE(i.code, o);
    buf.writeUInt8(i.jt, o + 2);
    buf.writeUInt8(i.jf, o + 3);
    if (le) buf.writeUInt32LE(i.k >>> 0, o + 4);
    else buf.writeUInt32BE(i.k >>> 0, o + 4);
  });
  return buf;
}

/** The inverse of encodeProgram. */
export function decodeProgram(buf: Buffer): Insn[] {
  if (buf.length % SOCK_FILTER_SIZE !== 0) throw invalidArg('program buffer', `${buf.length} bytes`, 'a multiple of 8 bytes');
  const le = endianness() === 'LE';
  const out: Insn[] = [];
  for (let o = 0; o < buf.length; o += SOCK_FILTER_SIZE) {
    out.push({
      code: le ? buf.readUInt16LE(o) : buf.readUInt16BE(o),
      jt: buf.readUInt8(o + 2),
      jf: buf.readUInt8(o + 3),
      k: le ? buf.readUInt32LE(o + 4) : buf.readUInt32BE(o + 4),
    });
  }
  return out;
}

/** A struct sock_fprog and the filter array it points to; hold it until setsockopt returns. */
export interface SockFprog {
  /** 16 bytes: u16 len @0, padding, `struct sock_filter *` @8. */
  readonly fprog: Buffer;
  /** The array `fprog` points into. Collected while referenced only by address = EFAULT or worse. */
  readonly filter: Buffer;
}

/** Serializes a program into the memory setsockopt(SO_ATTACH_*_FILTER/CBPF) reads. */
export function toSockFprog(prog: readonly Insn[]): SockFprog {
  if (prog.length > 0xffff) throw invalidArg('program', `${prog.length} instructions`, 'at most 65535 instructions (sock_fprog.len is u16)');
  const filter = encodeProgram(prog);
  const fprog = Buffer.alloc(SOCK_FPROG_SIZE);
  // An empty Buffer may have no backing store: pass NULL (the kernel rejects len 0 anyway).
  const address = filter.length > 0 ? koffi.address(filter) : 0n;
  if (endianness() === 'LE') {
    fprog.writeUInt16LE(prog.length, FPROG_LEN);
    fprog.writeBigUInt64LE(address, FPROG_FILTER);
  } else {
    fprog.writeUInt16BE(prog.length, FPROG_LEN);
    fprog.writeBigUInt64BE(address, FPROG_FILTER);
  }
  return { fprog, filter };
}
