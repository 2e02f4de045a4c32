/**
 * The libc entry points shardgram calls through koffi. Loaded once, lazily, so that
 * importing the package on a machine without libc (or without koffi's prebuilt binary)
 * fails only when a socket is actually made, with a clear error.
 */
import koffi from 'koffi';

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  bind(fd: number, addr: Buffer, len: number): number;
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  close(fd: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  geteuid(): number;
  recvmmsg(fd: number, vec: Buffer, vlen: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, vec: Buffer, vlen: number, flags: number): number;
  memfdCreate(name: string, flags: number): number;
  ftruncate(fd: number, length: number): number;
  /** mmap(2) of a whole file; null on failure (MAP_FAILED). */
  mmap(length: number, prot: number, flags: number, fd: number): unknown;
  munmap(addr: unknown, length: number): number;
  /** timerfd_create(2): a timer that the event loop can poll, with nanosecond expiry. */
  timerfdCreate(clock: number, flags: number): number;
  /** timerfd_settime(2): arms (or, with a zero it_value, disarms) the timer; resets its expiry count. */
  timerfdSettime(fd: number, flags: number, value: Buffer, old: null): number;
  errno(): number;
  /** prctl(2) with one argument (e.g. PR_SET_PDEATHSIG, SIGKILL). */
  prctl(option: number, arg: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  sendmsg(fd: number, msg: Buffer, flags: number): number;
  recvmsg(fd: number, msg: Buffer, flags: number): number;
  /** pidfd_open(2) + pidfd_getfd(2): a copy of another process's fd, or -1. */
  borrowFd(pid: number, fd: number): number;
  /** pidfd_open(2): a descriptor that stays this process's whatever reuses its pid; -1 where unavailable. */
  pidfdOpen(pid: number): number;
  /** poll(2) on an array of struct pollfd. */
  poll(fds: Buffer, nfds: number, timeoutMs: number): number;
}

let cached: Libc | undefined;

export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  // Every pointer is `void *` and receives a Buffer: koffi passes the Buffer's own
  // memory, so what the kernel writes is visible in it after the call.
  const fcntl = lib.func('int fcntl(int, int, ...)');
  const close = lib.func('int close(int)');
  const mmap = lib.func('void *mmap(void *, size_t, int, int, int, int64_t)');
  const prctl = lib.func('int prctl(int, ...)');
  // glibc ≥ 2.36 only: looked up on first use, so that older systems lose only the
  // diagnosis that needs them, not the whole library.
  let pidfd: { open: (pid: number, flags: number) => number; getfd: (pidfd: number, fd: number, flags: number) => number } | null | undefined;
  const pidfdCalls = (): typeof pidfd => {
    if (pidfd === undefined) {
      try {
        pidfd = { open: lib.func('int pidfd_open(int, uint32_t)'), getfd: lib.func('int pidfd_getfd(int, int, uint32_t)') };
      } catch {
        pidfd = null;
      }
    }
    return pidfd;
  };
  cached = {
    socket: lib.func('int socket(int, int, int)'),
    setsockopt: lib.func('int setsockopt(int, int, int, const void *, uint32_t)'),
    getsockopt: lib.func('int getsockopt(int, int, int, void *, void *)'),
    bind: lib.func('int bind(int, const void *, uint32_t)'),
    getsockname: lib.func('int getsockname(int, void *, void *)'),
    close,
    fcntl: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg) as number,
    geteuid: lib.func('uint32_t geteuid()'),
    recvmmsg: lib.func('int recvmmsg(int, void *, uint32_t, int, void *)'),
    sendmmsg: lib.func('int sendmmsg(int, void *, uint32_t, int)'),
    memfdCreate: lib.func('int memfd_create(const char *, unsigned int)'),
    ftruncate: lib.func('int ftruncate(int, int64_t)'),
    mmap: (length, prot, flags, fd) => {
      const p = mmap(null, length, prot, flags, fd, 0);
      // MAP_FAILED is (void *)-1.
      return p === null || koffi.address(p) === 0xffffffffffffffffn ? null : p;
    },
    munmap: lib.func('int munmap(void *, size_t)'),
    timerfdCreate: lib.func('int timerfd_create(int, int)'),
    timerfdSettime: lib.func('int timerfd_settime(int, int, const void *, void *)'),
    errno: () => koffi.errno(),
    prctl: (option, arg) => prctl(option, 'unsigned long', arg, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0) as number,
    connect: lib.func('int connect(int, const void *, uint32_t)'),
    sendmsg: lib.func('intptr_t sendmsg(int, const void *, int)'),
    recvmsg: lib.func('intptr_t recvmsg(int, void *, int)'),
    pidfdOpen: (pid) => pidfdCalls()?.open(pid, 0) ?? -1,
    poll: lib.func('int poll(void *, unsigned long, int)'),
    borrowFd: (pid, fd) => {
      const calls = pidfdCalls();
      if (!calls) return -1;
      const pfd = calls.open(pid, 0);
      if (pfd < 0) return -1;
      try {
        return calls.getfd(pfd, fd, 0);
      } finally {
        close(pfd);
      }
    },
  };
  return cached;
}
