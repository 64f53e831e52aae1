/*
 * Socket operations for tasks (asyncio's loop.sock_recv, sock_sendall,
 * sock_accept, sock_connect). Each builds an operation record on the
 * task's stack and awaits it (cio__op_await): the backend tries the call,
 * waits for readiness or the kernel's completion as it must, and hands back
 * the result. Every operation has an _until form taking an absolute
 * deadline in loop time.
 */
#include "net.h"

/* Every operation here may suspend, so each refuses to run outside a task
 * even when the kernel could complete it at once. As everywhere in cio
 * (convention 2), bad arguments are reported first: a NaN deadline or a
 * missing buffer is -EINVAL, a negative descriptor -EBADF, and only then
 * is a call outside a task -EPERM. */
static int prologue(int fd, double when, int64_t *deadline) {
    int rc = cio__deadline(when, deadline);
    if (rc < 0) return rc;
    if (fd < 0) return -EBADF;
    return cio_current_task() ? 0 : -EPERM;
}

/* recv and send: one buffer, one operation. */
static ssize_t transfer(uint8_t kind, int fd, void *buf, size_t len, double when) {
    if (!buf && len) return -EINVAL;
    int64_t deadline;
    int rc = prologue(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, kind, fd);
    op.u.rw.buf = buf;
    op.u.rw.len = len;
    op.u.rw.flags = 0;
    return cio__op_await(&op, deadline);
}

ssize_t cio_sock_recv_until(int fd, void *buf, size_t len, double when) {
    return transfer(CIO__OP_RECV, fd, buf, len, when);
}

ssize_t cio_sock_send_until(int fd, const void *buf, size_t len, double when) {
    /* The operation only reads the buffer; the record has one field for
     * both directions. */
    return transfer(CIO__OP_SEND, fd, (void *)buf, len, when);
}

ssize_t cio_sock_sendall_until(int fd, const void *buf, size_t len, double when) {
    if (!buf && len) return -EINVAL;
    int64_t deadline;
    int rc = prologue(fd, when, &deadline);
    if (rc < 0) return rc;
    /* One operation for the whole buffer, so that it keeps its place in
     * the descriptor's queue: two tasks' sendall calls never interleave. */
    cio__op op;
    cio__op_init(&op, CIO__OP_SEND, fd);
    op.flags = CIO__OP_ALL;
    op.u.rw.buf = (void *)buf;
    op.u.rw.len = len;
    op.u.rw.flags = 0;
    return cio__op_await(&op, deadline);
}

int cio_sock_accept_until(int fd, struct sockaddr *addr, unsigned int *addrlen, double when) {
    if (addr && !addrlen) return -EINVAL;
    int64_t deadline;
    int rc = prologue(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, CIO__OP_ACCEPT, fd);
    op.u.accept.addr = addr;
    op.u.accept.addrlen = addrlen;
    return (int)cio__op_await(&op, deadline);
}

int cio_sock_connect_until(int fd, const struct sockaddr *addr, unsigned int addrlen,
                           double when) {
    if (!addr) return -EINVAL;
    int64_t deadline;
    int rc = prologue(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, CIO__OP_CONNECT, fd);
    op.u.connect.addr = addr;
    op.u.connect.addrlen = addrlen;
    return (int)cio__op_await(&op, deadline);
}

ssize_t cio_sock_recv(int fd, void *buf, size_t len) {
    return cio_sock_recv_until(fd, buf, len, CIO_NO_TIMEOUT);
}

ssize_t cio_sock_send(int fd, const void *buf, size_t len) {
    return cio_sock_send_until(fd, buf, len, CIO_NO_TIMEOUT);
}

ssize_t cio_sock_sendall(int fd, const void *buf, size_t len) {
    return cio_sock_sendall_until(fd, buf, len, CIO_NO_TIMEOUT);
}

int cio_sock_accept(int fd, struct sockaddr *addr, unsigned int *addrlen) {
    return cio_sock_accept_until(fd, addr, addrlen, CIO_NO_TIMEOUT);
}

int cio_sock_connect(int fd, const struct sockaddr *addr, unsigned int addrlen) {
    return cio_sock_connect_until(fd, addr, addrlen, CIO_NO_TIMEOUT);
}
