/**
 * Unix-socket calls Node does not offer: the peer's credentials (SO_PEERCRED), and
 * file descriptors passed with SCM_RIGHTS. Blocking calls, for short exchanges on a
 * connection of our own (the control socket, a service manager's notify socket).
 */
import { ShardgramError, errnoName } from '../errors.js';
import {
  AF_UNIX,
  CMSG_ALIGN,
  CMSGHDR_SIZE,
  CMSG_DATA,
  CMSG_LEN_OFF,
  CMSG_LEVEL,
  CMSG_TYPE,
  IOVEC_SIZE,
  IOV_BASE,
  IOV_LEN,
  MSGHDR_SIZE,
  MSG_CMSG_CLOEXEC,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_CTRUNC,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  SCM_RIGHTS,
  SOCKADDR_UN_SIZE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_PEERCRED,
  SUN_FAMILY,
  SUN_PATH,
  UCRED_GID,
  UCRED_PID,
  UCRED_SIZE,
  UCRED_UID,
  UNIX_PATH_MAX,
} from './kernel.js';
import koffi from 'koffi';
import { libc } from './libc.js';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

function fail(call: string, what: string): ShardgramError {
  const e = libc().errno();
  return new ShardgramError('ERR_SHARDGRAM_SYSCALL', `${call} (${what}) failed: ${errnoName(e)} (errno ${e})`, { errno: e, syscall: call });
}

/** SO_PEERCRED of a connected unix socket: who is at the other end, as the kernel saw it at connect(). */
export function peerCred(fd: number): PeerCred {
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(UCRED_SIZE);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0) throw fail('getsockopt', 'SO_PEERCRED');
  return { pid: buf.readInt32LE(UCRED_PID), uid: buf.readUInt32LE(UCRED_UID), gid: buf.readUInt32LE(UCRED_GID) };
}

/** A `struct sockaddr_un` for a path (a leading `@` names the abstract namespace). */
export function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const bytes = Buffer.from(path.startsWith('@') ? `\0${path.slice(1)}` : path);
  if (bytes.length >= UNIX_PATH_MAX)
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `unix socket path is ${bytes.length} bytes, over the kernel's ${UNIX_PATH_MAX - 1}: ${path}`);
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, SUN_FAMILY);
  bytes.copy(addr, SUN_PATH);
  // Abstract names count their exact length; paths include the terminating NUL.
  return { addr, len: SUN_PATH + bytes.length + (path.startsWith('@') ? 0 : 1) };
}

/** A blocking unix socket connected to `path` (stream, or datagram for sd_notify). */
export function connectUnix(path: string, type: 'stream' | 'dgram'): number {
  const c = libc();
  const fd = c.socket(AF_UNIX, (type === 'stream' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) throw fail('socket', 'AF_UNIX');
  const { addr, len } = sockaddrUn(path);
  if (c.connect(fd, addr, len) !== 0) {
    const err = fail('connect', path);
    c.close(fd);
    throw err;
  }
  return fd;
}

/** sendmsg(2) of `data` with `fds` as SCM_RIGHTS. Every buffer stays referenced until the call returns. */
export function sendWithFds(fd: number, data: Buffer, fds: readonly number[]): void {
  const iov = Buffer.alloc(IOVEC_SIZE);
  const body = data.length ? data : Buffer.from([0]);
  iov.writeBigUInt64LE(koffi.address(body), IOV_BASE);
  iov.writeBigUInt64LE(BigInt(body.length), IOV_LEN);
  const ctrlLen = fds.length ? CMSGHDR_SIZE + CMSG_ALIGN(4 * fds.length) : 0;
  const ctrl = Buffer.alloc(Math.max(ctrlLen, 8));
  if (fds.length) {
    ctrl.writeBigUInt64LE(BigInt(CMSGHDR_SIZE + 4 * fds.length), CMSG_LEN_OFF);
    ctrl.writeInt32LE(SOL_SOCKET, CMSG_LEVEL);
    ctrl.writeInt32LE(SCM_RIGHTS, CMSG_TYPE);
    fds.forEach((f, i) => {
      ctrl.writeInt32LE(f, CMSG_DATA + 4 * i);
    });
  }
  const msg = Buffer.alloc(MSGHDR_SIZE);
  msg.writeBigUInt64LE(0n, MSG_NAME);
  msg.writeUInt32LE(0, MSG_NAMELEN);
  msg.writeBigUInt64LE(koffi.address(iov), MSG_IOV);
  msg.writeBigUInt64LE(1n, MSG_IOVLEN);
  msg.writeBigUInt64LE(fds.length ? koffi.address(ctrl) : 0n, MSG_CONTROL);
  msg.writeBigUInt64LE(BigInt(ctrlLen), MSG_CONTROLLEN);
  const n = libc().sendmsg(fd, msg, 0);
  // Keep every buffer the kernel read alive to here.
  void [body, iov, ctrl, msg];
  if (n < 0) throw fail('sendmsg', 'SCM_RIGHTS');
}

/** recvmsg(2) of up to `max` bytes with up to `maxFds` passed fds (received close-on-exec). */
export function recvWithFds(fd: number, max: number, maxFds: number): { data: Buffer; fds: number[] } {
  const body = Buffer.alloc(max);
  const iov = Buffer.alloc(IOVEC_SIZE);
  iov.writeBigUInt64LE(koffi.address(body), IOV_BASE);
  iov.writeBigUInt64LE(BigInt(max), IOV_LEN);
  const ctrl = Buffer.alloc(CMSGHDR_SIZE + CMSG_ALIGN(4 * maxFds));
  const msg = Buffer.alloc(MSGHDR_SIZE);
  msg.writeBigUInt64LE(koffi.address(iov), MSG_IOV);
  msg.writeBigUInt64LE(1n, MSG_IOVLEN);
  msg.writeBigUInt64LE(koffi.address(ctrl), MSG_CONTROL);
  msg.writeBigUInt64LE(BigInt(ctrl.length), MSG_CONTROLLEN);
  const n = libc().recvmsg(fd, msg, MSG_CMSG_CLOEXEC);
  void [body, iov, ctrl];
  if (n < 0) throw fail('recvmsg', 'SCM_RIGHTS');
  const fds: number[] = [];
  const used = Number(msg.readBigUInt64LE(MSG_CONTROLLEN));
  for (let off = 0; off + CMSGHDR_SIZE <= used; ) {
    const len = Number(ctrl.readBigUInt64LE(off + CMSG_LEN_OFF));
    if (len < CMSGHDR_SIZE) break;
    if (ctrl.readInt32LE(off + CMSG_LEVEL) === SOL_SOCKET && ctrl.readInt32LE(off + CMSG_TYPE) === SCM_RIGHTS) {
      for (let p = off + CMSG_DATA; p + 4 <= off + len; p += 4) fds.push(ctrl.readInt32LE(p));
    }
    off += CMSG_ALIGN(len);
  }
  if (msg.readInt32LE(MSG_FLAGS) & MSG_CTRUNC) {
    for (const f of fds) libc().close(f);
    throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `recvmsg: more than ${maxFds} file descriptors were passed; the rest were lost (MSG_CTRUNC)`);
  }
  return { data: body.subarray(0, Number(n)), fds };
}
