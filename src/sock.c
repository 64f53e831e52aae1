/*
 * Socket operations for tasks (asyncio's loop.sock_recv, sock_sendall,
 * sock_accept, sock_connect). Each tries the system call at once and waits
 * for readiness only when the kernel says EAGAIN, then tries again: on
 * epoll this is how an operation "completes" (see docs/design.md).
 */
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Every operation here may suspend, so each refuses to run outside a task
 * even when the kernel could complete it at once. */
#define REQUIRE_TASK()                                                    \
    do {                                                                  \
        if (!cio_current_task()) return -EPERM;                           \
    } while (0)

ssize_t cio_sock_recv(int fd, void *buf, size_t len) {
    REQUIRE_TASK();
    if (!buf && len) return -EINVAL;
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        int rc = cio_wait_readable(fd);
        if (rc < 0) return rc;
    }
}

ssize_t cio_sock_send(int fd, const void *buf, size_t len) {
    REQUIRE_TASK();
    if (!buf && len) return -EINVAL;
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        int rc = cio_wait_writable(fd);
        if (rc < 0) return rc;
    }
}

ssize_t cio_sock_sendall(int fd, const void *buf, size_t len) {
    REQUIRE_TASK();
    const char *p = buf;
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = cio_sock_send(fd, p + sent, len - sent);
        if (n < 0) return n;
        sent += (size_t)n;
    }
    return (ssize_t)sent;
}

int cio_sock_accept(int fd, struct sockaddr *addr, unsigned int *addrlen) {
    REQUIRE_TASK();
    for (;;) {
        int conn = accept4(fd, addr, (socklen_t *)addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn >= 0) return conn;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        int rc = cio_wait_readable(fd);
        if (rc < 0) return rc;
    }
}

int cio_sock_connect(int fd, const struct sockaddr *addr, unsigned int addrlen) {
    REQUIRE_TASK();
    if (!addr) return -EINVAL;
    if (connect(fd, addr, (socklen_t)addrlen) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return -errno;
    int rc = cio_wait_writable(fd);
    if (rc < 0) return rc;
    int err = 0;
    socklen_t errlen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0) return -errno;
    return err ? -err : 0;
}
