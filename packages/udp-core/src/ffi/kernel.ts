/**
 * Every Linux constant and struct layout shardgram hands to the kernel, named once,
 * with the header it comes from. x86_64 / generic 64-bit ABI. (At the end: the two libuv
 * constants of ffi/uv-poll.ts.)
 */

// include/linux/socket.h
export const AF_INET = 2;
export const AF_INET6 = 10;

// include/linux/net.h (enum sock_type) and include/linux/net.h SOCK_CLOEXEC/SOCK_NONBLOCK
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000; // == O_NONBLOCK, include/uapi/asm-generic/fcntl.h
export const SOCK_CLOEXEC = 0o2000000; // == O_CLOEXEC, include/uapi/asm-generic/fcntl.h

// include/uapi/linux/in.h
export const IPPROTO_UDP = 17;

// include/uapi/asm-generic/socket.h
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_RCVBUFFORCE = 33;
export const SO_RXQ_OVFL = 40;
export const SO_ATTACH_REUSEPORT_CBPF = 51;
export const SO_MEMINFO = 55;
/** SO_TIMESTAMPNS_OLD: a struct timespec per datagram (64-bit time_t on x86_64, so the same layout as _NEW). */
export const SO_TIMESTAMPNS = 35;
/** The control message type SO_TIMESTAMPNS delivers (== SO_TIMESTAMPNS). */
export const SCM_TIMESTAMPNS = SO_TIMESTAMPNS;
export const SO_DETACH_REUSEPORT_BPF = 68;

// include/linux/socket.h (SOL_UDP == IPPROTO_UDP)
export const SOL_UDP = 17;
// include/uapi/linux/in6.h
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;

// include/uapi/linux/socket.h MSG_* flags (include/linux/socket.h)
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITFORONE = 0x10000;

// include/uapi/linux/sock_diag.h: enum { SK_MEMINFO_RMEM_ALLOC, ..., SK_MEMINFO_DROPS, SK_MEMINFO_VARS }
export const SK_MEMINFO_RMEM_ALLOC = 0;
export const SK_MEMINFO_RCVBUF = 1;
export const SK_MEMINFO_DROPS = 8;
export const SK_MEMINFO_VARS = 9;

// include/uapi/asm-generic/fcntl.h
export const F_GETFL = 3;
export const F_SETFL = 4;
export const O_NONBLOCK = 0o4000;

// include/uapi/linux/in.h struct sockaddr_in (16 bytes)
export const SOCKADDR_IN_SIZE = 16;
export const SIN_FAMILY = 0; // u16, host order
export const SIN_PORT = 2; // u16, network order
export const SIN_ADDR = 4; // 4 bytes

// include/uapi/linux/in6.h struct sockaddr_in6 (28 bytes)
export const SOCKADDR_IN6_SIZE = 28;
export const SIN6_FAMILY = 0;
export const SIN6_PORT = 2;
export const SIN6_FLOWINFO = 4;
export const SIN6_ADDR = 8; // 16 bytes
export const SIN6_SCOPE_ID = 24;
/** Room for either family (sizeof(struct sockaddr_in6)). */
export const SOCKADDR_MAX = SOCKADDR_IN6_SIZE;

// include/linux/socket.h struct msghdr (user ABI, 56 bytes)
export const MSGHDR_SIZE = 56;
export const MSG_NAME = 0; // void *
export const MSG_NAMELEN = 8; // int (socklen_t)
export const MSG_IOV = 16; // struct iovec *
export const MSG_IOVLEN = 24; // size_t
export const MSG_CONTROL = 32; // void *
export const MSG_CONTROLLEN = 40; // size_t
export const MSG_FLAGS = 48; // int

// include/linux/socket.h struct mmsghdr (64 bytes)
export const MMSGHDR_SIZE = 64;
export const MMSG_HDR = 0;
export const MMSG_LEN = 56; // unsigned int

