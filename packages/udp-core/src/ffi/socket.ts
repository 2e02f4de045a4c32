/**
 * One member of an SO_REUSEPORT group, made through libc: socket, setsockopt,
 * bind, getsockname, and the kernel's view of its queue (SO_MEMINFO).
 */
import { fstatSync, readFileSync } from 'node:fs';
import { ShardgramError, errnoName, invalidArg, type PortHolder } from '../errors.js';
import { LIMITS } from '../defaults.js';
import { describeHolder, findPortHolders, socketFdsOf } from './holders.js';
import {
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EMFILE,
  EPERM,
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPPROTO_UDP,
  IPV6_V6ONLY,
  SK_MEMINFO_DROPS,
  SK_MEMINFO_RCVBUF,
  SK_MEMINFO_RMEM_ALLOC,
  SK_MEMINFO_VARS,
  SOCKADDR_MAX,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_MEMINFO,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEPORT,
  RCVBUF_DOUBLING,
} from './kernel.js';
import { type Libc, libc } from './libc.js';
import { decodeSockaddr, encodeSockaddr, familyOf, isIPv4Mapped, type Family } from './sockaddr.js';

export interface OpenSocketOptions {
  /** IPv4 or IPv6 literal. */
  address: string;
  /** 0 lets the kernel choose; read the chosen one from the result. */
  port: number;
  /** Requested SO_RCVBUF in bytes (the kernel doubles it, capped by net.core.rmem_max). */
  rcvbuf?: number;
  /** Use SO_RCVBUFFORCE (needs CAP_NET_ADMIN) to go past net.core.rmem_max. */
  rcvbufForce?: boolean;
  /** Inodes of sockets that are ours (left out when explaining EADDRINUSE). */
  ownInodes?: ReadonlySet<number>;
}

export interface OpenedSocket {
  fd: number;
  family: Family;
  address: string;
  port: number;
  inode: number;
  /** SO_RCVBUF as the kernel reports it after our request (bytes of buffer space). */
  rcvbuf: number;
  /** Human-readable warnings (e.g. a capped SO_RCVBUF). */
  warnings: string[];
}

export interface SocketMemInfo {
  /** Bytes queued for the reader now (SK_MEMINFO_RMEM_ALLOC, includes per-skb overhead). */
  queueBytes: number;
  /** The socket's receive buffer limit (SK_MEMINFO_RCVBUF). */
  rcvbuf: number;
  /** Datagrams the kernel dropped for this socket since it was made (SK_MEMINFO_DROPS). */
  drops: number;
}

