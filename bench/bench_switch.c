/*
 * Context switch: two contexts ping-pong N times; the figure is the time of
 * one switch (a round trip is two), as Boost.Context reports its own.
 *
 *   switch_cio            cio__ctx_switch, the raw register swap (src/core/arch)
 *   switch_cio_fpu_ctl    the same, plus what Boost's switch also does and
 *                         cio's does not: save and restore the floating-point
 *                         control state (x86-64: MXCSR and the x87 control
 *                         word; aarch64: FPCR) around every switch. This
 *                         variant exists only here, so that cio and Boost can
 *                         be compared doing equal work; cio itself shares the
 *                         control state among the tasks of a thread
 *                         (src/core/context.h)
 *   switch_cio_jump       cio__ctx_jump, what a task switch uses (adds the
 *                         sanitizer hooks, empty in this build, and a TLS store)
 *   switch_boost_fcontext Boost.Context jump_fcontext/make_fcontext (the
 *                         mechanism behind Boost's published 9 ns)
 *   switch_boost_fiber    boost::context::fiber::resume
 *   switch_ucontext       glibc swapcontext
 *   switch_cio_loop       a task switch through the loop: two tasks of one
 *                         loop yield to each other (cio_sleep(0)); the
 *                         figure is per yield (task -> loop -> task)
 *   switch_cio_watchdog   the same with the stall watchdog on (100 ms), run
 *                         interleaved with switch_cio_loop; the progress
 *                         store it reads is made watchdog on or off, so
 *                         the two should agree. switch_watchdog_overhead is
 *                         the median of the per-repetition differences
 *                         (watchdog on minus off)
 *
 * The repetitions interleave the peers, so a slow patch of the machine hits
 * them all alike. Nothing is subtracted: the loop around each switch costs
 * well under a nanosecond.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <cio.h>

#include "bench_util.h"
#include "core/context.h"

#ifdef CIO_BENCH_HAVE_BOOST
/* bench_switch_boost.cpp: ns per switch over n round trips. */
double bench_boost_fcontext(long n);
double bench_boost_fiber(long n);
#endif

#define STACK_SIZE ((size_t)64 * 1024)

static void *map_stack(void) {
    void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* ---- cio raw switch ------------------------------------------------------ */

static void *main_sp, *coro_sp;

static void raw_entry(void *arg) {
    (void)arg;
    for (;;) cio__ctx_switch(&coro_sp, main_sp);
}

static double bench_cio_raw(long n) {
    void *stack = map_stack();
    cio__ctx ctx;
    cio__ctx_make(&ctx, stack, STACK_SIZE, raw_entry, NULL);
    coro_sp = ctx.sp;
    cio__ctx_switch(&main_sp, coro_sp); /* warm up: enter the loop once */
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) cio__ctx_switch(&main_sp, coro_sp);
    int64_t t1 = bench_now_ns();
    munmap(stack, STACK_SIZE); /* the coroutine stays suspended for good */
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- cio raw switch plus the floating-point control state -------------------
 *
 * Boost.Context's jump_fcontext stores MXCSR and the x87 control word in the
 * frame it leaves and loads them from the frame it enters. Wrapping
 * cio__ctx_switch with the same two stores before and two loads after gives
 * cio's switch that same work: each side of the ping-pong saves its own
 * control state and reloads it when it is resumed. */

#if defined(__x86_64__)
#define BENCH_HAVE_FPU_CTL 1
static inline void switch_fpu_ctl(void **save_sp, void *load_sp) {
    uint32_t mxcsr;
    uint16_t x87cw;
    __asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(x87cw));
    cio__ctx_switch(save_sp, load_sp);
    __asm__ volatile("ldmxcsr %0\n\tfldcw %1" : : "m"(mxcsr), "m"(x87cw));
}
#elif defined(__aarch64__)
#define BENCH_HAVE_FPU_CTL 1
static inline void switch_fpu_ctl(void **save_sp, void *load_sp) {
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    cio__ctx_switch(save_sp, load_sp);
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}
#endif

