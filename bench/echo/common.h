/*
 * Shared helpers of the echo benchmark's C programs (client and servers):
 * parsing a comma-separated port list, raising RLIMIT_NOFILE, and making a
 * listening socket on 127.0.0.1. Header-only so that every server stays a
 * single file that reads like the canonical echo server of its library.
 */
#ifndef CIO_BENCH_ECHO_COMMON_H
#define CIO_BENCH_ECHO_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ECHO_MAX_PORTS 64

/* Parses "p1,p2,..." into ports[]; returns the count, or -1 on bad input. */
static inline int echo_parse_ports(const char *s, int *ports, int max) {
    int n = 0;
    while (*s) {
        char *end;
        long p = strtol(s, &end, 10);
        if (end == s || p <= 0 || p > 65535 || n == max) return -1;
        ports[n++] = (int)p;
        if (*end == ',') end++;
        else if (*end != '\0') return -1;
        s = end;
    }
    return n > 0 ? n : -1;
}

/* Idle-connection runs hold up to 100,000 sockets per process. Root may go
 * past the hard limit (up to fs.nr_open); anyone else gets the hard limit. */
static inline void echo_raise_nofile(rlim_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur >= want) return;
    struct rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) return;
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* A listening TCP socket on 127.0.0.1:port (the clients connect from other
 * 127.0.0.0/8 source addresses, which loopback routes here too). */
static inline int echo_listen(int port, int nonblocking) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

#endif
