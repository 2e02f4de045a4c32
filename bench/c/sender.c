/*
 * The plain C sendmmsg loop the benchmark compares shardgram's native sender with:
 * K source sockets bound to loopback port 0, batches of prebuilt datagrams sent
 * round-robin over them with blocking sendmmsg, stopping after a count or a time.
 *
 *   sender --port P [--address A] [--count N] [--sources K] [--size B] [--batch M] [--max-ms T]
 *          [--rate R] [--syslog TAG]
 *
 * --rate R: paced at R datagrams per second (batches of at most 16, each sent when it
 * is due on CLOCK_MONOTONIC), the same offered load whatever reads the port; 0 (the
 * default): as fast as it goes. --syslog TAG: each datagram is an RFC 5424 message of
 * about 240 bytes whose text starts with TAG and its sequence number (0, 1, …), so that a
 * syslog receiver's output can be counted message by message (bench/syslog.js); --size
 * is then ignored.
 *
 * Prints one JSON line: {"sent":N,"ms":T,"rate":R,"errors":E}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  const char *address = "127.0.0.1";
  int port = 0, sources = 64, size = 100, batch = 64;
  long long count = 1000000;
  double max_ms = 10000, rate = 0;
  const char *tag = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--address")) address = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--count")) count = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--sources")) sources = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-ms")) max_ms = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--syslog")) tag = argv[i + 1];
    else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (tag) size = 512;
  if (rate > 0 && batch > 16) batch = 16;
  if (port <= 0 || port > 65535 || sources < 1 || size < 1 || size > 65507 || batch < 1 || batch > 1024 || rate < 0 || (tag && strlen(tag) > 64)) {
    fprintf(stderr, "usage: sender --port P [--address A] [--count N] [--sources K] [--size B] [--batch M] [--max-ms T] [--rate R] [--syslog TAG]\n");
    return 2;
  }
  struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
  if (inet_pton(AF_INET, address, &dst.sin_addr) != 1) { fprintf(stderr, "IPv4 address expected\n"); return 2; }
  struct sockaddr_in src = { .sin_family = AF_INET, .sin_port = 0 };
  inet_pton(AF_INET, "127.0.0.1", &src.sin_addr);
  int *fds = calloc(sources, sizeof(int));
  for (int i = 0; i < sources; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&src, sizeof src) != 0) { perror("socket/bind"); return 1; }
  }
  char *data = calloc(batch, size);
  memset(data, '.', (size_t)batch * size);
  struct iovec *iov = calloc(batch, sizeof *iov);
  struct mmsghdr *msgs = calloc(batch, sizeof *msgs);
  for (int i = 0; i < batch; i++) {
    iov[i].iov_base = data + (size_t)i * size;
    iov[i].iov_len = size;
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof dst;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  long long sent = 0, errors = 0;
  int s = 0;
  double start = now_ms(), end = start;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (sent < count) {
    int want = count - sent < batch ? (int)(count - sent) : batch;
    if (rate > 0) {
      /* The batch that starts at datagram `sent` is due at t0 + sent / rate. */
      double due = sent / rate;
      struct timespec at = { .tv_sec = t0.tv_sec + (time_t)due, .tv_nsec = t0.tv_nsec + (long)((due - (double)(time_t)due) * 1e9) };
      if (at.tv_nsec >= 1000000000L) { at.tv_sec++; at.tv_nsec -= 1000000000L; }
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR) {}
    }
    if (tag) {
      for (int k = 0; k < want; k++) {
        int len = snprintf(data + (size_t)k * size, size,
          "<134>1 2025-06-15T10:00:00.000000Z benchhost benchapp 4242 BENCH [bench@32473 run=\"%s\"] %s%lld"
          " lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore",
          tag, tag, sent + k);
        iov[k].iov_len = len < size ? len : size - 1;
      }
    }
    int n = sendmmsg(fds[s], msgs, want, 0);
    if (n < 0) {
      if (errno != EINTR) errors++;
    } else {
      sent += n;
    }
    s = s + 1 == sources ? 0 : s + 1;
    if (rate > 0 || (sent & 0x3fff) < (unsigned)batch) {
      end = now_ms();
      if (end - start > max_ms) break;
    }
  }
  end = now_ms();
  printf("{\"sent\":%lld,\"ms\":%.3f,\"rate\":%.0f,\"errors\":%lld}\n", sent, end - start, sent / ((end - start) / 1e3), errors);
  return 0;
}
