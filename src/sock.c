/*
 * Socket operations for tasks (asyncio's loop.sock_recv, sock_sendall,
 * sock_accept, sock_connect). Each tries the system call at once and waits
 * for readiness only when the kernel says EAGAIN, then tries again: on
 * epoll this is how an operation "completes" (see docs/design.md). Every
 * operation has an _until form taking an absolute deadline in loop time.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Every operation here may suspend, so each refuses to run outside a task
 * even when the kernel could complete it at once; and each checks its
 * deadline argument before doing anything. */
#define PROLOGUE(when, deadline)                                          \
    int64_t deadline;                                                     \
    do {                                                                  \
        if (!cio_current_task()) return -EPERM;                           \
        int prologue_rc_ = cio__deadline((when), &deadline);              \
        if (prologue_rc_ < 0) return prologue_rc_;                        \
    } while (0)

static bool would_block(void) {
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

ssize_t cio_sock_recv_until(int fd, void *buf, size_t len, double when) {
    PROLOGUE(when, deadline);
    if (!buf && len) return -EINVAL;
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (!would_block()) return -errno;
        int rc = cio__wait_fd(fd, false, deadline);
        if (rc < 0) return rc;
    }
}

ssize_t cio_sock_send_until(int fd, const void *buf, size_t len, double when) {
    PROLOGUE(when, deadline);
    if (!buf && len) return -EINVAL;
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (!would_block()) return -errno;
        int rc = cio__wait_fd(fd, true, deadline);
        if (rc < 0) return rc;
    }
}

ssize_t cio_sock_sendall_until(int fd, const void *buf, size_t len, double when) {
    PROLOGUE(when, deadline);
    (void)deadline;
    const char *p = buf;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = cio_sock_send_until(fd, p + sent, len - sent, when);
        if (n < 0) return n;
        sent += (size_t)n;
    }
    return (ssize_t)sent;
}

int cio_sock_accept_until(int fd, struct sockaddr *addr, unsigned int *addrlen, double when) {
    PROLOGUE(when, deadline);
    for (;;) {
        int conn = accept4(fd, addr, (socklen_t *)addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn >= 0) return conn;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (!would_block()) return -errno;
        int rc = cio__wait_fd(fd, false, deadline);
        if (rc < 0) return rc;
    }
}

int cio_sock_connect_until(int fd, const struct sockaddr *addr, unsigned int addrlen,
                           double when) {
    PROLOGUE(when, deadline);
    if (!addr) return -EINVAL;
    if (connect(fd, addr, (socklen_t)addrlen) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return -errno;
    int rc = cio__wait_fd(fd, true, deadline);
    if (rc < 0) return rc;
    int err = 0;
    socklen_t errlen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0) return -errno;
    return err ? -err : 0;
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
