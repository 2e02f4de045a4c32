/*
 * The floor: a plain C receiver on the same socket setup as shardgram's workers.
 * The parent opens N SO_REUSEPORT UDP sockets on one address:port (in bind order,
 * default receive buffer unless --rcvbuf), then forks one child per socket; each child loops on
 * blocking recvmmsg(MSG_WAITFORONE) with a batch of 64 and counts datagrams into
 * shared memory.
 *
 *   recv --port P [--address A] [--workers N] [--batch M] [--size B] [--rcvbuf BYTES]
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct counters { volatile unsigned long long datagrams, truncated; char pad[48]; };

static void child(int fd, int batch, int size, struct counters *c) {
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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--address")) address = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--workers")) workers = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rcvbuf")) rcvbuf = atoi(argv[i + 1]);
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (port < 0 || port > 65535 || workers < 1 || workers > 256 || batch < 1 || batch > 1024 || size < 1) {
    fprintf(stderr, "usage: recv --port P [--address A] [--workers N] [--batch M] [--size B] [--rcvbuf BYTES]\n");
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
      child(fds[i], batch, size, &c[i]);
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