#ifdef BENCH_HAVE_FPU_CTL
static void *fpu_main_sp, *fpu_coro_sp;

static void fpu_entry(void *arg) {
    (void)arg;
    for (;;) switch_fpu_ctl(&fpu_coro_sp, fpu_main_sp);
}

static double bench_cio_fpu_ctl(long n) {
    void *stack = map_stack();
    cio__ctx ctx;
    cio__ctx_make(&ctx, stack, STACK_SIZE, fpu_entry, NULL);
    fpu_coro_sp = ctx.sp;
    switch_fpu_ctl(&fpu_main_sp, fpu_coro_sp); /* warm up: enter the loop once */
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) switch_fpu_ctl(&fpu_main_sp, fpu_coro_sp);
    int64_t t1 = bench_now_ns();
    munmap(stack, STACK_SIZE); /* the coroutine stays suspended for good */
    return (double)(t1 - t0) / (2.0 * (double)n);
}
#endif

/* ---- cio__ctx_jump --------------------------------------------------------- */

static cio__ctx jump_main, jump_coro;

static void jump_entry(void *arg) {
    (void)arg;
    cio__ctx_arrived(&jump_coro);
    for (;;) cio__ctx_jump(&jump_coro, &jump_main, 0);
}

static double bench_cio_jump(long n) {
    void *stack = map_stack();
    cio__ctx_make(&jump_coro, stack, STACK_SIZE, jump_entry, NULL);
    cio__ctx_jump(&jump_main, &jump_coro, 0);
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) cio__ctx_jump(&jump_main, &jump_coro, 0);
    int64_t t1 = bench_now_ns();
    cio__ctx_destroy(&jump_coro);
    munmap(stack, STACK_SIZE);
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- glibc ucontext ------------------------------------------------------- */

static ucontext_t uc_main, uc_coro;

static void uc_entry(void) {
    for (;;) swapcontext(&uc_coro, &uc_main);
}

static double bench_ucontext(long n) {
    void *stack = map_stack();
    getcontext(&uc_coro);
    uc_coro.uc_stack.ss_sp = stack;
    uc_coro.uc_stack.ss_size = STACK_SIZE;
    uc_coro.uc_link = NULL;
    makecontext(&uc_coro, uc_entry, 0);
    swapcontext(&uc_main, &uc_coro);
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) swapcontext(&uc_main, &uc_coro);
    int64_t t1 = bench_now_ns();
    munmap(stack, STACK_SIZE);
    return (double)(t1 - t0) / (2.0 * (double)n);
}

/* ---- a task switch through the loop, watchdog off and on ------------------ */

static long loop_yields_left;

static void *loop_yielder(void *arg) {
    (void)arg;
    while (loop_yields_left > 0) {
        loop_yields_left--;
        if (cio_sleep(0) < 0) break;
    }
    return NULL;
}

static double bench_cio_loop(long n, unsigned watchdog_ms) {
    cio_loop *loop;
    if (cio_loop_new(&loop) < 0) exit(1);
    if (watchdog_ms && cio_loop_set_watchdog(loop, watchdog_ms, 0) < 0) exit(1);
    cio_task *a, *b;
    loop_yields_left = n;
    int64_t t0 = bench_now_ns();
    if (cio_spawn(loop, loop_yielder, NULL, &a) < 0 || cio_spawn(loop, loop_yielder, NULL, &b) < 0)
        exit(1);
    if (cio_run_until_complete(loop, b, NULL) < 0 || cio_run_until_complete(loop, a, NULL) < 0)
        exit(1);
    int64_t t1 = bench_now_ns();
    cio_future_unref(a);
    cio_future_unref(b);
    cio_loop_free(loop); /* the last watched loop takes the watchdog thread */
    return (double)(t1 - t0) / (double)n;
}