// include/uapi/linux/uio.h struct iovec (16 bytes)
export const IOVEC_SIZE = 16;
export const IOV_BASE = 0;
export const IOV_LEN = 8;

// include/linux/socket.h struct cmsghdr (16 bytes), CMSG_SPACE(4) = 24
export const CMSGHDR_SIZE = 16;
export const CMSG_LEN_OFF = 0; // size_t
export const CMSG_LEVEL = 8; // int
export const CMSG_TYPE = 12; // int
export const CMSG_DATA = 16;
/** Control messages are aligned to sizeof(size_t). */
export const CMSG_ALIGN_TO = 8;
/** CMSG_ALIGN(n): n rounded up to that alignment. */
export const CMSG_ALIGN = (n: number): number => Math.ceil(n / CMSG_ALIGN_TO) * CMSG_ALIGN_TO;

// include/uapi/linux/time.h struct timespec (64-bit: i64 tv_sec, i64 tv_nsec; 16 bytes)
export const TIMESPEC_SIZE = 16;
export const TS_SEC = 0;
export const TS_NSEC = 8;
/** CMSG_SPACE(sizeof(struct timespec)) = 16 + 16: room for one SCM_TIMESTAMPNS. */
export const CMSG_SPACE_TIMESPEC = CMSGHDR_SIZE + TIMESPEC_SIZE;

// include/uapi/linux/filter.h struct sock_filter (8 bytes) and struct sock_fprog (16 bytes)
export const SOCK_FILTER_SIZE = 8;
export const SOCK_FPROG_SIZE = 16;
export const FPROG_LEN = 0; // unsigned short
export const FPROG_FILTER = 8; // struct sock_filter *

// include/uapi/linux/time.h
export const CLOCK_MONOTONIC = 1;
// include/uapi/linux/timerfd.h (TFD_CLOEXEC == O_CLOEXEC, TFD_NONBLOCK == O_NONBLOCK)
export const TFD_CLOEXEC = 0o2000000;
export const TFD_NONBLOCK = 0o4000;
// include/uapi/linux/time_types.h struct __kernel_itimerspec (32 bytes) of two struct __kernel_timespec {i64 sec; i64 nsec}
export const ITIMERSPEC_SIZE = 32;
export const IT_INTERVAL_SEC = 0;
export const IT_INTERVAL_NSEC = 8;
export const IT_VALUE_SEC = 16;
export const IT_VALUE_NSEC = 24;

// include/uapi/linux/memfd.h
export const MFD_CLOEXEC = 0x0001;
// include/uapi/asm-generic/mman-common.h
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
// include/uapi/linux/mman.h
export const MAP_SHARED = 0x01;

// include/uapi/asm-generic/errno-base.h, include/uapi/asm-generic/errno.h
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOPROTOOPT = 92;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENOBUFS = 105;

/** Largest UDP payload over IPv4: 65535 - 20 (IP) - 8 (UDP). */
export const UDP_MAX_PAYLOAD = 65507;
/** Largest UDP payload over IPv6 without jumbograms: 65535 (payload length field) - 8 (UDP). */
export const UDP6_MAX_PAYLOAD = 65527;

// ---------------------------------------------------------------------------
// Classic BPF for reuseport steering (src/steering/*).
// ---------------------------------------------------------------------------