/** A number from /proc/sys (e.g. `net/core/rmem_max`), or undefined when unreadable. */
export function readSysctl(name: string): number | undefined {
  try {
    const n = Number(readFileSync(`/proc/sys/${name}`, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function syscallError(syscall: string, errno: number, address: string, port: number, advice: string, option?: string): ShardgramError {
  const what = option ? `${syscall}(${option})` : syscall;
  return new ShardgramError('ERR_SHARDGRAM_SYSCALL', `${what} failed for UDP ${address}:${port}: ${errnoName(errno)} (errno ${errno}). ${advice}`, {
    errno,
    syscall,
    address,
    port,
    ...(option ? { option } : {}),
  });
}

function setIntOption(fd: number, level: number, name: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return libc().setsockopt(fd, level, name, b, 4) === 0 ? 0 : libc().errno();
}

export function getIntOption(fd: number, level: number, name: number): number {
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  if (libc().getsockopt(fd, level, name, v, len) !== 0) {
    const e = libc().errno();
    throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `getsockopt on fd ${fd} failed: ${errnoName(e)}`, { errno: e, syscall: 'getsockopt' });
  }
  return v.readInt32LE();
}

/** Whether a socket that another process holds has SO_REUSEPORT set (undefined: cannot tell). */
function holderReusesPort(h: PortHolder): boolean | undefined {
  for (const pid of h.pids) {
    for (const { fd, inode } of socketFdsOf(pid)) {
      if (inode !== h.inode) continue;
      let copy = -1;
      try {
        copy = libc().borrowFd(pid, fd);
        if (copy < 0) continue;
        return getIntOption(copy, SOL_SOCKET, SO_REUSEPORT) !== 0;
      } catch {
      } finally {
        if (copy >= 0) libc().close(copy);
      }
    }
  }
  return undefined;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Whether a socket bound to `held` competes with a bind to `wanted` on the same port. */
function overlaps(held: string, wanted: string): boolean {
  if (held === wanted) return true;
  const heldV6 = held.includes(':');
  const wantedV6 = wanted.includes(':');
  // '::' may be dual-stack (it is, unless IPV6_V6ONLY), so it competes with IPv4 too.
  if (held === '::') return true;
  if (held === '0.0.0.0') return !wantedV6;
  if (WILDCARDS.has(wanted)) return wanted === '::' ? heldV6 : !heldV6;
  return false;
}

/** Sockets other than ours bound to `port` on an address that competes with `address`. */
export function competingHolders(address: string, port: number, ownInodes: ReadonlySet<number>): PortHolder[] {
  return findPortHolders(port, ownInodes).filter((h) => overlaps(h.address, address));
}

/**
 * Before a service takes a port: any socket already there is someone else's. The
 * kernel would let a second SO_REUSEPORT group of the same uid join this one and
 * split the traffic (and its steering program) with it; refuse instead.
 */
export function refuseOccupiedPort(address: string, port: number, ownInodes: ReadonlySet<number>): ShardgramError | undefined {
  const holders = competingHolders(address, port, ownInodes);
  if (holders.length === 0) return undefined;
  const euid = libc().geteuid();
  if (holders.some((h) => h.uid !== euid)) return explainAddressInUse(address, port, ownInodes);
  const reuse = holders.map(holderReusesPort);
  if (reuse.every((r) => r === true)) {
    return new ShardgramError(
      'ERR_SHARDGRAM_PORT_HELD',
      `UDP ${address}:${port} is already served by SO_REUSEPORT sockets of this user: ${holders.map(describeHolder).join('; ')} ` +
        `(another shardgram service?). Joining them would split their traffic with us and replace their steering program. ` +
        `To upgrade or restart that service without losing a datagram, start this one with --takeover; otherwise stop it, or choose another --port.`,
      { errno: EADDRINUSE, syscall: 'bind', address, port, uid: euid, holders },
    );
  }
  return explainAddressInUse(address, port, ownInodes);
}

/** Turns bind's EADDRINUSE into the error that says which of the two causes it is. */
export function explainAddressInUse(address: string, port: number, ownInodes: ReadonlySet<number>): ShardgramError {
  const euid = libc().geteuid();
  const all = findPortHolders(port, ownInodes);
  const near = all.filter((h) => overlaps(h.address, address));
  const holders = near.length ? near : all;
  const foreign = holders.filter((h) => h.uid !== euid);
  const base = { errno: EADDRINUSE, syscall: 'bind', address, port, uid: euid, holders };
  if (foreign.length > 0) {
    const f = foreign[0]!;
    return new ShardgramError(
      'ERR_SHARDGRAM_FOREIGN_UID',
      `UDP ${address}:${port} is in use by a socket of another user: ${foreign.map(describeHolder).join('; ')}. ` +
        `An SO_REUSEPORT group only admits sockets of the same effective uid, and we run as uid ${euid}. ` +
        `Run shardgram as uid ${f.uid}${f.user ? ` (${f.user})` : ''}, stop that process, or choose another --port.`,
      base,
    );
  }
  if (holders.length > 0) {
    const reuse = holders.map(holderReusesPort);
    const plain = holders.filter((_, i) => reuse[i] === false);
    const unknown = holders.filter((_, i) => reuse[i] === undefined);
    if (plain.length === 0 && unknown.length > 0) {
      return new ShardgramError(
        'ERR_SHARDGRAM_PORT_HELD',
        `UDP ${address}:${port} is held by ${unknown.map(describeHolder).join('; ')}, which either does not set SO_REUSEPORT or is bound differently ` +
          `(shardgram could not look at its options: that needs pidfd_getfd, i.e. root or ptrace rights over it). Stop that process, or choose another --port.`,
        base,
      );
    }
    if (plain.length > 0) {
      return new ShardgramError(
        'ERR_SHARDGRAM_PORT_HELD',
        `UDP ${address}:${port} is held by a socket without SO_REUSEPORT: ${plain.map(describeHolder).join('; ')}. ` +
          `Every member of the group must set SO_REUSEPORT. Stop that process, or choose another --port.`,
        base,
      );
    }
    return new ShardgramError(
      'ERR_SHARDGRAM_PORT_HELD',
      `UDP ${address}:${port} conflicts with an SO_REUSEPORT socket bound differently: ${holders.map(describeHolder).join('; ')}. ` +
        `A group's members must share address, device and family, and a group whose steering program was attached before bind admits no one. ` +
        `Bind the same address as that socket, stop it, or choose another --port.`,
      base,
    );
  }
  return new ShardgramError(
    'ERR_SHARDGRAM_PORT_HELD',
    `UDP ${address}:${port} is in use (EADDRINUSE), and no holder is visible in /proc/net/udp of this network namespace. Choose another --port.`,
    base,
  );
}

/** Opens, configures and binds one SO_REUSEPORT UDP socket. The fd is CLOEXEC and blocking. */
export function openReusePortSocket(opts: OpenSocketOptions): OpenedSocket {
  const family = checkOpenOptions(opts);
  const c = libc();
  const fd = newUdpSocket(c, family, opts.address, opts.port);
  try {
    const warnings: string[] = [];
    setGroupOptions(fd, family, opts.address, opts.port);
    if (opts.rcvbuf !== undefined) requestReceiveBuffer(fd, opts.rcvbuf, opts);
    const rcvbuf = grantedReceiveBuffer(fd, opts.rcvbuf, warnings);
    bindOrExplain(c, fd, opts);
    const local = localAddress(fd);
    return { fd, family, address: local.address, port: local.port, inode: fstatSync(fd).ino, rcvbuf, warnings };
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

/** The options' address, port and rcvbuf checked before any socket is made; the address's family. */
function checkOpenOptions(opts: OpenSocketOptions): Family {
  const { address, port } = opts;
  const family = familyOf(address);
  if (!family) throw invalidArg('address', address, 'an IPv4 or IPv6 literal (e.g. 127.0.0.1 or ::1)');
  if (address.includes('%')) throw invalidArg('address', address, 'an IPv6 address without a %zone (scoped link-local addresses are not supported)');
  if (isIPv4Mapped(address))
    throw invalidArg('address', address, 'written as IPv4 for an IPv4 address, not IPv4-mapped IPv6 (IPv6 sockets here are IPv6-only)');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArg('port', port, 'an integer from 0 to 65535');
  const R = LIMITS.rcvbuf;
  if (opts.rcvbuf !== undefined && (!Number.isInteger(opts.rcvbuf) || opts.rcvbuf < R.min || opts.rcvbuf > R.max)) {
    throw invalidArg('rcvbuf', opts.rcvbuf, `a whole number of bytes from ${R.min} to ${R.max} (1 GiB)`);
  }
  return family;
}

/** socket(2): a new CLOEXEC UDP socket of `family`. */
function newUdpSocket(c: Libc, family: Family, address: string, port: number): number {
  const fd = c.socket(family === 'udp4' ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) {
    const e = c.errno();
    throw syscallError(
      'socket',
      e,
      address,
      port,
      e === EMFILE ? 'Too many open files: raise the limit with `ulimit -n`.' : 'The kernel refused a new UDP socket.',
    );
  }
  return fd;
}

/** SO_REUSEPORT, and IPV6_V6ONLY for an IPv6 socket. */
function setGroupOptions(fd: number, family: Family, address: string, port: number): void {
  let e = setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (e) throw syscallError('setsockopt', e, address, port, 'This kernel does not support SO_REUSEPORT (Linux ≥ 3.9 needed).', 'SO_REUSEPORT');
  if (family === 'udp6') {
    // Be explicit: an IPv6 group holds IPv6 only, whatever net.ipv6.bindv6only says.
    e = setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (e) throw syscallError('setsockopt', e, address, port, 'Could not make the socket IPv6-only.', 'IPV6_V6ONLY');
  }
}

/** SO_RCVBUF (or SO_RCVBUFFORCE, with rcvbufForce) set to `bytes`. */
function requestReceiveBuffer(fd: number, bytes: number, opts: OpenSocketOptions): void {
  const { address, port } = opts;
  const name = opts.rcvbufForce ? SO_RCVBUFFORCE : SO_RCVBUF;
  const e = setIntOption(fd, SOL_SOCKET, name, bytes);
  if (e === EPERM) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_PERMISSION',
      `setsockopt(SO_RCVBUFFORCE) for UDP ${address}:${port} needs CAP_NET_ADMIN (EPERM). Drop --rcvbuf-force, or raise net.core.rmem_max instead.`,
      { errno: e, syscall: 'setsockopt', option: 'SO_RCVBUFFORCE', address, port },
    );
  }
  if (e) throw syscallError('setsockopt', e, address, port, 'The kernel refused the receive buffer size.', opts.rcvbufForce ? 'SO_RCVBUFFORCE' : 'SO_RCVBUF');
}

/** SO_RCVBUF as the kernel reports it; a warning when it granted less than `asked`. */
function grantedReceiveBuffer(fd: number, asked: number | undefined, warnings: string[]): number {
  const rcvbuf = getIntOption(fd, SOL_SOCKET, SO_RCVBUF);
  if (asked !== undefined && rcvbuf < asked * RCVBUF_DOUBLING) {
    const max = readSysctl('net/core/rmem_max');
    warnings.push(
      `SO_RCVBUF: asked for ${asked} bytes, the kernel granted ${rcvbuf / RCVBUF_DOUBLING} (reported as ${rcvbuf}); ` +
        `net.core.rmem_max${max !== undefined ? ` = ${max}` : ''} caps it. ` +
        `Raise it with \`sysctl -w net.core.rmem_max=${asked}\`, or use --rcvbuf-force as root.`,
    );
  }
  return rcvbuf;
}

/** bind(2) to the options' address and port; a failure said with its cause (EADDRINUSE: who holds the port). */
function bindOrExplain(c: Libc, fd: number, opts: OpenSocketOptions): void {
  const { address, port } = opts;
  const { buf, len } = encodeSockaddr(address, port);
  if (c.bind(fd, buf, len) === 0) return;
  const e = c.errno();
  if (e === EADDRINUSE) throw explainAddressInUse(address, port, opts.ownInodes ?? new Set());
  if (e === EACCES) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_PERMISSION',
      `bind to UDP ${address}:${port} was refused (EACCES): ports below net.ipv4.ip_unprivileged_port_start need root or CAP_NET_BIND_SERVICE. Choose a port ≥ 1024, or grant the capability.`,
      { errno: e, syscall: 'bind', address, port },
    );
  }
  if (e === EADDRNOTAVAIL) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_ADDRESS',
      `bind to UDP ${address}:${port} failed (EADDRNOTAVAIL): ${address} is not an address of this host (or network namespace). Use one that \`ip addr\` lists, e.g. 127.0.0.1 or ::1.`,
      { errno: e, syscall: 'bind', address, port },
    );
  }
  throw syscallError('bind', e, address, port, 'Check the address and port.');
}

