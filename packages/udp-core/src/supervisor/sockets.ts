/**
 * Opening the group's sockets: the first one refuses a port another SO_REUSEPORT
 * group already holds (the kernel would let us join a same-uid group silently),
 * the rest join ours.
 */
import { ShardgramError } from '../errors.js';
import { closeFd, competingHolders, openReusePortSocket, refuseOccupiedPort, type OpenedSocket } from '../ffi/socket.js';
import type { EffectiveConfig } from './config.js';

/** Ephemeral ports tried before giving up when the kernel keeps picking held ones. */
const EPHEMERAL_ATTEMPTS = 10;

/**
 * Opens socket `index` of the group on `port` (the first socket may ask for 0).
 * `own` holds the inodes of the group's sockets already open.
 */
export function openGroupSocket(config: EffectiveConfig, index: number, port: number, own: ReadonlySet<number>): OpenedSocket {
  const open = (p: number): OpenedSocket =>
    openReusePortSocket({
      address: config.address,
      port: p,
      ownInodes: own,
      rcvbufForce: config.rcvbufForce,
      ...(config.rcvbuf !== undefined ? { rcvbuf: config.rcvbuf } : {}),
    });
  if (index > 0) return open(port);
  if (port !== 0) {
    const refusal = refuseOccupiedPort(config.address, port, own);
    if (refusal) throw refusal;
    return open(port);
  }
  // An ephemeral port can be one another SO_REUSEPORT socket already has: try again.
  for (let attempt = 1; ; attempt++) {
    const sock = open(0);
    if (competingHolders(config.address, sock.port, new Set([sock.inode])).length === 0) return sock;
    closeFd(sock.fd);
    if (attempt === EPHEMERAL_ATTEMPTS) {
      throw new ShardgramError(
        'ERR_SHARDGRAM_PORT_HELD',
        'the kernel kept choosing ports that other SO_REUSEPORT sockets already hold; give --port explicitly',
      );
    }
  }
}
