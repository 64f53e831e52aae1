/*
 * Socket operations for tasks (asyncio's loop.sock_recv, sock_sendall,
 * sock_accept, sock_connect). Each builds an operation record on the
 * task's stack and awaits it (cio__op_await): the backend tries the call,
 * waits for readiness or the kernel's completion as it must, and hands back
 * the result. Every operation has an _until form taking an absolute
 * deadline in loop time.
 */
#include "net.h"

/* recv, send and sendall: one buffer, one operation. A sendall is a send
 * with CIO__OP_ALL, one operation for the whole buffer, so that it keeps
 * its place in the descriptor's queue: two tasks' sendall calls never
 * interleave. */
static ssize_t transfer(uint8_t kind, uint8_t flags, int fd, const void *buf, size_t len,
                        double when) {
    if (!buf && len) return -EINVAL;
    int64_t deadline;
    int rc = cio__io_call_check(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, kind, fd);
    op.flags = flags;
    /* A send only reads the buffer; the record has one field for both. */
    op.u.rw.buf = (void *)buf;
    op.u.rw.len = len;
    op.u.rw.flags = 0;
    return cio__op_await(&op, deadline);
}

ssize_t cio_sock_recv_until(int fd, void *buf, size_t len, double when) {
    return transfer(CIO__OP_RECV, 0, fd, buf, len, when);
}

ssize_t cio_sock_send_until(int fd, const void *buf, size_t len, double when) {
    return transfer(CIO__OP_SEND, 0, fd, buf, len, when);
}

ssize_t cio_sock_sendall_until(int fd, const void *buf, size_t len, double when) {
    return transfer(CIO__OP_SEND, CIO__OP_ALL, fd, buf, len, when);
}

int cio_sock_accept_until(int fd, struct sockaddr *addr, unsigned int *addrlen, double when) {
    if (addr && !addrlen) return -EINVAL;
    int64_t deadline;
    int rc = cio__io_call_check(fd, when, &deadline);
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
    int rc = cio__io_call_check(fd, when, &deadline);
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
