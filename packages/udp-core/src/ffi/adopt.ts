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
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${what} (fd ${fd}) is not a UDP socket over IPv4 or IPv6 (ListenDatagram= with an IP address and port is what shardgram takes)`);
  }
  const local = localAddress(fd);
  if (local.port === 0) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${what} (fd ${fd}) is not bound to a port`);
  return {
    fd, family: domain === AF_INET ? 'udp4' : 'udp6', address: local.address, port: local.port, inode: fstatSync(fd).ino,
    rcvbuf: getIntOption(fd, SOL_SOCKET, SO_RCVBUF), warnings: [], reusePort: getIntOption(fd, SOL_SOCKET, SO_REUSEPORT) !== 0,
  };
}
