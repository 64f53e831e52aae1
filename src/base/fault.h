/*
 * Fault injection. Every allocation and every system call that can fail
 * goes through these wrappers, so a test can make the Nth one fail and check
 * that the failure comes back from the public call as an error, with
 * nothing leaked and nothing crashed. The countdown is thread-local: a test
 * arming it affects only its own thread.
 */
#ifndef CIO_FAULT_H
#define CIO_FAULT_H

#include <stdbool.h>

/* Thread-locals use the initial-exec model: the library is position
 * independent, and the default model would call __tls_get_addr on every
 * access, several times per task switch. */
#define CIO__TLS _Thread_local __attribute__((tls_model("initial-exec")))
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Makes the nth fallible operation from now on (1 = the next one) fail;
 * 0 disarms. Returns how many operations ran since the last call. */
int64_t cio__fault_arm(int64_t nth);
/* True when the operation about to run must fail. */
bool cio__fault_hit(void);

void *cio__malloc(size_t size);
void *cio__calloc(size_t count, size_t size);
void *cio__realloc(void *ptr, size_t size);
char *cio__strdup(const char *s);
void cio__free(void *ptr);

/* System calls: each returns what the call returns, or -1 with errno set
 * (ENOMEM for mmap, EMFILE for descriptors) when a fault is injected. */
void *cio__sys_mmap(size_t length, int prot, int flags);
int cio__sys_mprotect(void *addr, size_t length, int prot);
int cio__sys_madvise(void *addr, size_t length, int advice);
/* process_madvise(2) on the calling process (PIDFD_SELF, Linux 6.14+):
 * the same advice for many ranges in one call. Returns the bytes advised,
 * or -1 with errno set (EBADF or EINVAL where the kernel lacks it). */
struct iovec;
long cio__sys_madvise_ranges(const struct iovec *ranges, size_t count, int advice);
int cio__sys_epoll_create(void);
int cio__sys_eventfd(void);

/* The I/O system calls. Each injected failure uses an errno the real call
 * can return, so the code above handles it as it would a real one. close
 * really closes before it reports a failure, as Linux does. */
struct epoll_event;
struct msghdr;
struct sockaddr;
struct timespec;
int cio__sys_fcntl(int fd, int cmd, int arg);
ssize_t cio__sys_recv(int fd, void *buf, size_t len, int flags);
ssize_t cio__sys_send(int fd, const void *buf, size_t len, int flags);
ssize_t cio__sys_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t cio__sys_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t cio__sys_read(int fd, void *buf, size_t len);
ssize_t cio__sys_write(int fd, const void *buf, size_t len);
struct iovec;
ssize_t cio__sys_writev(int fd, const struct iovec *iov, int iovcnt);
/* Writes iov to a pipe without the process getting SIGPIPE (the reader's
 * going away is -1 with EPIPE): the count, or -1 with errno
 * (pipe_write.c). */
ssize_t cio__pipe_writev(int fd, const struct iovec *iov, int iovcnt);
int cio__sys_accept4(int fd, struct sockaddr *addr, unsigned int *addrlen, int flags);
int cio__sys_connect(int fd, const struct sockaddr *addr, unsigned int addrlen);
int cio__sys_getsockopt(int fd, int level, int name, void *val, unsigned int *len);
int cio__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int cio__sys_epoll_wait(int epfd, struct epoll_event *events, int max, const struct timespec *timeout);
int cio__sys_close(int fd);

/* Starting a thread (the thread pool): returns 0 or the error number, as
 * pthread_create does (EAGAIN when a fault is injected). */
int cio__sys_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
