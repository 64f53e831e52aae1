/* The monotonic clock and the seconds-to-deadline conversions (clock.h). */
#include "clock.h"
#include "fault.h"

#include <errno.h>
#include <math.h>
#include <time.h>

CIO__TLS int64_t *cio__clock_virtual;

int64_t cio__clock_ns(void) {
    if (cio__clock_virtual) return *cio__clock_virtual;
    return cio__clock_real_ns();
}

int64_t cio__clock_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cio__thread_cpu_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Rounds half away from zero, as llround, without its library call (a
 * third of a timer's start): the cast truncates, and for |ns| < 2^52 both
 * the cast back and the difference are exact, so the fraction decides the
 * rounding exactly; from 2^52 on every double is a whole number and the
 * fraction is 0. The clamps keep |ns| below 2^63, where the cast is
 * defined. */
int64_t cio__seconds_to_ns(double seconds) {
    if (seconds >= 9.2e9) return INT64_MAX;
    /* NaN, which every caller refuses first, reads as the lower bound
     * rather than as a cast with undefined behaviour. */
    if (seconds <= -9.2e9 || isnan(seconds)) return INT64_MIN + 1;
    double ns = seconds * 1e9;
    int64_t whole = (int64_t)ns;
    double fraction = ns - (double)whole;
    if (fraction >= 0.5) return whole + 1;
    if (fraction <= -0.5) return whole - 1;
    return whole;
}

int64_t cio__deadline_after(double delay) {
    int64_t now = cio__clock_ns();
    int64_t d = cio__seconds_to_ns(delay);
    /* A delay too short for a nanosecond still lies ahead: rounded to
     * zero, a loop of "sleep for what is left" on the virtual clock (whose
     * time moves only to a deadline) would never see the time move. */
    if (delay > 0 && d < 1) d = 1;
    /* A delay already passed keeps its value, as asyncio's time() + delay:
     * call_later(-2) comes due before call_later(-1), and a timeout scope
     * entered with -11 says it ended 11 s ago. */
    /* A delay past the range stays at its bound, as call_at's time does:
     * call_later(-inf) and call_at(-inf) are due at the same time, FIFO. */
    if (d == INT64_MIN + 1) return INT64_MIN + 1;
    if (d > 0) return d > INT64_MAX - 1 - now ? INT64_MAX - 1 : now + d;
    return now < INT64_MIN + 1 - d ? INT64_MIN + 1 : now + d;
}

int cio__deadline(double when, int64_t *deadline) {
    if (isnan(when)) return -EINVAL;
    *deadline = isinf(when) && when > 0 ? INT64_MAX : cio__seconds_to_ns(when);
    return 0;
}