export function localAddress(fd: number): { address: string; port: number } {
  const sa = Buffer.alloc(SOCKADDR_MAX);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(SOCKADDR_MAX);
  if (libc().getsockname(fd, sa, len) !== 0) {
    const e = libc().errno();
    throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `getsockname on fd ${fd} failed: ${errnoName(e)}`, { errno: e, syscall: 'getsockname' });
  }
  const d = decodeSockaddr(sa);
  return { address: d.address, port: d.port };
}

const memBuf = Buffer.alloc(SK_MEMINFO_VARS * 4);
const memLen = Buffer.alloc(4);

/** The kernel's counters for one socket (SO_MEMINFO). */
export function socketMemInfo(fd: number): SocketMemInfo {
  memLen.writeUInt32LE(memBuf.length);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_MEMINFO, memBuf, memLen) !== 0) {
    const e = libc().errno();
    throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `getsockopt(SO_MEMINFO) on fd ${fd} failed: ${errnoName(e)}`, {
      errno: e,
      syscall: 'getsockopt',
      option: 'SO_MEMINFO',
    });
  }
  return {
    queueBytes: memBuf.readUInt32LE(SK_MEMINFO_RMEM_ALLOC * 4),
    rcvbuf: memBuf.readUInt32LE(SK_MEMINFO_RCVBUF * 4),
    drops: memBuf.readUInt32LE(SK_MEMINFO_DROPS * 4),
  };
}

