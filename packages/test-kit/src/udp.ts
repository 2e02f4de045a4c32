/** Test helpers: real sockets on loopback, bounded in count and time. */
import dgram from 'node:dgram';
import { procUdpRows, rowHasPort } from './procfs.js';
import { waitFor } from './wait.js';

export async function openClients(n: number, type: 'udp4' | 'udp6' = 'udp4'): Promise<dgram.Socket[]> {
  const out: dgram.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket(type);
    await new Promise<void>((r) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => r()));
    out.push(s);
  }
  return out;
}

export function closeAll(socks: dgram.Socket[]): void {
  for (const s of socks) s.close();
}

export function send(s: dgram.Socket, data: string | Uint8Array, port: number, address = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => s.send(data, port, address, (err) => (err ? reject(err) : resolve())));
}

/**
 * The receive queues of every UDP socket bound to `port` (any address, IPv4 and IPv6),
 * from /proc/net/udp and udp6: bytes waiting (rx_queue) and datagrams the kernel dropped.
 */
export function udpPortQueues(port: number): { queuedBytes: number; drops: number } {
  let queuedBytes = 0;
  let drops = 0;
  for (const f of procUdpRows()) {
    if (!rowHasPort(f, port)) continue;
    queuedBytes += parseInt(f[4]!.split(':')[1]!, 16);
    drops += Number(f[f.length - 1]) || 0;
  }
  return { queuedBytes, drops };
}

export function udpQueuedBytes(port: number): number {
  return udpPortQueues(port).queuedBytes;
}

/** Waits until every socket on `port` has read its queue empty; false after `timeoutMs`. */
export function waitQueuesEmpty(port: number, timeoutMs = 10_000): Promise<boolean> {
  return waitFor(() => udpQueuedBytes(port) === 0, timeoutMs, 10);
}
