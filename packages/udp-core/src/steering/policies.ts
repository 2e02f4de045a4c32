/**
 * Steering policies for a reuseport group and the classic BPF program of each:
 *   hash    no program: the kernel's 4-tuple hash (one client port → one socket)
 *   random  `ld rand; mod #N; ret a`: even spread, no affinity
 *   cpu     `ld cpu; mod #N; ret a`: the socket of the CPU that received the packet
 *   key     a hash of the payload's leading bytes up to a delimiter (StatsD's ':' by
 *           default): one key always lands on one socket, wherever it comes from.
 */
import { ShardgramError, invalidArg } from '../errors.js';
import { CbpfBuilder, type Insn } from './cbpf.js';
import { DEFAULTS, LIMITS } from '../defaults.js';

export const POLICY_NAMES = ['hash', 'random', 'cpu', 'key'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export interface KeyPolicyOptions {
  /** The byte that ends the key: one ASCII character, or a number 0–255 (also as "10" / "0x0a"). Default ':'. */
  delimiter?: string | number;
  /** Most key bytes hashed (a CLI's string is fine); rounded up to a multiple of 4. Default 64, at most KEY_MAX_LENGTH_LIMIT. */
  maxLength?: number | string;
}

export type SteeringPolicy =
  | { readonly name: 'hash' }
  | { readonly name: 'random' }
  | { readonly name: 'cpu' }
  | { readonly name: 'key'; readonly delimiter: number; readonly maxLength: number };

/** The `key` policy, with its options resolved (delimiter byte; maxLength a multiple of 4). */
export type KeyPolicy = Extract<SteeringPolicy, { name: 'key' }>;

export const KEY_DEFAULT_DELIMITER = DEFAULTS.keyDelimiter;
export const KEY_DEFAULT_MAX_LENGTH = DEFAULTS.keyMaxLength;
/**
 * Upper bound for maxLength. The kernel translates the program to eBPF (~8.5
 * instructions, 68 bytes, per key byte) and refuses it with ENOMEM when that exceeds
 * net.core.optmem_max, which was 20480 before Linux 6.9: 256 key bytes still fit.
 */
export const KEY_MAX_LENGTH_LIMIT = LIMITS.keyMaxLength.max;
/** Sockets a reuseport group can hold (its counters are u16). */
export const MAX_GROUP_SOCKETS = 65535;

/** How a caller spells the parts of a policy in its messages: the API's options, or the CLI's flags. */
export interface PolicyNames {
  readonly name: string;
  readonly delimiter: string;
  readonly maxLength: string;
}

/** The Supervisor's `policy` option's parts. */
export const POLICY_OPTION_NAMES: PolicyNames = Object.freeze({ name: 'policy.name', delimiter: 'policy.delimiter', maxLength: 'policy.maxLength' });
/** `shardgram serve`'s flags for them. */
export const POLICY_FLAG_NAMES: PolicyNames = Object.freeze({ name: '--policy', delimiter: '--key-delimiter', maxLength: '--key-max-length' });
/** parsePolicy's own words (its arguments have no option names). */
const PARSE_NAMES: PolicyNames = Object.freeze({ name: 'policy', delimiter: 'key delimiter', maxLength: 'key max length' });

function parseDelimiter(d: unknown, name = PARSE_NAMES.delimiter): number {
  if (typeof d === 'number') {
    if (Number.isInteger(d) && d >= 0 && d <= 255) return d;
  } else if (typeof d === 'string' && d.length === 1 && d.charCodeAt(0) < 128) {
    return d.charCodeAt(0);
  } else if (typeof d === 'string' && /^(0x[0-9a-f]{1,2}|[0-9]{1,3})$/i.test(d) && Number(d) <= 255) {
    return Number(d);
  }
  throw invalidArg(name, d, 'one byte: a single ASCII character such as ":", or a number 0–255 (e.g. 10 or 0x0a)');
}

function parseMaxLength(m: unknown, name = PARSE_NAMES.maxLength): number {
  // A CLI's digits are a number: shown as one, as the API's number is.
  const n = typeof m === 'string' && /^[0-9]+$/.test(m.trim()) ? Number(m) : m;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < LIMITS.keyMaxLength.min || n > KEY_MAX_LENGTH_LIMIT) {
    throw invalidArg(name, n, `an integer from ${LIMITS.keyMaxLength.min} to ${KEY_MAX_LENGTH_LIMIT}`);
  }
  return Math.ceil(n / 4) * 4;
}

