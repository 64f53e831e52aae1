/*
 * Shared helpers for cio's benchmarks: a clock, repetitions with median and
 * minimum, and the output format.
 *
 * Every figure is one line on stdout:
 *
 *     <name> <value> <unit>
 *
 * e.g. "switch_cio 3.10 ns". The median over the repetitions carries the
 * plain name; the minimum the same name with "_min" appended. Ratios are
 * lines too, with unit "x". Anything else a benchmark has to say (a peer it
 * skipped, the parameters it used) goes on a line starting with '#'.
 *
 * Environment:
 *   CIO_BENCH_QUICK=1   tiny iteration counts and 2 repetitions (smoke tests)
 *   CIO_BENCH_REPS=N    repetitions (default 7)
 *   CIO_BENCH_SCALE=F   multiplies every iteration count (default 1)
 */
#ifndef CIO_BENCH_UTIL_H
#define CIO_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cio.h>

#define BENCH_MAX_REPS 101

static inline int64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_quick(void) {
    const char *q = getenv("CIO_BENCH_QUICK");
    return q && *q && strcmp(q, "0") != 0;
}

static inline int bench_reps(void) {
    if (bench_quick()) return 2;
    const char *r = getenv("CIO_BENCH_REPS");
    int n = r ? atoi(r) : 7;
    if (n < 1) n = 1;
    if (n > BENCH_MAX_REPS) n = BENCH_MAX_REPS;
    return n;
}

/* Loop options for the benchmarks that measure stacks (bench_memory,
 * bench_structured): CIO_BENCH_STACK_GUARD sets the guard below each task
 * stack in bytes (unset or 0: the default), so that what the guard costs
 * can be told apart from the rest by running both ways. */
static inline cio_loop_options bench_loop_options(void) {
    cio_loop_options opts = {0};
    const char *g = getenv("CIO_BENCH_STACK_GUARD");
    if (g) opts.stack_guard_size = (size_t)strtoull(g, NULL, 10);
    return opts;
}

/* The iteration count for a benchmark: full in a real run, quick in a
 * smoke test, scaled by CIO_BENCH_SCALE. */
static inline long bench_iters(long full, long quick) {
    if (bench_quick()) return quick;
    const char *s = getenv("CIO_BENCH_SCALE");
    double scale = s ? atof(s) : 1.0;
    if (!(scale > 0)) scale = 1.0;
    long n = (long)((double)full * scale);
    return n < 1 ? 1 : n;
}

/* Samples of one figure across repetitions. */
typedef struct bench_stat {
    const char *name;
    const char *unit;
    double v[BENCH_MAX_REPS];
    int n;
} bench_stat;

static inline void bench_add(bench_stat *s, double value) {
    if (s->n < BENCH_MAX_REPS) s->v[s->n++] = value;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(const bench_stat *s) {
    if (s->n == 0) return 0;
    double sorted[BENCH_MAX_REPS];
    memcpy(sorted, s->v, (size_t)s->n * sizeof *sorted);
    qsort(sorted, (size_t)s->n, sizeof *sorted, bench_cmp_double);
    return s->n % 2 ? sorted[s->n / 2] : (sorted[s->n / 2 - 1] + sorted[s->n / 2]) / 2;
}

static inline double bench_min(const bench_stat *s) {
    double m = s->n ? s->v[0] : 0;
    for (int i = 1; i < s->n; i++)
        if (s->v[i] < m) m = s->v[i];
    return m;
}

static inline const char *bench_fmt(double v) {
    return v >= 100 ? "%s %.0f %s\n" : v >= 10 ? "%s %.1f %s\n" : "%s %.2f %s\n";
}

static inline void bench_line(const char *name, double value, const char *unit) {
    printf(bench_fmt(value), name, value, unit);
    fflush(stdout);
}

/* Prints "<name> <median> <unit>" and "<name>_min <min> <unit>". */
static inline void bench_report(const bench_stat *s) {
    char buf[256];
    bench_line(s->name, bench_median(s), s->unit);
    snprintf(buf, sizeof buf, "%s_min", s->name);
    bench_line(buf, bench_min(s), s->unit);
}

static inline void bench_ratio(const char *name, const bench_stat *num, const bench_stat *den) {
    double d = bench_median(den);
    if (num->n == 0 || d <= 0) return;
    printf("%s %.3f x\n", name, bench_median(num) / d);
    fflush(stdout);
}

/* Stops the process with a message when a call that must succeed fails. */
#define BENCH_CHECK(expr)                                                              \
    do {                                                                               \
        long bench_rc_ = (long)(expr);                                                 \
        if (bench_rc_ < 0) {                                                           \
            fprintf(stderr, "%s:%d: %s failed: %ld\n", __FILE__, __LINE__, #expr,      \
                    bench_rc_);                                                        \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Keeps the compiler from optimising a value away. */
#define BENCH_USE(x) __asm__ volatile("" : : "r"(x) : "memory")

#endif
