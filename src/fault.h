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
#include <stddef.h>
#include <stdint.h>

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
int cio__sys_epoll_create(void);
int cio__sys_eventfd(void);

#endif