// include/uapi/linux/bpf_common.h: instruction classes (code & 0x07)
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_MISC = 0x07;
// include/uapi/linux/bpf_common.h: load/store size (code & 0x18)
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
// include/uapi/linux/bpf_common.h: load/store mode (code & 0xe0)
export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_LEN = 0x80;
export const BPF_MSH = 0xa0;
// include/uapi/linux/bpf_common.h: ALU and jump operations (code & 0xf0)
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
// include/uapi/linux/bpf_common.h: operand source (code & 0x08)
export const BPF_K = 0x00;
export const BPF_X = 0x08;
// include/uapi/linux/bpf_common.h: most instructions a classic program may have
export const BPF_MAXINSNS = 4096;
// include/uapi/linux/filter.h: ret A (rval, code & 0x18), misc ops (code & 0xf8)
export const BPF_A = 0x10;
export const BPF_TAX = 0x00;
export const BPF_TXA = 0x80;
// include/uapi/linux/filter.h: scratch memory words M[0..15]
export const BPF_MEMWORDS = 16;
// include/uapi/linux/filter.h: ancillary loads, `ld [SKF_AD_OFF + SKF_AD_*]`
export const SKF_AD_OFF = -0x1000;
export const SKF_AD_PROTOCOL = 0;
export const SKF_AD_CPU = 36;
export const SKF_AD_RANDOM = 56;
/** One past the last ancillary field (they are 4 apart: PROTOCOL 0 … VLAN_TPID 60). */
export const SKF_AD_MAX = 64;
// include/uapi/linux/filter.h: negative offsets relative to the network / link header
export const SKF_NET_OFF = -0x100000;
export const SKF_LL_OFF = -0x200000;

// ---- Control plane, hand-over, service managers ----
// include/linux/socket.h
export const AF_UNIX = 1;
// include/linux/net.h (enum sock_type)
export const SOCK_STREAM = 1;
// include/uapi/asm-generic/socket.h: peer credentials of a connected unix socket
export const SO_PEERCRED = 17;
// include/linux/socket.h: ancillary message types at SOL_SOCKET
export const SCM_RIGHTS = 1;
// include/linux/socket.h
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const MSG_CTRUNC = 0x08;
// include/linux/cred.h / include/uapi/linux/socket.h: struct ucred { pid_t pid; uid_t uid; gid_t gid; }
export const UCRED_SIZE = 12;
export const UCRED_PID = 0;
export const UCRED_UID = 4;
export const UCRED_GID = 8;
// include/uapi/linux/un.h: struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }
export const SOCKADDR_UN_SIZE = 110;
export const SUN_FAMILY = 0;
export const SUN_PATH = 2;
export const UNIX_PATH_MAX = 108;
// include/uapi/linux/prctl.h
export const PR_SET_PDEATHSIG = 1;
// include/uapi/asm-generic/signal.h
export const SIGKILL = 9;
// include/systemd/sd-daemon.h: first fd passed by socket activation
export const SD_LISTEN_FDS_START = 3;
// include/uapi/asm-generic/socket.h: what a socket is (read-only options)
export const SO_TYPE = 3;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
// include/uapi/asm-generic/socket.h (SO_RCVTIMEO_OLD on 64-bit): struct timeval { i64 tv_sec; i64 tv_usec; }
export const SO_RCVTIMEO = 20;
export const TIMEVAL_SIZE = 16;
export const TV_SEC = 0;
export const TV_USEC = 8;
// include/uapi/asm-generic/fcntl.h
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
// include/uapi/asm-generic/fcntl.h: duplicate a descriptor, close-on-exec
export const F_DUPFD_CLOEXEC = 1030;
// include/net/scm.h: SCM_MAX_FD, the most fds one SCM_RIGHTS message carries
export const SCM_MAX_FD = 253;
// include/uapi/asm-generic/poll.h: struct pollfd { int fd; short events; short revents; }
export const POLLFD_SIZE = 8;
export const POLLFD_FD = 0;
export const POLLFD_EVENTS = 4;
export const POLLFD_REVENTS = 6;
export const POLLIN = 0x0001;
// net/core/sock.c (sk_setsockopt, SO_RCVBUF): the kernel keeps twice the size asked for
// (room for its own bookkeeping) and SO_RCVBUF and SO_MEMINFO report that doubled size.
export const RCVBUF_DOUBLING = 2;

// libuv's uv.h (the event loop Node runs on; Node exports its uv_* functions to addons):
// uv_handle_type's UV_POLL (UV_HANDLE_TYPE_MAP order, stable across libuv 1.x) and uv_poll_event's UV_READABLE.
export const UV_POLL = 8;
export const UV_READABLE = 1;
