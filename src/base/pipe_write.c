/*
 * Writing to a pipe without SIGPIPE.
 *
 * Writing to a pipe whose reader has gone raises SIGPIPE, whose default
 * action ends the process; send(2) has MSG_NOSIGNAL for sockets, write(2)
 * has nothing alike. So the write runs with SIGPIPE blocked in the calling
 * thread (the signal a write raises is sent to that thread), and a SIGPIPE
 * it raised is taken off the thread's pending set before the mask is
 * restored: the write reports EPIPE, and the program's own SIGPIPE
 * handling, if any, never sees cio's. A SIGPIPE already pending before the
 * write is someone else's and stays pending.
 */
#include <errno.h>
#include <signal.h>
#include <sys/uio.h>
#include <time.h>

#include "fault.h"

ssize_t cio__pipe_writev(int fd, const struct iovec *iov, int iovcnt) {
    sigset_t pipe_only, old, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    /* A SIGPIPE already pending is someone else's: it stays pending. */
    int was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    ssize_t n = iovcnt == 1 ? cio__sys_write(fd, iov[0].iov_base, iov[0].iov_len)
                            : cio__sys_writev(fd, iov, iovcnt);
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}
