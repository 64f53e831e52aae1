/*
 * The io_uring reference of the echo benchmark: the plainest fast echo
 * server one writes by hand on liburing, the ceiling cio's io_uring backend
 * is measured against (issue 9 asks cio for at least 0.9x of its messages
 * per second at 512 connections x 64 B).
 *
 *  - One ring (SINGLE_ISSUER|DEFER_TASKRUN when the kernel takes them), its
 *    fd registered, and one io_uring_enter per loop iteration
 *    (io_uring_submit_and_wait: submit what the iteration prepared, wait for
 *    one completion), completions taken in a batch (io_uring_for_each_cqe,
 *    one io_uring_cq_advance).
 *  - A multishot accept per listening socket.
 *  - A multishot recv per connection into a provided-buffer ring of 1024 x
 *    4 KiB (cio's default), so receiving costs no system call.
 *  - The echo is an IORING_OP_SEND straight from the received buffer, which
 *    goes back to the ring when the send completes: no copy, no system call
 *    per message. One send per connection is in flight at a time (the
 *    kernel does not order two sends on one socket); chunks received
 *    meanwhile wait in the connection's chain, and a short send is
 *    submitted again for its rest.
 *  - A connection whose receive stopped for want of buffers (ENOBUFS) is
 *    armed again once buffers come back.
 *
 *     server_uring PORT[,PORT...]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <liburing.h>
#include <stdint.h>
#include <sys/mman.h>

#include "common.h"

enum { NBUFS = 1024, BUFSZ = 4096, BGID = 1 };
enum { T_ACCEPT = 1, T_RECV = 2, T_SEND = 3 };
#define NONE UINT32_MAX

typedef struct conn {
    uint32_t head, tail; /* received chunks to send, in order (buffer ids) */
    uint32_t off;        /* bytes of the head chunk already sent */
    uint8_t open, sending, receiving, starving, closing;
} conn;

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static uint32_t buf_len[NBUFS], buf_next[NBUFS];
static conn *conns;
static size_t nconns;
static int *starving; /* connections waiting for buffers to come back */
static size_t nstarving, starving_cap;

static uint64_t tag(int type, int fd) {
    return ((uint64_t)type << 32) | (uint32_t)fd;
}

static struct io_uring_sqe *sqe_get(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void give_back(uint32_t bid) {
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(br, 1);
}

static conn *get_conn(int fd) {
    if ((size_t)fd >= nconns) {
        size_t n = nconns ? nconns : 1024;
        while (n <= (size_t)fd) n *= 2;
        conn *c = realloc(conns, n * sizeof *c);
        if (!c) abort();
        memset(c + nconns, 0, (n - nconns) * sizeof *c);
        conns = c;
        nconns = n;
    }
    return &conns[fd];
}

static void arm_recv(int fd) {
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, tag(T_RECV, fd));
    conns[fd].receiving = 1;
}

static void send_head(int fd) {
    conn *c = &conns[fd];
    uint32_t bid = c->head;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, bufs + (size_t)bid * BUFSZ + c->off, buf_len[bid] - c->off,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(T_SEND, fd));
    c->sending = 1;
}

static void maybe_close(int fd) {
    conn *c = &conns[fd];
    if (!c->closing || c->sending || c->receiving) return;
    while (c->head != NONE) {
        uint32_t next = buf_next[c->head];
        give_back(c->head);
        c->head = next;
    }
    c->tail = NONE;
    c->open = 0;
    close(fd);
}

