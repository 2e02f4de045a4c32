/**
 * Attaching a steering program to a reuseport group, and taking it off again:
 * setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &sock_fprog) and
 * setsockopt(SOL_SOCKET, SO_DETACH_REUSEPORT_BPF). The program belongs to the whole
 * group, so any one bound member's fd will do; it must be attached after bind (before
 * bind, the socket gets a group of its own and its bind then fails with EADDRINUSE).
 */
import { ShardgramError, errnoName } from '../errors.js';
import {
  EINVAL,
  ENOENT,
  ENOMEM,
  ENOPROTOOPT,
  EPERM,
  SOCK_FPROG_SIZE,
  SOL_SOCKET,
  SO_ATTACH_REUSEPORT_CBPF,
  SO_DETACH_REUSEPORT_BPF,
  SO_REUSEPORT,
} from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import { getIntOption, localAddress, readSysctl } from '../ffi/socket.js';
import { toSockFprog, type Insn, type SockFprog } from './cbpf.js';
import { parsePolicy, policyProgram, type KeyPolicyOptions, type PolicyName, type SteeringPolicy } from './policies.js';
import { assertValidProgram } from './validate.js';

export interface AttachedSteering {
  readonly policy: SteeringPolicy;
  readonly nSockets: number;
  /** The program now attached to the group; undefined for `hash` (none: the kernel's own hash). */
  readonly program: readonly Insn[] | undefined;
}

export interface AttachProgramOptions {
  /** Run the classic checker here first for a precise message (default true). */
  validate?: boolean;
}

/** While setsockopt runs, the memory it reads is referenced from here, not only by address. */
let inFlight: SockFprog | undefined;

function where(fd: number): { address?: string; port?: number; text: string } {
  try {
    const a = localAddress(fd);
    return { address: a.address, port: a.port, text: `fd ${fd} (UDP ${a.address}:${a.port})` };
  } catch {
    return { text: `fd ${fd}` };
  }
}

function fail(fd: number, option: string, errno: number, advice: string): ShardgramError {
  const w = where(fd);
  return new ShardgramError('ERR_SHARDGRAM_SYSCALL', `setsockopt(SOL_SOCKET, ${option}) on ${w.text} failed: ${errnoName(errno)} (errno ${errno}). ${advice}`, {
    errno,
    syscall: 'setsockopt',
    option,
    ...(w.address !== undefined ? { address: w.address, port: w.port } : {}),
  });
}

/** Checks that fd is a bound SO_REUSEPORT socket, so the kernel's EINVAL never has to be guessed at. */
function checkMember(fd: number, option: string): void {
  let reuse: number;
  try {
    reuse = getIntOption(fd, SOL_SOCKET, SO_REUSEPORT);
  } catch (err) {
    const e = err instanceof ShardgramError && err.errno !== undefined ? err.errno : EINVAL;
    throw fail(fd, option, e, `fd ${fd} is not an open socket: pass the fd of a bound member of the group.`);
  }
  if (!reuse) throw fail(fd, option, EINVAL, 'The socket does not have SO_REUSEPORT set, so it has no group to steer: open it with openReusePortSocket().');
  if (where(fd).port === 0) {
    throw fail(
      fd,
      option,
      EINVAL,
      'The socket is not bound yet. Attach after bind: a program attached before bind gives the socket a group of its own, and its bind then fails with EADDRINUSE.',
    );
  }
}

/** Attaches a classic BPF program to the reuseport group `fd` belongs to (replacing any program). */
export function attachProgram(fd: number, prog: readonly Insn[], opts: AttachProgramOptions = {}): void {
  const option = 'SO_ATTACH_REUSEPORT_CBPF';
  if (opts.validate !== false) assertValidProgram(prog, 'the steering program');
  checkMember(fd, option);
  const held = toSockFprog(prog);
  let rc: number;
  let errno = 0;
  inFlight = held;
  try {
    rc = libc().setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, held.fprog, SOCK_FPROG_SIZE);
    if (rc !== 0) errno = libc().errno();
  } finally {
    // The kernel has copied the program by the time setsockopt returns.
    if (inFlight === held) inFlight = undefined;
  }
  if (rc === 0) return;
  if (errno === ENOMEM) {
    const max = readSysctl('net/core/optmem_max');
    throw fail(
      fd,
      option,
      errno,
      `The ${prog.length}-instruction program, translated to eBPF, is larger than net.core.optmem_max${max !== undefined ? ` = ${max}` : ''} bytes. ` +
        'Use a smaller key length, or raise net.core.optmem_max (sysctl -w net.core.optmem_max=131072).',
    );
  }
  if (errno === EINVAL) {
    throw fail(fd, option, errno, "The kernel's classic BPF checker refused the program, or the socket is not in an SO_REUSEPORT group.");
  }
  if (errno === ENOPROTOOPT)
    throw fail(fd, option, errno, 'This kernel has no SO_ATTACH_REUSEPORT_CBPF: Linux ≥ 4.5 is needed for steering policies (use --policy hash).');
  if (errno === EPERM) throw fail(fd, option, errno, "The socket's filters are locked (SO_LOCK_FILTER); open a fresh socket.");
  throw fail(fd, option, errno, 'The kernel refused the steering program.');
}

/** Removes the group's steering program; false if there was none (ENOENT). Selection returns to the 4-tuple hash. */
export function detachSteering(fd: number): boolean {
  const option = 'SO_DETACH_REUSEPORT_BPF';
  const dummy = Buffer.alloc(4);
  if (libc().setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, dummy, 4) === 0) return true;
  const errno = libc().errno();
  if (errno === ENOENT) return false;
  if (errno === ENOPROTOOPT)
    throw fail(
      fd,
      option,
      errno,
      'This kernel has no SO_DETACH_REUSEPORT_BPF (Linux ≥ 5.3): to return to hashing, attach a program that returns an index ≥ the group size, or reopen the group.',
    );
  if (errno === EINVAL) throw fail(fd, option, errno, 'The socket does not have SO_REUSEPORT set: it belongs to no group.');
  throw fail(fd, option, errno, 'The kernel refused to detach the steering program.');
}

/**
 * Applies a policy to the group of `fd` (any bound member), whose `nSockets` members
 * are indexed in bind order. `hash` detaches any program. Call it after every member
 * is bound, and again whenever the group's size changes: N is compiled in, and an
 * index ≥ the group's size falls back to the hash.
 */
export function attachSteering(fd: number, policy: SteeringPolicy | PolicyName, nSockets: number, opts: KeyPolicyOptions = {}): AttachedSteering {
  const p = typeof policy === 'string' ? parsePolicy(policy, opts) : policy;
  const program = policyProgram(p, nSockets);
  if (program) attachProgram(fd, program);
  else detachSteering(fd);
  return { policy: p, nSockets, program };
}
