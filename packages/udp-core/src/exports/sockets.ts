/** @shardgram/udp-core/sockets — raw SO_REUSEPORT sockets through libc (koffi), their memory, and who holds a port. */
export { openReusePortSocket, socketMemInfo, closeFd, localAddress } from '../ffi/socket.js';
export type { OpenSocketOptions, OpenedSocket, SocketMemInfo } from '../ffi/socket.js';
export { findPortHolders, describeHolder } from '../ffi/holders.js';
export { errnoName } from '../errors.js';
export type { PortHolder } from '../errors.js';