/**
 * Sets a socket's receive buffer to `bytes` (SO_RCVBUFFORCE where the process may,
 * else SO_RCVBUF, capped by net.core.rmem_max); returns the size the kernel reports
 * now (twice the granted size, as SO_RCVBUF reads back).
 */
export function setReceiveBuffer(fd: number, bytes: number): number {
  if (setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, bytes) !== 0) setIntOption(fd, SOL_SOCKET, SO_RCVBUF, bytes);
  return getIntOption(fd, SOL_SOCKET, SO_RCVBUF);
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

/**
 * Seals a socket before its last read-out: connect(2) to its own address and port, after
 * which the kernel delivers it only what that address and port send, i.e. nothing; other
 * senders' datagrams go to the group's other sockets, or (the last socket) find none and
 * are counted by the kernel as NoPorts, instead of being queued and freed unread at the
 * close. A connected member marks its reuseport group as having connections for the
 * group's life: the kernel then scores every member per datagram (Group.sealAll).
 */
export function sealSocket(fd: number, address: string, port: number): void {
  const self = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  const { buf, len } = encodeSockaddr(self, port);
  if (libc().connect(fd, buf, len) !== 0) {
    const e = libc().errno();
    throw syscallError('connect', e, self, port, 'The socket could not be sealed before its close.');
  }
}