int main(void) {
    long n = bench_iters(10000000, 1000);
    long n_uc = bench_iters(300000, 1000); /* ucontext makes a syscall per switch */
    int reps = bench_reps();
    bench_stat raw = {.name = "switch_cio", .unit = "ns"};
    bench_stat jump = {.name = "switch_cio_jump", .unit = "ns"};
#ifdef BENCH_HAVE_FPU_CTL
    bench_stat fpu = {.name = "switch_cio_fpu_ctl", .unit = "ns"};
#endif
#ifdef CIO_BENCH_HAVE_BOOST
    bench_stat fctx = {.name = "switch_boost_fcontext", .unit = "ns"};
    bench_stat fiber = {.name = "switch_boost_fiber", .unit = "ns"};
#endif
    bench_stat uc = {.name = "switch_ucontext", .unit = "ns"};
    bench_stat on_loop = {.name = "switch_cio_loop", .unit = "ns"};
    bench_stat on_wd = {.name = "switch_cio_watchdog", .unit = "ns"};
    bench_stat wd_diff = {.name = "switch_watchdog_overhead", .unit = "ns"};
    long n_loop = bench_iters(2000000, 1000);

    printf("# switch: %ld round trips per repetition (ucontext %ld), %d repetitions\n", n, n_uc,
           reps);
#ifndef BENCH_HAVE_FPU_CTL
    printf("# skipped switch_cio_fpu_ctl: no floating-point control save for this CPU\n");
#endif
#ifndef CIO_BENCH_HAVE_BOOST
    printf("# skipped switch_boost_fcontext, switch_boost_fiber: Boost.Context was not found "
           "when cio was configured (install libboost-context-dev)\n");
#endif
    /* One untimed pass warms caches and the branch predictors. */
    bench_cio_raw(n / 10 + 1);
#ifdef BENCH_HAVE_FPU_CTL
    bench_cio_fpu_ctl(n / 10 + 1);
#endif
#ifdef CIO_BENCH_HAVE_BOOST
    bench_boost_fcontext(n / 10 + 1);
#endif
    for (int r = 0; r < reps; r++) {
        bench_add(&raw, bench_cio_raw(n));
        bench_add(&jump, bench_cio_jump(n));
#ifdef BENCH_HAVE_FPU_CTL
        bench_add(&fpu, bench_cio_fpu_ctl(n));
#endif
#ifdef CIO_BENCH_HAVE_BOOST
        bench_add(&fctx, bench_boost_fcontext(n));
        bench_add(&fiber, bench_boost_fiber(n));
#endif
        bench_add(&uc, bench_ucontext(n_uc));
        /* Off and on back to back, the order alternating by repetition. */
        double off, on;
        if (r % 2) {
            on = bench_cio_loop(n_loop, 100);
            off = bench_cio_loop(n_loop, 0);
        } else {
            off = bench_cio_loop(n_loop, 0);
            on = bench_cio_loop(n_loop, 100);
        }
        bench_add(&on_loop, off);
        bench_add(&on_wd, on);
        bench_add(&wd_diff, on - off);
    }
    bench_report(&raw);
    bench_report(&jump);
#ifdef BENCH_HAVE_FPU_CTL
    bench_report(&fpu);
#endif
#ifdef CIO_BENCH_HAVE_BOOST
    bench_report(&fctx);
    bench_report(&fiber);
#endif
    bench_report(&uc);
    bench_report(&on_loop);
    bench_report(&on_wd);
    bench_line(wd_diff.name, bench_median(&wd_diff), wd_diff.unit);
#ifdef CIO_BENCH_HAVE_BOOST
    bench_ratio("switch_ratio_cio_over_boost", &raw, &fctx);
    bench_ratio("switch_ratio_cio_over_boost_fiber", &raw, &fiber);
#ifdef BENCH_HAVE_FPU_CTL
    bench_ratio("switch_ratio_cio_fpu_ctl_over_boost", &fpu, &fctx);
#endif
#endif
    bench_ratio("switch_ratio_ucontext_over_cio", &uc, &raw);
    return 0;
}
