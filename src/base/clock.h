/*
 * The loop's clock and deadlines: CLOCK_MONOTONIC in nanoseconds, and the
 * conversions every suspending call uses to turn seconds into a deadline.
 * A deadline is a loop time in ns; INT64_MAX means "none".
 */
#ifndef CIO_BASE_CLOCK_H
#define CIO_BASE_CLOCK_H

#include <stdint.h>

/* The loop time: CLOCK_MONOTONIC, or the running loop's virtual clock
 * while a loop made with the virtual_clock option runs in this thread
 * (cio__clock_virtual points at it then; core/loop.c sets it). */
int64_t cio__clock_ns(void);
extern _Thread_local __attribute__((tls_model("initial-exec"))) int64_t *cio__clock_virtual;
/* CLOCK_MONOTONIC itself, whatever the loop's clock. */
int64_t cio__clock_real_ns(void);
/* CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID), in ns:
 * a system call, so only debug mode reads it per task step. */
int64_t cio__thread_cpu_ns(void);
/* Seconds to ns, saturating far outside the int64_t range. */
int64_t cio__seconds_to_ns(double seconds);
/* The loop time (ns) delay seconds from now, for a finite delay that is not
 * NaN: at least 1 ns ahead for delay > 0, in the past for delay < 0 (as
 * asyncio's time() + delay), saturated just inside the int64_t range
 * (INT64_MAX is "no deadline"). */
int64_t cio__deadline_after(double delay);
/* Converts an absolute loop time in seconds to a deadline in ns: -EINVAL
 * for NaN, INT64_MAX for +infinity. */
int cio__deadline(double when, int64_t *deadline);

#endif
