/* Fault injection and the allocation / system call wrappers (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

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
