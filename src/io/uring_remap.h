/* Tells ThreadSanitizer that a ring's pages change hands through the kernel. */
#ifndef CIO_IO_URING_REMAP_H
#define CIO_IO_URING_REMAP_H

/* ThreadSanitizer learns that memory changed hands when it sees munmap, but
 * liburing maps and unmaps the rings with raw system calls it never sees.
 * When a closed loop's ring pages are mapped again for a new loop on another
 * thread, it would report the new owner's writes as racing with the old
 * owner's.  The kernel orders the munmap before the mmap that reuses the
 * address; a release at teardown and an acquire at setup tell it so. */
#if defined(__SANITIZE_THREAD__)
#define RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RING_TSAN 1
#endif
#endif
#ifdef RING_TSAN
#include <sanitizer/tsan_interface.h>
/* One address stands for every ring (defined in uring_probe.c): any teardown
 * orders before any later setup. */
extern char cio__uring_remap_order;
#define RING_MAPPED() __tsan_acquire(&cio__uring_remap_order)
#define RING_UNMAPPING() __tsan_release(&cio__uring_remap_order)
#else
#define RING_MAPPED() ((void)0)
#define RING_UNMAPPING() ((void)0)
#endif

#endif
