/* Fault injection and the allocation / system call wrappers (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static CIO__TLS int64_t fault_countdown; /* 0: disarmed */
static CIO__TLS int64_t fault_calls;

int64_t cio__fault_arm(int64_t nth) {
    int64_t calls = fault_calls;
    fault_calls = 0;
    fault_countdown = nth > 0 ? nth : 0;
    return calls;
}

bool cio__fault_hit(void) {
    fault_calls++;
    if (fault_countdown == 0) return false;
    if (--fault_countdown == 0) return true;
    return false;
}

void *cio__malloc(size_t size) {
    if (cio__fault_hit()) return NULL;
    return malloc(size);
}

void *cio__calloc(size_t count, size_t size) {
    if (cio__fault_hit()) return NULL;
    return calloc(count, size);
}

void *cio__realloc(void *ptr, size_t size) {
    if (cio__fault_hit()) return NULL;
    return realloc(ptr, size);
}

char *cio__strdup(const char *s) {
    size_t len = strlen(s) + 1;
    char *copy = cio__malloc(len);
    if (copy) memcpy(copy, s, len);
    return copy;
}

void cio__free(void *ptr) {
    free(ptr);
}

void *cio__sys_mmap(size_t length, int prot, int flags) {
    if (cio__fault_hit()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return mmap(NULL, length, prot, flags, -1, 0);
}

int cio__sys_mprotect(void *addr, size_t length, int prot) {
    if (cio__fault_hit()) {
        errno = ENOMEM;
        return -1;
    }
    return mprotect(addr, length, prot);
}

int cio__sys_madvise(void *addr, size_t length, int advice) {
    if (cio__fault_hit()) {
        errno = ENOMEM;
        return -1;
    }
    return madvise(addr, length, advice);
}

/* linux/pidfd.h's PIDFD_SELF (the calling thread, hence its process's
 * memory), not yet in every libc's headers. */
#define CIO__PIDFD_SELF (-10000)

long cio__sys_madvise_ranges(const struct iovec *ranges, size_t count, int advice) {
    if (cio__fault_hit()) {
        errno = ENOMEM;
        return -1;
    }
#ifdef SYS_process_madvise
    return syscall(SYS_process_madvise, CIO__PIDFD_SELF, ranges, count, advice, 0);
#else
    (void)ranges;
    (void)count;
    (void)advice;
    errno = ENOSYS;
    return -1;
#endif
}

int cio__sys_epoll_create(void) {
    if (cio__fault_hit()) {
        errno = EMFILE;
        return -1;
    }
    return epoll_create1(EPOLL_CLOEXEC);
}

int cio__sys_eventfd(void) {
    if (cio__fault_hit()) {
        errno = EMFILE;
        return -1;
    }
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* The I/O system calls. FAIL(err) makes an injected failure look like the
 * kernel's own. */
#define FAIL(err)                   \
    do {                            \
        if (cio__fault_hit()) {     \
            errno = (err);          \
            return -1;              \
        }                           \
    } while (0)

int cio__sys_fcntl(int fd, int cmd, int arg) {
    FAIL(EBADF);
    return fcntl(fd, cmd, arg);
}

ssize_t cio__sys_recv(int fd, void *buf, size_t len, int flags) {
    FAIL(ENOMEM);
    return recv(fd, buf, len, flags);
}

ssize_t cio__sys_send(int fd, const void *buf, size_t len, int flags) {
    FAIL(ENOBUFS);
    return send(fd, buf, len, flags);
}

ssize_t cio__sys_recvmsg(int fd, struct msghdr *msg, int flags) {
    FAIL(ENOMEM);
    return recvmsg(fd, msg, flags);
}

ssize_t cio__sys_sendmsg(int fd, const struct msghdr *msg, int flags) {
    FAIL(ENOBUFS);
    return sendmsg(fd, msg, flags);
}

ssize_t cio__sys_read(int fd, void *buf, size_t len) {
    FAIL(EIO);
    return read(fd, buf, len);
}

ssize_t cio__sys_write(int fd, const void *buf, size_t len) {
    FAIL(EIO);
    return write(fd, buf, len);
}

ssize_t cio__sys_writev(int fd, const struct iovec *iov, int iovcnt) {
    FAIL(EIO);
    return writev(fd, iov, iovcnt);
}

int cio__sys_accept4(int fd, struct sockaddr *addr, unsigned int *addrlen, int flags) {
    FAIL(EMFILE);
    return accept4(fd, addr, (socklen_t *)addrlen, flags);
}

int cio__sys_connect(int fd, const struct sockaddr *addr, unsigned int addrlen) {
    FAIL(ENOBUFS);
    return connect(fd, addr, (socklen_t)addrlen);
}

int cio__sys_getsockopt(int fd, int level, int name, void *val, unsigned int *len) {
    FAIL(ENOBUFS);
    return getsockopt(fd, level, name, val, (socklen_t *)len);
}

int cio__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    FAIL(ENOMEM);
    return epoll_ctl(epfd, op, fd, ev);
}

/* epoll_pwait2 where the kernel has it (nanosecond timeouts), else
 * epoll_wait with the timeout rounded up so the loop never wakes early. A
 * NULL timeout waits without limit. The only failure a correct caller can
 * see is EINTR, so that is the one injected. */
int cio__sys_epoll_wait(int epfd, struct epoll_event *events, int max, const struct timespec *timeout) {
    FAIL(EINTR);
    if (!timeout) return epoll_wait(epfd, events, max, -1);
    int n = epoll_pwait2(epfd, events, max, timeout, NULL);
    if (n >= 0 || errno != ENOSYS) return n;
    int64_t ms = ((int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec + 999999) / 1000000;
    return epoll_wait(epfd, events, max, ms > 86400000 ? 86400000 : (int)ms);
}

int cio__sys_close(int fd) {
    if (cio__fault_hit()) {
        close(fd);
        errno = EIO;
        return -1;
    }
    return close(fd);
}

int cio__sys_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg) {
    if (cio__fault_hit()) return EAGAIN;
    return pthread_create(thread, NULL, fn, arg);
}
