/**
 * The classic BPF builder, encoder and validator, the reference interpreter, and the
 * policy programs — each rejection rule checked against the kernel itself.
 */
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardgramError } from '@shardgram/udp-core';
import { closeFd, openReusePortSocket, type OpenedSocket } from '@shardgram/udp-core/sockets';
import { fairness } from '@shardgram/udp-core/stats';
import {
  CbpfBuilder,
  attachProgram,
  decodeProgram,
  detachSteering,
  encodeProgram,
  insn,
  keyHash,
  keySocketIndex,
  parsePolicy,
  payloadKey,
  policyProgram,
  runProgram,
  toSockFprog,
  validateProgram,
  type CbpfRule,
  type Insn,
  type SteeringPolicy,
} from '@shardgram/udp-core/steering';

const hex = (b: Buffer): string => b.toString('hex');
const AD = -0x1000; // SKF_AD_OFF

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof ShardgramError ? e.code : `not a ShardgramError: ${String(e)}`;
  }
  return undefined;
}

// One bound SO_REUSEPORT socket: a group of one, enough for the kernel to judge programs.
let sock: OpenedSocket;
beforeAll(() => {
  sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
});
afterAll(() => closeFd(sock.fd));

/** 'ok', or the errno with which setsockopt(SO_ATTACH_REUSEPORT_CBPF) refused the program. */
function kernelVerdict(prog: readonly Insn[]): 'ok' | number {
  try {
    attachProgram(sock.fd, prog, { validate: false });
    return 'ok';
  } catch (e) {
    if (e instanceof ShardgramError && e.errno !== undefined) return e.errno;
    throw e;
  }
}

