/*
 * Socket operations for tasks (asyncio's loop.sock_recv, sock_sendall,
 * sock_accept, sock_connect). Each builds an operation record on the
 * task's stack and awaits it (cio__op_await): the backend tries the call,
 * waits for readiness or the kernel's completion as it must, and hands back
 * the result. Every operation has an _until form taking an absolute
 * deadline in loop time. recvfrom, sendto, recvmsg and sendmsg go through
 * the backend's message operations (recvfrom and sendto with a message on
 * the task's stack). cio_sock_adopt hands a socket over to the loop, whose
 * backend may then keep it registered for life (src/io/backend_epoll.c).
 */
#include <limits.h>
#include <sys/uio.h>

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

static void fresh_fd(cio_loop *loop, void *arg) {
    cio__io_fresh(&loop->io, *(int *)arg);
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
    int conn = (int)cio__op_await(&op, deadline);
    /* The number is new: whatever a loop held for an older socket with it,
     * closed behind its back, is stale (cio_sock_adopt). */
    if (conn >= 0) cio__loop_each_local(fresh_fd, &conn);
    return conn;
}

int cio_sock_adopt(cio_loop *loop, int fd) {
    if (!loop) return -EINVAL;
    if (fd < 0) return -EBADF;
    int rc = cio__loop_check(loop);
    if (rc < 0) return rc;
    return cio__io_hold(&loop->io, fd);
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

/* ---- datagrams and messages ---------------------------------------------- */

/* The flags a caller may pass to recvmsg and sendmsg. MSG_DONTWAIT (and,
 * for sends, MSG_NOSIGNAL) are accepted and change nothing: the backend
 * always adds them, so a full socket never stalls the loop and a peer that
 * went away gives -EPIPE instead of killing the process with SIGPIPE. Any
 * other flag is -EINVAL (convention 2), as its meaning for a non-blocking
 * operation served by the loop is not defined here. */
#define RECV_FLAGS (MSG_PEEK | MSG_TRUNC | MSG_WAITALL | MSG_OOB | MSG_CMSG_CLOEXEC | \
                    MSG_ERRQUEUE | MSG_DONTWAIT)
#define SEND_FLAGS (MSG_CONFIRM | MSG_DONTROUTE | MSG_EOR | MSG_MORE | MSG_OOB | MSG_NOSIGNAL | \
                    MSG_DONTWAIT)

/* A message's own fields are checked as far as they could make the kernel
 * read through a NULL pointer with a non-zero length; the kernel checks the
 * rest (it answers -EFAULT, never a crash, for the other bad pointers). */
static bool bad_msg(const struct msghdr *msg) {
    return !msg || (!msg->msg_iov && msg->msg_iovlen) || (!msg->msg_name && msg->msg_namelen) ||
           (!msg->msg_control && msg->msg_controllen);
}

/* recvmsg and sendmsg: one operation of the backend's kind, the message
 * being the caller's (for recvfrom and sendto, one on this task's stack).
 * The backend adds MSG_DONTWAIT, and MSG_NOSIGNAL to a send. */
static ssize_t message(uint8_t kind, int fd, struct msghdr *msg, int flags, double when) {
    int64_t deadline;
    int rc = cio__io_call_check(fd, when, &deadline);
    if (rc < 0) return rc;
    cio__op op;
    cio__op_init(&op, kind, fd);
    op.u.msg.msg = msg;
    op.u.msg.flags = flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL);
    return cio__op_await(&op, deadline);
}

ssize_t cio_sock_recvmsg_until(int fd, struct msghdr *msg, int flags, double when) {
    if (bad_msg(msg) || (flags & ~RECV_FLAGS)) return -EINVAL;
    return message(CIO__OP_RECVMSG, fd, msg, flags, when);
}

ssize_t cio_sock_sendmsg_until(int fd, const struct msghdr *msg, int flags, double when) {
    if (bad_msg(msg) || (flags & ~SEND_FLAGS)) return -EINVAL;
    /* A send only reads the message; the record has one field for both. */
    return message(CIO__OP_SENDMSG, fd, (struct msghdr *)msg, flags, when);
}

/*
 * recvfrom is a recvmsg of one buffer. The sender's address is written to
 * addr (at most *addrlen bytes) and its real length to *addrlen, as
 * recvfrom(2) does; both are left alone when the call fails. A datagram
 * longer than len is cut to len bytes and the rest is lost, also as
 * recvfrom(2) does: the count returned is then len.
 */
ssize_t cio_sock_recvfrom_until(int fd, void *buf, size_t len, struct sockaddr *addr,
                                unsigned int *addrlen, double when) {
    if ((!buf && len) || (addr && !addrlen) || (addrlen && *addrlen > INT_MAX)) return -EINVAL;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (addr) {
        msg.msg_name = addr;
        msg.msg_namelen = *addrlen;
    }
    ssize_t n = message(CIO__OP_RECVMSG, fd, &msg, 0, when);
    if (n >= 0 && addr) *addrlen = msg.msg_namelen;
    return n;
}

/* sendto is a sendmsg of one buffer; a NULL addr (with addrlen 0) sends to
 * the socket's peer, as send(2). */
ssize_t cio_sock_sendto_until(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                              unsigned int addrlen, double when) {
    if ((!buf && len) || (!addr && addrlen) || (addr && (addrlen == 0 || addrlen > INT_MAX)))
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_name = (void *)addr,
                         .msg_namelen = addrlen};
    return message(CIO__OP_SENDMSG, fd, &msg, 0, when);
}

ssize_t cio_sock_recvfrom(int fd, void *buf, size_t len, struct sockaddr *addr,
                          unsigned int *addrlen) {
    return cio_sock_recvfrom_until(fd, buf, len, addr, addrlen, CIO_NO_TIMEOUT);
}

ssize_t cio_sock_sendto(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                        unsigned int addrlen) {
    return cio_sock_sendto_until(fd, buf, len, addr, addrlen, CIO_NO_TIMEOUT);
}

ssize_t cio_sock_recvmsg(int fd, struct msghdr *msg, int flags) {
    return cio_sock_recvmsg_until(fd, msg, flags, CIO_NO_TIMEOUT);
}

ssize_t cio_sock_sendmsg(int fd, const struct msghdr *msg, int flags) {
    return cio_sock_sendmsg_until(fd, msg, flags, CIO_NO_TIMEOUT);
}
