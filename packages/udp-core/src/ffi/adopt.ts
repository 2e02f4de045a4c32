/**
 * Taking over a socket someone else opened (a service manager's LISTEN_FDS, the
 * fds a running supervisor hands over): check that it is a bound UDP socket and
 * describe it as if we had opened it.
 */
import { fstatSync } from 'node:fs';
import { ShardgramError } from '../errors.js';
import { AF_INET, AF_INET6, IPPROTO_UDP, SOCK_DGRAM, SOL_SOCKET, SO_DOMAIN, SO_PROTOCOL, SO_RCVBUF, SO_REUSEPORT, SO_TYPE } from './kernel.js';
import { getIntOption, localAddress, type OpenedSocket } from './socket.js';

export interface AdoptedSocket extends OpenedSocket {
  /** Whether SO_REUSEPORT is set (a group can have other members). */
  reusePort: boolean;
}

/** Describes fd `fd`; throws ERR_SHARDGRAM_INVALID_ARG naming `what` if it is not a bound UDP socket. */
export function adoptSocket(fd: number, what: string): AdoptedSocket {
  let type: number;
  let domain: number;
  let protocol: number;
  try {
    type = getIntOption(fd, SOL_SOCKET, SO_TYPE);
    domain = getIntOption(fd, SOL_SOCKET, SO_DOMAIN);
    protocol = getIntOption(fd, SOL_SOCKET, SO_PROTOCOL);
  } catch {
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${what} (fd ${fd}) is not a socket`);
  }
  if (type !== SOCK_DGRAM || protocol !== IPPROTO_UDP || (domain !== AF_INET && domain !== AF_INET6)) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `${what} (fd ${fd}) is not a UDP socket over IPv4 or IPv6 (ListenDatagram= with an IP address and port is what shardgram takes)`,
    );
  }
  const local = localAddress(fd);
  if (local.port === 0) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${what} (fd ${fd}) is not bound to a port`);
  return {
    fd,
    family: domain === AF_INET ? 'udp4' : 'udp6',
    address: local.address,
    port: local.port,
    inode: fstatSync(fd).ino,
    rcvbuf: getIntOption(fd, SOL_SOCKET, SO_RCVBUF),
    warnings: [],
    reusePort: getIntOption(fd, SOL_SOCKET, SO_REUSEPORT) !== 0,
  };
}

/**
 * Refuses, before anything starts, a group the kernel cannot make of `sockets`:
 * without SO_REUSEPORT a socket has no group for more workers to join or for a
 * steering program to attach to. (Sockets shardgram opened itself always have it.)
 */
export function checkGroupable(sockets: readonly (OpenedSocket | AdoptedSocket)[], workers: number, policy: string): void {
  const lone = sockets.filter((s) => 'reusePort' in s && !s.reusePort).length;
  const first = sockets[0];
  if (!lone || !first || (sockets.length === 1 && workers <= 1 && policy === 'hash')) return;
  const where = `udp ${first.address.includes(':') ? `[${first.address}]` : first.address}:${first.port}`;
  const what = sockets.length > 1 ? `${lone} of the ${sockets.length} sockets passed for ${where} have` : `the socket passed for ${where} has`;
  const wants = workers > 1 || sockets.length > 1 ? `${Math.max(workers, sockets.length)} workers` : `the ${policy} policy`;
  throw new ShardgramError(
    'ERR_SHARDGRAM_INVALID_ARG',
    `${what} no SO_REUSEPORT, so ${wants} cannot share the port: set ReusePort=yes in the .socket unit ` +
      '(one ListenDatagram= line per worker), or run one worker: --workers 1 with one ListenDatagram= line and the hash policy',
    { option: 'workers', address: first.address, port: first.port },
  );
}
