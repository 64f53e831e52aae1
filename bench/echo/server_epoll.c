/*
 * The baseline of the echo benchmark: the plainest fast echo server one
 * writes by hand on epoll. Level-triggered; every socket is registered once
 * for EPOLLIN and stays registered; a readable socket gets one recv() into
 * a shared 64 KiB buffer and one send() of what came, so an echoed message
 * costs three system calls at best (its share of epoll_wait, recv, send).
 * Only if the kernel takes less than everything does the connection keep
 * the rest in a buffer of its own and wait for EPOLLOUT (it stops reading
 * meanwhile, which is the back-pressure). An idle connection costs nothing
 * but its slot in the table.
 *
 *     server_epoll PORT[,PORT...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <sys/epoll.h>

#include "common.h"

typedef struct pending {
    char *data;
    size_t len, off;
} pending;

static pending **table; /* indexed by fd; NULL when nothing waits to be sent */
static size_t table_len;

static void drop(int ep, int fd) {
    if ((size_t)fd < table_len && table[fd]) {
        free(table[fd]->data);
        free(table[fd]);
        table[fd] = NULL;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

/* Keeps data[0..len) for later and switches fd from reading to writing. */
static int keep(int ep, int fd, const char *data, size_t len) {
    if ((size_t)fd >= table_len) {
        size_t n = table_len ? table_len : 1024;
        while (n <= (size_t)fd) n *= 2;
        pending **t = realloc(table, n * sizeof *t);
        if (!t) return -1;
        memset(t + table_len, 0, (n - table_len) * sizeof *t);
        table = t;
        table_len = n;
    }
    pending *p = malloc(sizeof *p);
    char *copy = malloc(len);
    if (!p || !copy) {
        free(p);
        free(copy);
        return -1;
    }
    memcpy(copy, data, len);
    *p = (pending){copy, len, 0};
    table[fd] = p;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

int main(int argc, char **argv) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_epoll PORT[,PORT...]\n");
        return 2;
    }
    echo_raise_nofile(200000);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return 1;
    /* Listening sockets are told apart from connections by a tag bit. */
    const uint64_t listener = 1ull << 32;
    for (int i = 0; i < nports; i++) {
        int lfd = echo_listen(ports[i], 1);
        if (lfd < 0) {
            perror("listen");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = listener | (uint32_t)lfd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) return 1;
    }

    static char buf[65536];
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            if (evs[i].data.u64 & listener) {
                /* Accept what the queue holds now (bounded, so that a
                 * connection storm does not starve the connections). */
                for (int k = 0; k < 64; k++) {
                    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break;
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint32_t)c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) != 0) close(c);
                }
                continue;
            }
            if ((size_t)fd < table_len && table[fd]) {
                /* Writable again: finish the kept bytes, then read again. */
                pending *p = table[fd];
                ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) {
                    drop(ep, fd);
                    continue;
                }
                if (w > 0) p->off += (size_t)w;
                if (p->off == p->len) {
                    free(p->data);
                    free(p);
                    table[fd] = NULL;
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint32_t)fd};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                drop(ep, fd);
                continue;
            }
            ssize_t w = send(fd, buf, (size_t)r, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno != EAGAIN) {
                    drop(ep, fd);
                    continue;
                }
                w = 0;
            }
            if (w < r && keep(ep, fd, buf + w, (size_t)(r - w)) != 0) drop(ep, fd);
        }
    }
}
