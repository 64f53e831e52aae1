/*
 * Timers started and cancelled, cio against libuv, in one process:
 *
 *   timer_<lib>_start        ns per timer to start 1M timers with random
 *                            deadlines in [1 s, 11 s) (all live at once)
 *   timer_<lib>_cancel       ns per timer to cancel those 1M again, in the
 *                            order they were started
 *   timer_<lib>_start_cancel the sum of the two: ns per start+cancel at 1M
 *                            live timers
 *   timer_<lib>_start_cancel_each
 *                            start one timer and cancel it at once, 1M times
 *                            (the "timeout that is almost always cancelled"
 *                            pattern, with no other timer live)
 *
 * cio: cio_call_later + cio_handle_cancel. libuv: uv_timer_start +
 * uv_timer_stop on uv_timer_t handles initialised (uv_timer_init) before the
 * clock starts, since cio has no such step. Both libraries get the same
 * deadlines, and each repetition reuses its loop, so pools and heap arrays
 * are warm after the first, untimed, pass.
 *
 * One difference stays in the figures: cio_call_later reads the clock on
 * every call (as asyncio's call_later does), while uv_timer_start uses the
 * time libuv cached at the start of the loop iteration.
 */
#include <stdint.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cio.h"

#ifdef CIO_BENCH_HAVE_LIBUV
#include <uv.h>
#endif

typedef struct timings {
    double start, cancel, each; /* ns per timer */
} timings;

static uint64_t *delays_ms; /* the same random deadlines for both libraries */

static void make_delays(long n) {
    delays_ms = malloc((size_t)n * sizeof *delays_ms);
    if (!delays_ms) exit(1);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (long i = 0; i < n; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        delays_ms[i] = 1000 + x % 10000;
    }
}

/* ---- cio ------------------------------------------------------------------- */

static void never_called(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    fprintf(stderr, "bench_timers: a cancelled cio timer fired\n");
    exit(1);
}

static cio_loop *cio_lp;
static cio_handle *handles;

static timings cio_round(long n) {
    timings t;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        BENCH_CHECK(cio_call_later(cio_lp, (double)delays_ms[i] / 1000.0, never_called, NULL,
                                   &handles[i]));
    int64_t t1 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (cio_handle_cancel(&handles[i]) != 1) {
            fprintf(stderr, "bench_timers: cio_handle_cancel did not cancel\n");
            exit(1);
        }
    }
    int64_t t2 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        cio_handle h;
        BENCH_CHECK(cio_call_later(cio_lp, (double)delays_ms[i] / 1000.0, never_called, NULL, &h));
        cio_handle_cancel(&h);
    }
    int64_t t3 = bench_now_ns();
    t.start = (double)(t1 - t0) / (double)n;
    t.cancel = (double)(t2 - t1) / (double)n;
    t.each = (double)(t3 - t2) / (double)n;
    return t;
}

/* ---- libuv ------------------------------------------------------------------ */

#ifdef CIO_BENCH_HAVE_LIBUV
static uv_loop_t uv_lp;
static uv_timer_t *uv_timers;

static void uv_never_called(uv_timer_t *t) {
    (void)t;
    fprintf(stderr, "bench_timers: a stopped libuv timer fired\n");
    exit(1);
}

static timings uv_round(long n) {
    timings t;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) uv_timer_start(&uv_timers[i], uv_never_called, delays_ms[i], 0);
    int64_t t1 = bench_now_ns();
    for (long i = 0; i < n; i++) uv_timer_stop(&uv_timers[i]);
    int64_t t2 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        uv_timer_start(&uv_timers[0], uv_never_called, delays_ms[i], 0);
        uv_timer_stop(&uv_timers[0]);
    }
    int64_t t3 = bench_now_ns();
    t.start = (double)(t1 - t0) / (double)n;
    t.cancel = (double)(t2 - t1) / (double)n;
    t.each = (double)(t3 - t2) / (double)n;
    return t;
}
#endif

typedef struct lib_stats {
    bench_stat start, cancel, sum, each;
} lib_stats;

static void add(lib_stats *s, timings t) {
    bench_add(&s->start, t.start);
    bench_add(&s->cancel, t.cancel);
    bench_add(&s->sum, t.start + t.cancel);
    bench_add(&s->each, t.each);
}

static void report(const lib_stats *s) {
    bench_report(&s->start);
    bench_report(&s->cancel);
    bench_report(&s->sum);
    bench_report(&s->each);
}

int main(void) {
    int reps = bench_reps();
    long n = bench_iters(1000000, 1000);
    make_delays(n);
    printf("# timers: %ld timers per repetition, %d repetitions\n", n, reps);

    BENCH_CHECK(cio_loop_new(&cio_lp));
    handles = calloc((size_t)n, sizeof *handles);
    if (!handles) exit(1);
    lib_stats cs = {
        {.name = "timer_cio_start", .unit = "ns"},
        {.name = "timer_cio_cancel", .unit = "ns"},
        {.name = "timer_cio_start_cancel", .unit = "ns"},
        {.name = "timer_cio_start_cancel_each", .unit = "ns"},
    };
#ifdef CIO_BENCH_HAVE_LIBUV
    if (uv_loop_init(&uv_lp) != 0) exit(1);
    uv_timers = calloc((size_t)n, sizeof *uv_timers);
    if (!uv_timers) exit(1);
    for (long i = 0; i < n; i++) uv_timer_init(&uv_lp, &uv_timers[i]);
    lib_stats us = {
        {.name = "timer_libuv_start", .unit = "ns"},
        {.name = "timer_libuv_cancel", .unit = "ns"},
        {.name = "timer_libuv_start_cancel", .unit = "ns"},
        {.name = "timer_libuv_start_cancel_each", .unit = "ns"},
    };
    printf("# libuv %s\n", uv_version_string());
#else
    printf("# skipped timer_libuv_*: libuv was not found when cio was configured "
           "(install libuv1-dev)\n");
#endif

    /* One untimed pass each grows the pools and heap arrays. */
    cio_round(n);
#ifdef CIO_BENCH_HAVE_LIBUV
    uv_round(n);
#endif
    for (int r = 0; r < reps; r++) {
        add(&cs, cio_round(n));
#ifdef CIO_BENCH_HAVE_LIBUV
        add(&us, uv_round(n));
#endif
    }
    report(&cs);
#ifdef CIO_BENCH_HAVE_LIBUV
    report(&us);
    bench_ratio("timer_ratio_cio_over_libuv", &cs.sum, &us.sum);
    bench_ratio("timer_ratio_cio_over_libuv_each", &cs.each, &us.each);
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&uv_timers[i], NULL);
    uv_run(&uv_lp, UV_RUN_DEFAULT);
    uv_loop_close(&uv_lp);
    free(uv_timers);
#endif
    cio_loop_free(cio_lp);
    free(handles);
    free(delays_ms);
    return 0;
}