describe('instruction encoding', () => {
  it('encodes instructions to the bytes tcpdump -dd and filter.h give', () => {
    const b = new CbpfBuilder()
      .ldAbs('h', 12) // { 0x28, 0, 0, 0x0000000c }
      .ldAbs('b', 23) // { 0x30, 0, 0, 0x00000017 }
      .ldAbs('w', 26) // { 0x20, 0, 0, 0x0000001a }
      .ldInd('h', 14) // { 0x48, 0, 0, 0x0000000e }
      .ldxMsh(14) // { 0xb1, 0, 0, 0x0000000e }
      .ldLen() // 0x80
      .ldxLen() // 0x81
      .ldImm(7) // 0x00
      .ldxImm(5) // 0x01
      .ldMem(1) // 0x60
      .ldxMem(2) // 0x61
      .st(3) // 0x02
      .stx(4) // 0x03
      .alu('mod', 3) // 0x94
      .alu('xor', 'x') // 0xac
      .alu('rsh', 16) // 0x74
      .neg() // 0x84
      .tax() // 0x07
      .txa() // 0x87
      .ldRandom() // { 0x20, 0, 0, 0xfffff038 }
      .ldCpu() // { 0x20, 0, 0, 0xfffff024 }
      .jmp('jeq', 0x86dd, 'end', 0) // { 0x15, jt, 0, 0x86dd }
      .jmp('jset', 0x1fff, 0, 'end') // { 0x45, 0, jf, 0x1fff }
      .jmp('jgt', 'x', 0, 0) // 0x2d
      .jmp('jge', 9, 0, 0) // 0x35
      .ja('end') // 0x05
      .retK(262144) // { 0x06, 0, 0, 0x00040000 }
      .label('end')
      .retA(); // 0x16
    const bytes = hex(encodeProgram(b.build()));
    const expected = [
      '28000000' + '0c000000',
      '30000000' + '17000000',
      '20000000' + '1a000000',
      '48000000' + '0e000000',
      'b1000000' + '0e000000',
      '80000000' + '00000000',
      '81000000' + '00000000',
      '00000000' + '07000000',
      '01000000' + '05000000',
      '60000000' + '01000000',
      '61000000' + '02000000',
      '02000000' + '03000000',
      '03000000' + '04000000',
      '94000000' + '03000000',
      'ac000000' + '00000000',
      '74000000' + '10000000',
      '84000000' + '00000000',
      '07000000' + '00000000',
      '87000000' + '00000000',
      '20000000' + '38f0ffff',
      '20000000' + '24f0ffff',
      '15000500' + 'dd860000', // jeq: 'end' is 5 instructions after the next
      '45000004' + 'ff1f0000', // jset: jf 4
      '2d000000' + '00000000',
      '35000000' + '09000000',
      '05000000' + '01000000', // ja +1
      '06000000' + '00000400',
      '16000000' + '00000000',
    ].join('');
    expect(bytes).toBe(expected);
  });

  it('round-trips through decodeProgram and builds a 16-byte sock_fprog pointing at the filter', () => {
    const prog = new CbpfBuilder().ldRandom().alu('mod', 3).retA().build();
    expect(hex(encodeProgram(prog))).toBe('2000000038f0ffff' + '9400000003000000' + '1600000000000000');
    expect(decodeProgram(encodeProgram(prog))).toEqual(prog);
    const { fprog, filter } = toSockFprog(prog);
    expect(fprog.length).toBe(16);
    expect(fprog.readUInt16LE(0)).toBe(3);
    expect(fprog.readBigUInt64LE(8)).toBe(koffi.address(filter));
    expect(filter.length).toBe(24);
  });

  it("stores negative k as its 32-bit two's complement and refuses what does not fit", () => {
    expect(insn(0x20, AD + 56).k).toBe(0xfffff038);
    expect(codeOf(() => insn(0x20, 2 ** 32))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(codeOf(() => insn(0x10000))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(codeOf(() => insn(0x15, 0, 256, 0))).toBe('ERR_SHARDGRAM_INVALID_ARG');
  });
});

describe('labels', () => {
  it('resolves forward labels to jt/jf offsets and ja to k', () => {
    const p = new CbpfBuilder().ldLen().jmp('jgt', 10, 'big', 'small').label('small').retK(0).label('big').retK(1).build();
    expect(p[1]).toEqual({ code: 0x25, jt: 1, jf: 0, k: 10 });
  });

  it('allows a conditional jump of exactly 255 and refuses 256; ja reaches further', () => {
    const make = (gap: number): CbpfBuilder => {
      const b = new CbpfBuilder().ldLen().jmp('jeq', 0, 'far', 0);
      for (let i = 0; i < gap; i++) b.ldImm(i);
      return b.label('far').retA();
    };
    expect(make(255).build()[1]!.jt).toBe(255);
    expect(() => make(256).build()).toThrow(/at most 255 instructions ahead of the jump at 1 \(it is 256\)/);
    const b = new CbpfBuilder().ja('far');
    for (let i = 0; i < 1000; i++) b.ldImm(i);
    expect(b.label('far').retA().build()[0]).toEqual({ code: 0x05, jt: 0, jf: 0, k: 1000 });
  });

  it('refuses undefined, backward and duplicate labels', () => {
    expect(codeOf(() => new CbpfBuilder().ja('nowhere').retA().build())).toBe('ERR_SHARDGRAM_INVALID_ARG');
    expect(() => new CbpfBuilder().label('top').ldLen().ja('top').retA().build()).toThrow(/only forward/);
    expect(codeOf(() => new CbpfBuilder().label('a').label('a'))).toBe('ERR_SHARDGRAM_INVALID_ARG');
  });
});

describe('validator, against the kernel', () => {
  const ld0 = insn(0x00, 0); // ld #0
  const retA = insn(0x16);
  const cases: Array<{ name: string; rule: CbpfRule; prog: Insn[] }> = [
    { name: 'empty program', rule: 'empty', prog: [] },
    { name: '4097 instructions', rule: 'too-long', prog: [...Array.from({ length: 4096 }, () => ld0), retA] },
    { name: 'unknown opcode (ldb len)', rule: 'unknown-opcode', prog: [insn(0x90), retA] },
    { name: 'unknown opcode (0xff)', rule: 'unknown-opcode', prog: [insn(0xff), retA] },
    { name: 'div #0', rule: 'division-by-zero', prog: [ld0, insn(0x34, 0), retA] },
    { name: 'mod #0', rule: 'division-by-zero', prog: [ld0, insn(0x94, 0), retA] },
    { name: 'lsh #32', rule: 'shift-out-of-range', prog: [ld0, insn(0x64, 32), retA] },
    { name: 'st M[16]', rule: 'memory-index', prog: [ld0, insn(0x02, 16), retA] },
    { name: 'ldx M[16]', rule: 'memory-index', prog: [insn(0x61, 16), retA] },
    { name: 'jeq past the end', rule: 'jump-out-of-range', prog: [ld0, insn(0x15, 0, 1, 0), retA] },
    { name: 'ja past the end', rule: 'jump-out-of-range', prog: [insn(0x05, 1), retA] },
    { name: 'ancillary SKF_AD_OFF + 64', rule: 'unknown-ancillary', prog: [insn(0x20, AD + 64), retA] },
    { name: 'ancillary SKF_AD_OFF + 2', rule: 'unknown-ancillary', prog: [insn(0x30, AD + 2), retA] },
    { name: 'last instruction not a ret', rule: 'no-final-ret', prog: [retA, ld0] },
    { name: 'ld M[0] never written', rule: 'memory-uninitialized', prog: [insn(0x60, 0), retA] },
    {
      name: 'M[0] written on one path only',
      rule: 'memory-uninitialized',
      // ld len; jeq #0, +0, +1; st M[0]; ld M[0]; ret a
      prog: [insn(0x80), insn(0x15, 0, 0, 1), insn(0x02, 0), insn(0x60, 0), retA],
    },
    {
      name: 'unreachable read of M[0] after a ret',
      rule: 'memory-uninitialized',
      prog: [ld0, retA, insn(0x60, 0), retA],
    },
  ];

  for (const c of cases) {
    it(`rejects ${c.name} (${c.rule}), as the kernel does with EINVAL`, () => {
      expect(validateProgram(c.prog)?.rule).toBe(c.rule);
      expect(kernelVerdict(c.prog)).toBe(22);
      expect(codeOf(() => attachProgram(sock.fd, c.prog))).toBe('ERR_SHARDGRAM_INVALID_ARG');
    });
  }

  const good: Array<{ name: string; prog: Insn[] }> = [
    { name: '4096 instructions', prog: [...Array.from({ length: 4095 }, () => ld0), retA] },
    { name: 'every known ancillary load', prog: [...Array.from({ length: 16 }, (_, i) => insn(0x20, AD + 4 * i)), retA] },
    { name: 'rsh #31, div #1, ja 0', prog: [ld0, insn(0x74, 31), insn(0x34, 1), insn(0x05, 0), retA] },
    { name: 'M[15] written on both paths', prog: [insn(0x80), insn(0x15, 0, 0, 2), insn(0x02, 15), insn(0x05, 1), insn(0x03, 15), insn(0x60, 15), retA] },
    { name: 'an unreachable read of M[0] written before the ret', prog: [insn(0x02, 0), retA, insn(0x60, 0), retA] },
    { name: 'ret #7 (an index past the group: the kernel hashes instead)', prog: [insn(0x06, 7)] },
  ];
  for (const c of good) {
    it(`accepts ${c.name}, as the kernel does`, () => {
      expect(validateProgram(c.prog)).toBeUndefined();
      expect(kernelVerdict(c.prog)).toBe('ok');
    });
  }

  it('says which rule and instruction in the thrown message', () => {
    expect(() => attachProgram(sock.fd, [ld0, insn(0x94, 0), retA])).toThrow(/division-by-zero.*instruction 1: mod by constant 0/);
  });
});

describe('reference interpreter', () => {
  const pkt = Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a]);
  it('loads big-endian, returns 0 on an out-of-bounds load, and sees ld len = payload length', () => {
    expect(runProgram(new CbpfBuilder().ldAbs('w', 1).retA().build(), pkt)).toBe(0x3456789a);
    expect(runProgram(new CbpfBuilder().ldAbs('h', 3).retA().build(), pkt)).toBe(0x789a);
    expect(runProgram(new CbpfBuilder().ldAbs('w', 2).retK(9).build(), pkt)).toBe(0);
    expect(runProgram(new CbpfBuilder().ldxImm(4).ldInd('b', 0).retA().build(), pkt)).toBe(0x9a);
    expect(runProgram(new CbpfBuilder().ldxImm(4).ldInd('b', 1).retK(9).build(), pkt)).toBe(0);
    expect(runProgram(new CbpfBuilder().ldLen().retA().build(), pkt)).toBe(5);
  });

  it('does 32-bit unsigned arithmetic and returns 0 on division by X = 0', () => {
    expect(runProgram(new CbpfBuilder().ldImm(0xffffffff).alu('add', 2).retA().build(), pkt)).toBe(1);
    expect(runProgram(new CbpfBuilder().ldImm(0x9e3779b1).alu('mul', 0x85ebca6b).retA().build(), pkt)).toBe(Math.imul(0x9e3779b1, 0x85ebca6b) >>> 0);
    expect(runProgram(new CbpfBuilder().ldImm(5).neg().retA().build(), pkt)).toBe(2 ** 32 - 5);
    expect(runProgram(new CbpfBuilder().ldImm(5).ldxImm(0).alu('div', 'x').retK(9).build(), pkt)).toBe(0);
    expect(runProgram(new CbpfBuilder().ldCpu().alu('mod', 3).retA().build(), pkt, { cpu: 5 })).toBe(2);
    expect(runProgram(new CbpfBuilder().ldRandom().alu('mod', 3).retA().build(), pkt, { random: () => 0xfffffffe })).toBe(0xfffffffe % 3);
  });
});

