/*
 * Context switch: two contexts ping-pong N times; the figure is the time of
 * one switch (a round trip is two), as Boost.Context reports its own.
 *
 *   switch_cio            cio__ctx_switch, the raw register swap (src/arch)
 *   switch_cio_jump       cio__ctx_jump, what a task switch uses (adds the
 *                         sanitizer hooks, empty in this build, and a TLS store)
 *   switch_boost_fcontext Boost.Context jump_fcontext/make_fcontext (the
 *                         mechanism behind Boost's published 9 ns)
 *   switch_boost_fiber    boost::context::fiber::resume
 *   switch_ucontext       glibc swapcontext
 *
 * The repetitions interleave the peers, so a slow patch of the machine hits
 * them all alike. Nothing is subtracted: the loop around each switch costs
 * well under a nanosecond.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>

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

int main(void) {
    long n = bench_iters(10000000, 1000);
    long n_uc = bench_iters(300000, 1000); /* ucontext makes a syscall per switch */
    int reps = bench_reps();
    bench_stat raw = {.name = "switch_cio", .unit = "ns"};
    bench_stat jump = {.name = "switch_cio_jump", .unit = "ns"};
#ifdef CIO_BENCH_HAVE_BOOST
    bench_stat fctx = {.name = "switch_boost_fcontext", .unit = "ns"};
    bench_stat fiber = {.name = "switch_boost_fiber", .unit = "ns"};
#endif
    bench_stat uc = {.name = "switch_ucontext", .unit = "ns"};

    printf("# switch: %ld round trips per repetition (ucontext %ld), %d repetitions\n", n, n_uc,
           reps);
#ifndef CIO_BENCH_HAVE_BOOST
    printf("# skipped switch_boost_fcontext, switch_boost_fiber: Boost.Context was not found "
           "when cio was configured (install libboost-context-dev)\n");
#endif
    /* One untimed pass warms caches and the branch predictors. */
    bench_cio_raw(n / 10 + 1);
#ifdef CIO_BENCH_HAVE_BOOST
    bench_boost_fcontext(n / 10 + 1);
#endif
    for (int r = 0; r < reps; r++) {
        bench_add(&raw, bench_cio_raw(n));
        bench_add(&jump, bench_cio_jump(n));
#ifdef CIO_BENCH_HAVE_BOOST
        bench_add(&fctx, bench_boost_fcontext(n));
        bench_add(&fiber, bench_boost_fiber(n));
#endif
        bench_add(&uc, bench_ucontext(n_uc));
    }
    bench_report(&raw);
    bench_report(&jump);
#ifdef CIO_BENCH_HAVE_BOOST
    bench_report(&fctx);
    bench_report(&fiber);
#endif
    bench_report(&uc);
#ifdef CIO_BENCH_HAVE_BOOST
    bench_ratio("switch_ratio_cio_over_boost", &raw, &fctx);
    bench_ratio("switch_ratio_cio_over_boost_fiber", &raw, &fiber);
#endif
    bench_ratio("switch_ratio_ucontext_over_cio", &uc, &raw);
    return 0;
}
