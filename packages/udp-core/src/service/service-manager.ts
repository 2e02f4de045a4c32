/**
 * systemd's protocols, spoken without libsystemd:
 * - socket activation (sd_listen_fds(3)): `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`
 *   pass bound sockets from fd 3 on; the service uses them instead of opening its own;
 * - sd_notify(3): datagrams to `$NOTIFY_SOCKET` say `READY=1`, `STOPPING=1`, and with
 *   `FDSTORE=1` hand the group's sockets to the manager, which passes them back (as
 *   LISTEN_FDS, named) when the service starts again after a crash or a restart: the
 *   sockets, and the datagrams queued in them, outlive the supervisor.
 */
import { ShardgramError } from '../errors.js';
import { adoptSocket, type AdoptedSocket } from '../ffi/adopt.js';
import { FD_CLOEXEC, F_SETFD, SD_LISTEN_FDS_START } from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import { connectUnix, sendWithFds } from '../ffi/unix.js';
import type { Supervisor } from '../supervisor/supervisor.js';

/** The fd store name of socket `i` of the group. */
export const slotName = (i: number): string => `slot${i}`;

export class ServiceManager {
  private readonly stored = new Map<string, number>();

  private constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly notifyPath: string | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** The manager that started this process, if any (from the environment, which is then cleaned). */
  static fromEnv(log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): ServiceManager | undefined {
    if (!env.NOTIFY_SOCKET && !env.LISTEN_FDS) return undefined;
    const m = new ServiceManager({ ...env }, env.NOTIFY_SOCKET, log);
    // Not for our children (sd_listen_fds(3) says unset them).
    for (const k of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'FDSTORE']) delete env[k];
    return m;
  }

  /** Whether the manager keeps our sockets for the next start (`FileDescriptorStoreMax=` > 0, told by `$FDSTORE`). */
  get fdStore(): boolean {
    return this.notifyPath !== undefined && Number(this.env.FDSTORE ?? 0) > 0;
  }

  /**
   * The sockets passed to this process, in group order: fd-store names `slot0`,
   * `slot1`, … by number; otherwise in the order passed. A socket passed twice (a
   * socket unit's socket that is also in the fd store: systemd passes both) is
   * taken once. `heldByUnit[i]`: socket i belongs to a socket unit (named otherwise
   * than `slot<i>`), which keeps it open whatever the service does.
   */
  listenSockets(): { sockets: AdoptedSocket[]; heldByUnit: boolean[] } {
    const none = { sockets: [], heldByUnit: [] };
    const n = Number(this.env.LISTEN_FDS ?? 0);
    if (!n) return none;
    if (Number(this.env.LISTEN_PID) !== process.pid) {
      this.log(`LISTEN_FDS is set for pid ${this.env.LISTEN_PID ?? '?'}, not this process (${process.pid}): ignoring it`);
      return none;
    }
    if (!Number.isInteger(n) || n < 0 || n > 1024)
      throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `LISTEN_FDS=${this.env.LISTEN_FDS} is not a count of file descriptors`);
    const names = (this.env.LISTEN_FDNAMES ?? '').split(':');
    const byInode = new Map<number, { sock: AdoptedSocket; slot?: number; unit: boolean }>();
    for (let i = 0; i < n; i++) {
      const fd = SD_LISTEN_FDS_START + i;
      // Ours alone: not inherited by the workers (each gets its own socket explicitly).
      libc().fcntl(fd, F_SETFD, FD_CLOEXEC);
      const name = names[i] ?? '';
      const sock = adoptSocket(fd, `the socket passed as fd ${fd}${name ? ` (${name})` : ''}`);
      const slot = /^slot\d+$/.test(name) ? Number(name.slice(4)) : undefined;
      const seen = byInode.get(sock.inode);
      if (seen) {
        libc().close(fd);
        seen.slot ??= slot;
        seen.unit ||= slot === undefined;
      } else {
        byInode.set(sock.inode, { sock, ...(slot !== undefined ? { slot } : {}), unit: slot === undefined });
      }
      if (slot !== undefined) this.stored.set(name, sock.inode);
    }
    const passed = [...byInode.values()];
    if (passed.every((p) => p.slot !== undefined)) passed.sort((a, b) => a.slot! - b.slot!);
    return { sockets: passed.map((p) => p.sock), heldByUnit: passed.map((p) => p.unit) };
  }

  /** Sends one sd_notify datagram (with fds as SCM_RIGHTS). */
  notify(text: string, fds: number[] = []): void {
    if (!this.notifyPath) return;
    let fd: number | undefined;
    try {
      fd = connectUnix(this.notifyPath, 'dgram');
      sendWithFds(fd, Buffer.from(text), fds);
    } catch (err) {
      this.log(`sd_notify to ${this.notifyPath} failed: ${(err as Error).message}`);
    } finally {
      if (fd !== undefined) libc().close(fd);
    }
  }

  /** Takes socket `index` out of the fd store (it is about to close). */
  forget(index: number): void {
    const name = slotName(index);
    if (!this.fdStore || !this.stored.has(name)) return;
    this.notify(`FDSTOREREMOVE=1\nFDNAME=${name}`);
    this.stored.delete(name);
  }

  /** Brings the fd store in line with the group: every socket stored under its slot name, nothing else. */
  storeSockets(sup: Supervisor): void {
    if (!this.fdStore) return;
    const now = new Map(sup.sockets().map((s) => [slotName(s.index), s] as const));
    for (const [name, inode] of this.stored) {
      if (now.get(name)?.inode === inode) continue;
      this.notify(`FDSTOREREMOVE=1\nFDNAME=${name}`);
      this.stored.delete(name);
    }
    for (const [name, s] of now) {
      if (this.stored.has(name)) continue;
      // FDPOLL=0: a UDP socket with an error pending (POLLERR) must stay in the store all the same.
      this.notify(`FDSTORE=1\nFDNAME=${name}\nFDPOLL=0`, [s.fd]);
      this.stored.set(name, s.inode);
    }
  }
}