static void on_recv(int fd, int res, unsigned flags) {
    conn *c = &conns[fd];
    if (!(flags & IORING_CQE_F_MORE)) c->receiving = 0;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
        buf_len[bid] = (uint32_t)res;
        buf_next[bid] = NONE;
        if (c->closing) {
            give_back(bid);
        } else {
            if (c->tail == NONE) c->head = bid;
            else buf_next[c->tail] = bid;
            c->tail = bid;
            if (!c->sending) {
                c->off = 0;
                send_head(fd);
            }
        }
    }
    if (flags & IORING_CQE_F_MORE) return;
    if (res > 0 && !c->closing) {
        arm_recv(fd);
    } else if (res == -ENOBUFS && !c->closing) {
        if (nstarving == starving_cap) {
            starving_cap = starving_cap ? 2 * starving_cap : 64;
            starving = realloc(starving, starving_cap * sizeof *starving);
            if (!starving) abort();
        }
        starving[nstarving++] = fd;
        c->starving = 1;
    } else {
        c->closing = 1;
        maybe_close(fd);
    }
}

static void on_send(int fd, int res) {
    conn *c = &conns[fd];
    c->sending = 0;
    if (res < 0) {
        c->closing = 1;
        if (c->receiving) shutdown(fd, SHUT_RDWR); /* ends the receive */
        maybe_close(fd);
        return;
    }
    c->off += (uint32_t)res;
    if (c->off == buf_len[c->head]) {
        uint32_t bid = c->head;
        c->head = buf_next[bid];
        if (c->head == NONE) c->tail = NONE;
        c->off = 0;
        give_back(bid);
    }
    if (c->head != NONE && !c->closing) send_head(fd);
    else maybe_close(fd);
}

int main(int argc, char **argv) {
    int ports[ECHO_MAX_PORTS];
    int nports = argc == 2 ? echo_parse_ports(argv[1], ports, ECHO_MAX_PORTS) : -1;
    if (nports < 0) {
        fprintf(stderr, "usage: server_uring PORT[,PORT...]\n");
        return 2;
    }
    echo_raise_nofile(200000);
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = 4096;
    if (io_uring_queue_init_params(1024, &ring, &p) < 0) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 4096;
        int rc = io_uring_queue_init_params(1024, &ring, &p);
        if (rc < 0) {
            fprintf(stderr, "server_uring: io_uring_setup: %s\n", strerror(-rc));
            return 1;
        }
    }
    io_uring_register_ring_fd(&ring);
    br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufs = mmap(NULL, (size_t)NBUFS * BUFSZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED) return 1;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS,
                                   .bgid = BGID};
    int rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "server_uring: buffer ring: %s\n", strerror(-rc));
        return 1;
    }
    io_uring_buf_ring_init(br);
    for (int i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i,
                              io_uring_buf_ring_mask(NBUFS), i);
    io_uring_buf_ring_advance(br, NBUFS);

    for (int i = 0; i < nports; i++) {
        int lfd = echo_listen(ports[i], 0);
        if (lfd < 0) {
            perror("listen");
            return 1;
        }
        struct io_uring_sqe *sqe = sqe_get();
        io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, tag(T_ACCEPT, lfd));
    }

    for (;;) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY) {
            fprintf(stderr, "server_uring: io_uring_enter: %s\n", strerror(-rc));
            return 1;
        }
        unsigned head, n = 0;
        int returned = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe) {
            int type = (int)(cqe->user_data >> 32);
            int fd = (int)(uint32_t)cqe->user_data;
            if (type == T_ACCEPT) {
                if (cqe->res >= 0) {
                    int one = 1;
                    setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *c = get_conn(cqe->res);
                    *c = (conn){.head = NONE, .tail = NONE, .open = 1};
                    arm_recv(cqe->res);
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    struct io_uring_sqe *sqe = sqe_get();
                    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
                    io_uring_sqe_set_data64(sqe, tag(T_ACCEPT, fd));
                }
            } else if (type == T_RECV) {
                on_recv(fd, cqe->res, cqe->flags);
            } else {
                on_send(fd, cqe->res);
                returned = 1;
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
        /* Buffers came back: the connections that had none receive again. */
        if (returned && nstarving) {
            for (size_t i = 0; i < nstarving; i++) {
                conn *c = &conns[starving[i]];
                c->starving = 0;
                if (c->open && !c->closing) arm_recv(starving[i]);
            }
            nstarving = 0;
        }
    }
}
