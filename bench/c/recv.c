/*
 * The floor: a plain C receiver on the same socket setup as shardgram's workers.
 * The parent opens N SO_REUSEPORT UDP sockets on one address:port (in bind order,
 * default receive buffer unless --rcvbuf), then forks one child per socket; each child loops on
 * blocking recvmmsg(MSG_WAITFORONE) with a batch of 64 and counts datagrams into
 * shared memory.
 *
 * --paced-us D: the children read as shardgram's native engine does instead
 * (engine/native.ts, engine/pacing.ts), so that "× floor" compares the same wake-ups:
 * recvmmsg(MSG_DONTWAIT) until a call returns less than a batch (yielding nothing: the
 * loop has no other work), then, when the arrival rate since the socket was last empty
 * is steady (at least 4 datagrams per 500 µs), a timerfd armed for the time half a batch
 * takes to arrive at that rate, from 20 µs up to D µs (the engine's read delay), waited
 * for with poll(); a thinner rate waits for the socket's readable event with poll().
 *
 *   recv --port P [--address A] [--workers N] [--batch M] [--size B] [--rcvbuf BYTES] [--paced-us D]
 *
 * Prints {"ready":true,"port":P,"pids":[...]} once the children run. Then, for each
 * line "stats" on stdin, prints {"workers":[{"pid":..,"datagrams":..,"truncated":..}]}.
 * On end of input (or "quit") it kills the children and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

struct counters { volatile unsigned long long datagrams, truncated; char pad[48]; };

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The engine's paced loop (see the header); never returns. */
static void paced(int fd, int batch, struct mmsghdr *msgs, struct sockaddr_storage *names, double max_delay_us, struct counters *c) {
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (tfd < 0) { perror("timerfd_create"); _exit(1); }
  double last_dry = now_us();
  unsigned long long since_dry = 0;
  double wait_us = 0;
  for (;;) {
    struct pollfd p = { .fd = wait_us > 0 ? tfd : fd, .events = POLLIN };
    if (wait_us > 0) {
      struct itimerspec it = { .it_value = { .tv_sec = 0, .tv_nsec = (long)(wait_us * 1000) } };
      timerfd_settime(tfd, 0, &it, NULL);
    }
    if (poll(&p, 1, -1) < 0 && errno != EINTR) { perror("poll"); _exit(1); }
    if (wait_us > 0) {
      unsigned long long expirations;
      (void)!read(tfd, &expirations, sizeof expirations);
    }
    for (;;) {
      for (int i = 0; i < batch; i++) msgs[i].msg_hdr.msg_namelen = sizeof names[i];
      int n = recvmmsg(fd, msgs, batch, MSG_DONTWAIT, NULL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) { perror("recvmmsg"); _exit(1); }
        n = 0;
      }
      unsigned long long t = 0;
      for (int i = 0; i < n; i++) t += (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      c->truncated += t;
      c->datagrams += n - t;
      since_dry += n;
      if (n < batch) break;
    }
    double now = now_us();
    double per_us = now > last_dry ? since_dry / (now - last_dry) : 0;
    last_dry = now;
    since_dry = 0;
    /* pacing.ts, paceWaitUs: half a batch per 500 µs of allowed delay, from 20 µs to the delay. */
    if (max_delay_us >= 20 && per_us * 500 >= 4) {
      double target = batch * 0.5 * (max_delay_us / 500);
      wait_us = target / per_us;
      if (wait_us < 20) wait_us = 20;
      if (wait_us > max_delay_us) wait_us = max_delay_us;
    } else {
      wait_us = 0;
    }
  }
}

static void child(int fd, int batch, int size, double paced_us, struct counters *c) {
  char *data = malloc((size_t)batch * size);
  struct iovec *iov = calloc(batch, sizeof *iov);
  struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
  struct sockaddr_storage *names = calloc(batch, sizeof *names);
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = data + (size_t)i * size;
    iov[i].iov_len = size;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &names[i];
  }
  if (paced_us > 0) paced(fd, batch, msgs, names, paced_us, c);
  for (;;) {
    for (int i = 0; i < batch; i++) msgs[i].msg_hdr.msg_namelen = sizeof names[i];
    int n = recvmmsg(fd, msgs, batch, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("recvmmsg");
      _exit(1);
    }
    unsigned long long t = 0;
    for (int i = 0; i < n; i++) t += (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    c->truncated += t;
    c->datagrams += n - t;
  }
}

int main(int argc, char **argv) {
  const char *address = "127.0.0.1";
  int port = 0, workers = 1, batch = 64, size = 2048, rcvbuf = 0;
  double paced_us = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--address")) address = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--workers")) workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rcvbuf")) rcvbuf = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--paced-us")) paced_us = atof(argv[i + 1]);
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (port < 0 || port > 65535 || workers < 1 || workers > 256 || batch < 1 || batch > 1024 || size < 1 || paced_us < 0 || paced_us > 100000) {
    fprintf(stderr, "usage: recv --port P [--address A] [--workers N] [--batch M] [--size B] [--rcvbuf BYTES] [--paced-us D]\n");
    return 2;
  }
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
  if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) { fprintf(stderr, "IPv4 address expected\n"); return 2; }
  struct counters *c = mmap(NULL, sizeof *c * workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (c == MAP_FAILED) { perror("mmap"); return 1; }
  int *fds = calloc(workers, sizeof(int));
  pid_t *pids = calloc(workers, sizeof(pid_t));
  for (int i = 0; i < workers; i++) {
    int one = 1;
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fds[i] < 0 || setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (rcvbuf > 0 && setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) ||
        bind(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0) {
      perror("socket/setsockopt/bind");
      return 1;
    }
    if (i == 0 && port == 0) {
      socklen_t len = sizeof sa;
      getsockname(fds[0], (struct sockaddr *)&sa, &len);
      port = ntohs(sa.sin_port);
    }
  }
  for (int i = 0; i < workers; i++) {
    pid_t p = fork();
    if (p < 0) { perror("fork"); return 1; }
    if (p == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      child(fds[i], batch, size, paced_us, &c[i]);
    }
    pids[i] = p;
  }
  printf("{\"ready\":true,\"port\":%d,\"pids\":[", port);
  for (int i = 0; i < workers; i++) printf("%s%d", i ? "," : "", pids[i]);
  printf("]}\n");
  fflush(stdout);
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    if (!strncmp(line, "quit", 4)) break;
    if (strncmp(line, "stats", 5)) continue;
    printf("{\"workers\":[");
    for (int i = 0; i < workers; i++) {
      printf("%s{\"pid\":%d,\"datagrams\":%llu,\"truncated\":%llu}", i ? "," : "", pids[i], c[i].datagrams, c[i].truncated);
    }
    printf("]}\n");
    fflush(stdout);
  }
  for (int i = 0; i < workers; i++) kill(pids[i], SIGKILL);
  for (int i = 0; i < workers; i++) waitpid(pids[i], NULL, 0);
  return 0;
}
