/**
 * Who holds a UDP port: rows of /proc/net/udp and /proc/net/udp6 (local address,
 * uid, inode), matched to processes through /proc/PID/fd. Used to explain an
 * EADDRINUSE, which the kernel gives alike for "held without SO_REUSEPORT" and
 * "group of another uid".
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { PortHolder } from '../errors.js';
import { formatIPv6 } from './sockaddr.js';

function ipv4FromProc(hex: string): string {
  // /proc prints the address as a host-order (little-endian) u32.
  const n = parseInt(hex, 16);
  return `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`;
}

function ipv6FromProc(hex: string): string {
  const bytes = new Uint8Array(16);
  for (let w = 0; w < 4; w++) {
    const n = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    bytes[w * 4] = n & 0xff;
    bytes[w * 4 + 1] = (n >>> 8) & 0xff;
    bytes[w * 4 + 2] = (n >>> 16) & 0xff;
    bytes[w * 4 + 3] = n >>> 24;
  }
  return formatIPv6(bytes);
}

export interface ProcUdpRow {
  address: string;
  port: number;
  uid: number;
  inode: number;
  rxQueue: number;
  drops: number;
}

/** The sockets of /proc/net/udp (and udp6) in this network namespace. */
export function readProcUdp(): ProcUdpRow[] {
  const rows: ProcUdpRow[] = [];
  for (const [file, v6] of [
    ['/proc/net/udp', false],
    ['/proc/net/udp6', true],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [addrHex = '', portHex = '0'] = (f[1] ?? '').split(':');
      const [, rxHex = '0'] = (f[4] ?? '').split(':');
      rows.push({
        address: v6 ? ipv6FromProc(addrHex) : ipv4FromProc(addrHex),
        port: parseInt(portHex, 16),
        uid: Number(f[7]),
        inode: Number(f[9]),
        rxQueue: parseInt(rxHex, 16),
        drops: Number(f[12] ?? 0),
      });
    }
  }
  return rows;
}

let passwd: Map<number, string> | undefined;
export function userName(uid: number): string | undefined {
  if (!passwd) {
    passwd = new Map();
    try {
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id !== undefined && !passwd.has(Number(id))) passwd.set(Number(id), name);
      }
    } catch {
      // no passwd: numbers only
    }
  }
  return passwd.get(uid);
}

/** The socket fds of process `pid`: fd number and socket inode, as far as /proc lets us see. */
export function socketFdsOf(pid: number | string): { fd: number; inode: number }[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: { fd: number; inode: number }[] = [];
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) out.push({ fd: Number(fd), inode: Number(m[1]) });
  }
  return out;
}

/** pid → command for every process that has one of `inodes` open (as far as /proc lets us see). */
function processesHolding(inodes: Set<number>): Map<number, { pid: number; command: string }[]> {
  const found = new Map<number, { pid: number; command: string }[]>();
  if (inodes.size === 0) return found;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return found;
  }
  for (const pid of pids) {
    for (const { inode } of socketFdsOf(pid)) {
      if (!inodes.has(inode)) continue;
      let command = '?';
      try {
        command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        // gone
      }
      const list = found.get(inode) ?? [];
      if (!list.some((p) => p.pid === Number(pid))) list.push({ pid: Number(pid), command });
      found.set(inode, list);
    }
  }
  return found;
}

/** Sockets bound to `port` (any address), except the inodes in `exclude` (our own). */
export function findPortHolders(port: number, exclude: ReadonlySet<number> = new Set()): PortHolder[] {
  const rows = readProcUdp().filter((r) => r.port === port && !exclude.has(r.inode));
  const procs = processesHolding(new Set(rows.map((r) => r.inode)));
  return rows.map((r) => {
    const ps = procs.get(r.inode) ?? [];
    const holder: PortHolder = {
      address: r.address,
      port: r.port,
      uid: r.uid,
      inode: r.inode,
      pids: ps.map((p) => p.pid),
      commands: ps.map((p) => p.command),
    };
    const user = userName(r.uid);
    if (user !== undefined) holder.user = user;
    return holder;
  });
}

export function describeHolder(h: PortHolder): string {
  const who = h.pids.length ? ` by ${h.pids.map((p, i) => `pid ${p} (${h.commands[i]})`).join(', ')}` : '';
  return `${h.address}:${h.port} (uid ${h.uid}${h.user ? ` ${h.user}` : ''}${who})`;
}