describe('policy programs', () => {
  const policies: SteeringPolicy[] = [
    parsePolicy('random'),
    parsePolicy('cpu'),
    parsePolicy('key'),
    parsePolicy('key', { delimiter: '\n', maxLength: 1 }),
    parsePolicy('key', { delimiter: 0, maxLength: 5 }),
    parsePolicy('key', { maxLength: 256 }),
  ];
  for (const p of policies) {
    for (const n of [1, 3, 64]) {
      const label = p.name === 'key' ? `key(delimiter ${p.delimiter}, maxLength ${p.maxLength})` : p.name;
      it(`${label} over ${n} sockets passes the validator and the kernel`, () => {
        const prog = policyProgram(p, n)!;
        expect(validateProgram(prog)).toBeUndefined();
        expect(prog.length).toBeLessThanOrEqual(4096);
        expect(kernelVerdict(prog)).toBe('ok');
      });
    }
  }

  it('random and cpu are the three-instruction programs', () => {
    expect(hex(encodeProgram(policyProgram(parsePolicy('random'), 3)!))).toBe('2000000038f0ffff9400000003000000' + '1600000000000000');
    expect(hex(encodeProgram(policyProgram(parsePolicy('cpu'), 4)!))).toBe('2000000024f0ffff9400000004000000' + '1600000000000000');
    expect(policyProgram(parsePolicy('hash'), 3)).toBeUndefined();
  });

  it('key: the program computes exactly the reference hash, for every payload length and delimiter position', () => {
    // N = 65521 (prime): an out-of-bounds load (program returns 0) would show as a mismatch.
    const n = 65521;
    let seed = 12345;
    const rand = (m: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % m;
    };
    for (const maxLength of [1, 4, 7, 64, 256]) {
      const p = parsePolicy('key', { maxLength });
      const prog = policyProgram(p, n)!;
      for (let len = 0; len <= p.maxLength + 9; len++) {
        for (let t = 0; t < 6; t++) {
          const b = Buffer.alloc(len);
          // t = 0: no delimiter at all; otherwise ~1 delimiter in 8 bytes, anywhere.
          for (let i = 0; i < len; i++) b[i] = t > 0 && rand(8) === 0 ? 0x3a : rand(256);
          const want = keyHash(b, p.delimiter, p.maxLength) % n;
          const got = runProgram(prog, b);
          if (got !== want) expect({ maxLength, payload: b.toString('hex'), got }).toEqual({ maxLength, payload: b.toString('hex'), got: want });
        }
      }
    }
  });

  it('key: one key, one socket, whatever follows the delimiter or the length bound', () => {
    const prog = policyProgram(parsePolicy('key', { maxLength: 16 }), 7)!;
    const at = (s: string): number => runProgram(prog, Buffer.from(s));
    expect(new Set(['a.b.c:1|c', 'a.b.c:999|ms', 'a.b.c:', 'a.b.c'].map(at)).size).toBe(1);
    expect(new Set(['0123456789abcdefXYZ:1|c', '0123456789abcdef', '0123456789abcdef:2|g'].map(at)).size).toBe(1);
    expect(payloadKey(Buffer.from('metric.name.7:1|c'))).toEqual(Buffer.from('metric.name.7'));
  });

  it('key: 3000 StatsD-like keys spread evenly over 3, 4 and 8 sockets', () => {
    for (const n of [3, 4, 8]) {
      const counts = new Array<number>(n).fill(0);
      for (let k = 0; k < 3000; k++) counts[keySocketIndex(Buffer.from(`metric.name.${k}:1|c`), n)]!++;
      const f = fairness(counts);
      expect(f.jain).toBeGreaterThan(0.99);
      expect(f.chiSquareP).toBeGreaterThan(0.001);
    }
  });

  it('parsePolicy takes CLI strings and refuses bad ones', () => {
    expect(parsePolicy('key')).toEqual({ name: 'key', delimiter: 0x3a, maxLength: 64 });
    expect(parsePolicy('key', { delimiter: '|', maxLength: '30' })).toEqual({ name: 'key', delimiter: 0x7c, maxLength: 32 });
    expect(parsePolicy('key', { delimiter: '0x0a' })).toMatchObject({ delimiter: 10 });
    expect(parsePolicy('key', { delimiter: 124 })).toMatchObject({ delimiter: 124 });
    for (const bad of [
      () => parsePolicy('round-robin'),
      () => parsePolicy('key', { maxLength: 0 }),
      () => parsePolicy('key', { maxLength: 257 }),
      () => parsePolicy('key', { delimiter: '::' }),
      () => parsePolicy('key', { delimiter: 'é' }),
      () => policyProgram(parsePolicy('random'), 0),
    ]) {
      expect(codeOf(bad)).toBe('ERR_SHARDGRAM_INVALID_ARG');
    }
  });

  it('detaching reports whether a program was attached', () => {
    attachProgram(sock.fd, policyProgram(parsePolicy('random'), 1)!);
    expect(detachSteering(sock.fd)).toBe(true);
    expect(detachSteering(sock.fd)).toBe(false);
  });
});
