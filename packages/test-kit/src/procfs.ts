/** What /proc says about sockets, processes and UDP counters: the kernel's view, not the service's. */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Every socket row of /proc/net/udp and /proc/net/udp6, split into its fields. */
export function procUdpRows(): string[][] {
  const rows: string[][] = [];
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 13) rows.push(f);
    }
  }
  return rows;
}

/** Whether a row's local address (`0100007F:2328`) has port `port`. */
export function rowHasPort(f: string[], port: number): boolean {
  return f[1]!.endsWith(`:${port.toString(16).toUpperCase().padStart(4, '0')}`);
}

/** The inodes of every UDP socket bound to `port` (any address, IPv4 and IPv6), from /proc/net/udp{,6}. */
export function udpInodesOnPort(port: number): number[] {
  return procUdpRows()
    .filter((f) => rowHasPort(f, port))
    .map((f) => Number(f[9]))
    .sort((a, b) => a - b);
}

/** The local port of the UDP socket with inode `inode`, if there is one. */
export function udpPortOfInode(inode: number): number | undefined {
  const f = procUdpRows().find((row) => Number(row[9]) === inode);
  return f ? parseInt(f[1]!.split(':')[1]!, 16) : undefined;
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

let clkTck: number | undefined;
/** Clock ticks per second of /proc/PID/stat's times (getconf CLK_TCK; 100 on Linux). */
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime+stime ticks and the parent pid of a process, from /proc/PID/stat; undefined once gone. */
function procStat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" of the command name: state(3) ppid(4) … utime(14) stime(15).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** user+sys CPU of a process (all its threads) in µs; 0 once it is gone. */
export function cpuMicros(pid: number): number {
  const s = procStat(pid);
  return s ? (s.ticks * 1e6) / ticksPerSecond() : 0;
}

/** user+sys CPU in µs of a process and all its descendants. */
export function treeCpuMicros(rootPid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) stats.set(Number(name), s);
  }
  let ticks = 0;
  const todo = [rootPid];
  for (let guard = 0; todo.length && guard < 100_000; guard++) {
    const pid = todo.pop()!;
    ticks += stats.get(pid)?.ticks ?? 0;
    for (const [child, st] of stats) if (st.ppid === pid) todo.push(child);
  }
  return (ticks * 1e6) / ticksPerSecond();
}

/** The parent pid of a process, from /proc/PID/stat; undefined once it is gone. */
export function parentPid(pid: number): number | undefined {
  return procStat(pid)?.ppid;
}

/** The `Udp:` counters of this process's network namespace (/proc/net/snmp), by name: InDatagrams, NoPorts, InErrors… */
export function udpSnmpCounters(): Record<string, number> {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'))
    .map((l) => l.trim().split(/\s+/).slice(1));
  if (!names || !values) throw new Error('/proc/net/snmp has no Udp: lines');
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}
