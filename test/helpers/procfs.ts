/** What /proc says about sockets and processes: the kernel's view, not the service's. */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** The inodes of every UDP socket bound to `port` (any address, IPv4 and IPv6), from /proc/net/udp{,6}. */
export function udpInodesOnPort(port: number): number[] {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const out: number[] = [];
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13 && f[1]!.endsWith(hexPort)) out.push(Number(f[9]));
    }
  }
  return out.sort((a, b) => a - b);
}

/** The local port of the UDP socket with inode `inode`, if there is one. */
export function udpPortOfInode(inode: number): number | undefined {
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13 && Number(f[9]) === inode) return parseInt(f[1]!.split(':')[1]!, 16);
    }
  }
  return undefined;
}

/** The inodes of the sockets process `pid` has open (empty once it is gone). */
export function socketInodesOf(pid: number): number[] {
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out.sort((a, b) => a - b);
}

/** Whether `pid` is a live process (a zombie, dead but not yet reaped, counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