/**
 * The one check of a steering policy, for the Supervisor's `policy` option
 * (validateOptions, and an app's declared default) and `shardgram serve`'s
 * `--policy`, `--key-delimiter` and `--key-max-length` alike: returns the policy
 * resolved (a key policy's delimiter as a byte, its maxLength rounded up to a
 * multiple of 4, each defaulted), else throws ERR_SHARDGRAM_INVALID_ARG naming the
 * part as the caller spells it (`names`).
 */
export function checkPolicy(spec: unknown, names: PolicyNames = POLICY_OPTION_NAMES): SteeringPolicy {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw invalidArg(names.name.replace(/\.name$/, ''), spec, 'a policy such as { name: "hash" }');
  const { name, delimiter, maxLength } = spec as { name?: unknown; delimiter?: unknown; maxLength?: unknown };
  if (typeof name !== 'string' || !(POLICY_NAMES as readonly string[]).includes(name)) throw invalidArg(names.name, name, `one of ${POLICY_NAMES.join(', ')}`);
  if (name !== 'key') {
    if (delimiter !== undefined || maxLength !== undefined) {
      throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${names.delimiter} and ${names.maxLength} go with ${names.name} key`, {
        option: delimiter !== undefined ? names.delimiter : names.maxLength,
      });
    }
    return { name: name as Exclude<PolicyName, 'key'> };
  }
  return {
    name,
    delimiter: parseDelimiter(delimiter ?? KEY_DEFAULT_DELIMITER, names.delimiter),
    maxLength: parseMaxLength(maxLength ?? KEY_DEFAULT_MAX_LENGTH, names.maxLength),
  };
}

/** Turns a `--policy` value (and key options, a CLI's strings welcome) into a policy; throws ERR_SHARDGRAM_INVALID_ARG. */
export function parsePolicy(name: 'key', key?: KeyPolicyOptions): KeyPolicy;
export function parsePolicy(name: string, key?: KeyPolicyOptions): SteeringPolicy;
export function parsePolicy(name: string, key: KeyPolicyOptions = {}): SteeringPolicy {
  // Key options beside another policy are ignored here, as they always were.
  return checkPolicy(name === 'key' ? { name, ...key } : { name }, PARSE_NAMES);
}

export function checkGroupSize(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_GROUP_SOCKETS) throw invalidArg('number of sockets', n, `an integer from 1 to ${MAX_GROUP_SOCKETS}`);
  return n;
}

// ---------------------------------------------------------------------------
// The key hash. Defined once here (keyHash) and compiled to classic BPF
// (keyProgram); tests hold the two to each other, byte for byte.
//   key   = payload up to (not including) the first delimiter, the payload's end,
//           or maxLength bytes, whichever comes first
//   h     = 0x811c9dc5
//   for each whole 4-byte chunk of the key (big-endian u32), then each byte left:
//           h = (h ^ v) * 0x9e3779b1;  h ^= h >>> 15
//   h     = murmur3 fmix32(h);  socket = h % N
// ---------------------------------------------------------------------------
const H0 = 0x811c9dc5;
const MUL = 0x9e3779b1;
const FMIX1 = 0x85ebca6b;
const FMIX2 = 0xc2b2ae35;

function step(h: number, v: number): number {
  h = Math.imul((h ^ v) >>> 0, MUL) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

function fmix32(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, FMIX1) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, FMIX2) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The key of a payload: its bytes before the delimiter, at most maxLength (rounded up to 4) of them. */
export function payloadKey(payload: Uint8Array, delimiter = KEY_DEFAULT_DELIMITER.charCodeAt(0), maxLength = KEY_DEFAULT_MAX_LENGTH): Uint8Array {
  const limit = Math.min(payload.length, Math.ceil(maxLength / 4) * 4);
  let end = 0;
  while (end < limit && payload[end] !== delimiter) end++;
  return payload.subarray(0, end);
}

/** The 32-bit key hash the `key` program computes (before `% N`). */
export function keyHash(payload: Uint8Array, delimiter = KEY_DEFAULT_DELIMITER.charCodeAt(0), maxLength = KEY_DEFAULT_MAX_LENGTH): number {
  const key = payloadKey(payload, delimiter, maxLength);
  let h = H0;
  const whole = key.length - (key.length % 4);
  for (let i = 0; i < whole; i += 4) h = step(h, ((key[i]! << 24) | (key[i + 1]! << 16) | (key[i + 2]! << 8) | key[i + 3]!) >>> 0);
  for (let i = whole; i < key.length; i++) h = step(h, key[i]!);
  return fmix32(h);
}

/** Index of the socket (in bind order) the `key` policy sends this payload to. */
export function keySocketIndex(payload: Uint8Array, nSockets: number, policy: { delimiter?: number; maxLength?: number } = {}): number {
  return keyHash(payload, policy.delimiter, policy.maxLength) % checkGroupSize(nSockets);
}

// Scratch memory of the key program.
const M_HASH = 0;
const M_WORD = 1;
const M_OFF = 2;
/** Word blocks between trampolines: a block is 21 instructions, jt/jf reach 255. */
const WORDS_PER_HOP = 11;

/** Appends `h = step(h, A)` with h in M_HASH; clobbers X. */
function emitStep(b: CbpfBuilder): void {
  b.ldxMem(M_HASH).alu('xor', 'x').alu('mul', MUL).tax().alu('rsh', 15).alu('xor', 'x').st(M_HASH);
}

/**
 * The key program. Per 4-byte word at offset i it checks `len ≥ i + 4` and that the
 * word holds no delimiter byte (the "has zero byte" test on word ^ delimiter×0x01010101),
 * then hashes the word. The first word that fails either test goes, with X = i, to a
 * shared tail that hashes up to 3 single bytes with their own length and delimiter
 * checks, so no load ever reads past the payload (which would return socket 0).
 */
function keyProgram(n: number, delimiter: number, maxLength: number): Insn[] {
  const words = Math.ceil(maxLength / 4);
  const d4 = Math.imul(delimiter, 0x01010101) >>> 0;
  const b = new CbpfBuilder();
  b.ldImm(H0).st(M_HASH);
  const hops = Math.ceil(words / WORDS_PER_HOP);
  for (let hop = 0; hop < hops; hop++) {
    const last = hop === hops - 1;
    const slow = last ? 'tail' : `hop${hop}`;
    for (let j = hop * WORDS_PER_HOP; j < Math.min(words, (hop + 1) * WORDS_PER_HOP); j++) {
      const i = 4 * j;
      b.ldxImm(i)
        .ldLen()
        .jmp('jgt', i + 3, 0, slow) // fewer than 4 bytes left
        .ldAbs('w', i)
        .st(M_WORD)
        .alu('xor', d4)
        .tax()
        .alu('sub', 0x01010101)
        .alu('or', 'x')
        .alu('xor', 'x') // (v - 0x01010101) & ~v, as ((v - 0x01010101) | v) ^ v
        .alu('and', 0x80808080)
        .ldxImm(i)
        .jmp('jeq', 0, 0, slow) // a delimiter byte in this word
        .ldMem(M_WORD);
      emitStep(b);
    }
    if (!last) b.ja(`over${hop}`).label(slow).ja('tail').label(`over${hop}`);
  }
  b.ja('done');
  // Tail: X = offset of the word that failed; hash its bytes before the delimiter or the end.
  b.label('tail').stx(M_OFF);
  for (let k = 0; k < 3; k++) {
    if (k > 0) b.ldxMem(M_OFF);
    b.ldLen()
      .alu('sub', 'x')
      .jmp('jgt', k, 0, 'done') // bytes left after offset i
      .ldInd('b', k)
      .jmp('jeq', delimiter, 'done', 0);
    emitStep(b);
  }
  // Byte 3 of a word sent here is the delimiter or past the end.
  b.label('done')
    .ldMem(M_HASH)
    .tax()
    .alu('rsh', 16)
    .alu('xor', 'x')
    .alu('mul', FMIX1)
    .tax()
    .alu('rsh', 13)
    .alu('xor', 'x')
    .alu('mul', FMIX2)
    .tax()
    .alu('rsh', 16)
    .alu('xor', 'x')
    .alu('mod', n)
    .retA();
  return b.build();
}

/** The classic BPF program for a policy over a group of `nSockets`; undefined for `hash` (no program). */
export function policyProgram(policy: SteeringPolicy, nSockets: number): Insn[] | undefined {
  const n = checkGroupSize(nSockets);
  switch (policy.name) {
    case 'hash':
      return undefined;
    case 'random':
      return new CbpfBuilder().ldRandom().alu('mod', n).retA().build();
    case 'cpu':
      return new CbpfBuilder().ldCpu().alu('mod', n).retA().build();
    case 'key':
      return keyProgram(n, parseDelimiter(policy.delimiter), parseMaxLength(policy.maxLength));
  }
}
