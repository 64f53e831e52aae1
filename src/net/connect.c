/*
 * Opening connections: asyncio's loop.create_connection and
 * create_unix_connection.
 *
 * Each resolved address is tried in turn, as asyncio does without
 * happy_eyeballs_delay: a socket is made, connected through the op layer
 * (cio__op_await, so a cancellation or the deadline ends the attempt
 * cleanly), and on success handed to a new transport, which then owns it.
 * The error of the last address tried is what the caller gets.
 */
#include <netdb.h>
#include <stdint.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

/* What loop close gives back for a task it ends inside a connect (see
 * cio__holding): the socket, which the kernel has forgotten by then (the
 * connect was cancelled), and the resolved addresses. */
static void release_socket(void *arg) {
    close((int)(intptr_t)arg);
}

static void release_addresses(void *arg) {
    freeaddrinfo(arg);
}

/* One attempt: a connected, non-blocking socket, or -errno. */
static int connect_one(cio_loop *loop, const struct sockaddr *addr, socklen_t len,
                       int64_t deadline) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    cio__op op;
    cio__op_init(&op, CIO__OP_CONNECT, fd);
    op.u.connect.addr = addr;
    op.u.connect.addrlen = len;
    cio__holding socket_held;
    cio__loop_hold(loop, &socket_held, release_socket, (void *)(intptr_t)fd);
    ssize_t rc = cio__op_await(&op, deadline);
    cio__loop_unhold(&socket_held);
    if (rc < 0) {
        /* The loop forgets the descriptor before it is closed. */
        cio_close(fd);
        return (int)rc;
    }
    return fd;
}

static int make_transport(cio_loop *loop, int fd, const cio_protocol *proto, void *ctx,
                          cio_transport **out) {
    cio_transport *t;
    int rc = cio__transport_new(loop, fd, proto, ctx, &t);
    if (rc < 0) return rc;
    cio__transport_start(t);
    *out = t;
    return 0;
}

static int check_connect(cio_loop *loop, const cio_protocol *proto, cio_transport **out) {
    if (out) *out = NULL;
    if (!loop || !proto || !proto->data_received || !out) return -EINVAL;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    if (!cio_current_task()) return -EPERM;
    /* The socket is connected by the calling task, through its loop. */
    return cio_running_loop() == loop ? 0 : -CIO_EWRONGLOOP;
}

int cio_create_connection_until(cio_loop *loop, const cio_protocol *proto, void *ctx,
                                const char *host, const char *port, double when,
                                cio_transport **out) {
    int64_t deadline;
    int rc = check_connect(loop, proto, out);
    int bad = cio__deadline(when, &deadline);
    if (bad < 0) return bad;
    if (!host || !port) return -EINVAL;
    if (rc < 0) return rc;
    struct addrinfo *res;
    if ((rc = cio__resolve(host, port, 0, &res)) < 0) return rc;
    cio__holding addresses_held;
    cio__loop_hold(loop, &addresses_held, release_addresses, res);
    int fd = -ENOENT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = connect_one(loop, ai->ai_addr, ai->ai_addrlen, deadline);
        /* A cancellation or the deadline ends the whole call. */
        if (fd >= 0 || fd == -ECANCELED || fd == -ETIMEDOUT) break;
    }
    cio__loop_unhold(&addresses_held);
    freeaddrinfo(res);
    if (fd < 0) return fd;
    return make_transport(loop, fd, proto, ctx, out);
}

int cio_create_connection(cio_loop *loop, const cio_protocol *proto, void *ctx, const char *host,
                          const char *port, cio_transport **out) {
    return cio_create_connection_until(loop, proto, ctx, host, port, CIO_NO_TIMEOUT, out);
}

int cio_create_unix_connection(cio_loop *loop, const cio_protocol *proto, void *ctx,
                               const char *path, cio_transport **out) {
    struct sockaddr_un addr;
    unsigned int len;
    int rc = check_connect(loop, proto, out);
    int bad = cio__unix_address(path, &addr, &len);
    if (bad < 0) return bad;
    if (rc < 0) return rc;
    int fd = connect_one(loop, (struct sockaddr *)&addr, len, INT64_MAX);
    if (fd < 0) return fd;
    return make_transport(loop, fd, proto, ctx, out);
}
