/*
 * Loop and task primitives, through the public API only:
 *
 *   spawn_await            one task spawns a child that returns at once and
 *                          awaits it; ns per spawn+await (two loop
 *                          iterations, four switches)
 *   spawn_await_eager      the same with eager_start: the child runs to its
 *                          end inside cio_spawn_with, the await finds it done
 *   call_soon_chain        each callback schedules the next; ns per callback
 *                          (one loop iteration each)
 *   call_soon_batch        a task schedules 1024 callbacks, yields, and they
 *                          run in one iteration; ns per callback
 *   future_resolve_await   inside a task: cio_future_new, set_result, await
 *                          (already done, so no suspension), unref
 *   future_await_suspend   two tasks pass the turn through futures: each
 *                          creates a future, resolves the other's, awaits its
 *                          own (a real suspension); ns per future
 *   sleep0_roundtrip       two tasks each loop on cio_sleep(0); ns per round
 *                          (both tasks yielded once: one loop iteration)
 *   yield_ring10           ten tasks loop on cio_sleep(0); ns per yield
 *
 * Each repetition uses a fresh loop and warms it up (pools, caches) with a
 * tenth of the iterations before the timed part.
 */
#include <stdint.h>

#include "bench_util.h"
#include "cio.h"

static long warm(long n) {
    return n / 10 + 1;
}

static double run_main(cio_coro_fn fn, void *arg) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    cio_task *t;
    BENCH_CHECK(cio_spawn(loop, fn, arg, &t));
    void *result = NULL;
    BENCH_CHECK(cio_run_until_complete(loop, t, &result));
    cio_future_unref(t);
    cio_loop_free(loop);
    return *(double *)arg;
}

/* Every job starts with its iteration count and ends with the result. */
typedef struct job {
    double ns;
    long n;
} job;

/* ---- spawn + await ------------------------------------------------------- */

static void *child_returns(void *arg) {
    return arg;
}

static void spawn_await_loop(long n, const cio_task_options *opts) {
    cio_loop *loop = cio_running_loop();
    for (long i = 0; i < n; i++) {
        cio_task *t;
        BENCH_CHECK(cio_spawn_with(loop, child_returns, (void *)(intptr_t)i, opts, &t));
        void *r = NULL;
        BENCH_CHECK(cio_await(t, &r));
        if ((intptr_t)r != i) {
            fprintf(stderr, "spawn_await: wrong result\n");
            exit(1);
        }
        cio_future_unref(t);
    }
}

static void *spawn_await_main(void *arg) {
    job *j = arg;
    spawn_await_loop(warm(j->n), NULL);
    int64_t t0 = bench_now_ns();
    spawn_await_loop(j->n, NULL);
    j->ns = (double)(bench_now_ns() - t0) / (double)j->n;
    return NULL;
}

static void *spawn_await_eager_main(void *arg) {
    job *j = arg;
    cio_task_options opts = {.eager_start = 1};
    spawn_await_loop(warm(j->n), &opts);
    int64_t t0 = bench_now_ns();
    spawn_await_loop(j->n, &opts);
    j->ns = (double)(bench_now_ns() - t0) / (double)j->n;
    return NULL;
}

/* ---- call_soon ------------------------------------------------------------- */

typedef struct chain {
    long left;
} chain;

static void chain_step(cio_loop *loop, void *arg) {
    chain *c = arg;
    if (--c->left > 0)
        BENCH_CHECK(cio_call_soon(loop, chain_step, c, NULL));
    else
        cio_loop_stop(loop);
}

static double bench_call_soon_chain(long n) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    chain c = {.left = warm(n)};
    BENCH_CHECK(cio_call_soon(loop, chain_step, &c, NULL));
    BENCH_CHECK(cio_run_forever(loop));
    c.left = n;
    int64_t t0 = bench_now_ns();
    BENCH_CHECK(cio_call_soon(loop, chain_step, &c, NULL));
    BENCH_CHECK(cio_run_forever(loop));
    double ns = (double)(bench_now_ns() - t0) / (double)n;
    cio_loop_free(loop);
    return ns;
}

#define BATCH 1024

static void count_call(cio_loop *loop, void *arg) {
    (void)loop;
    (*(long *)arg)++;
}

static void call_soon_batches(long rounds, long *counter) {
    cio_loop *loop = cio_running_loop();
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < BATCH; i++) BENCH_CHECK(cio_call_soon(loop, count_call, counter, NULL));
        BENCH_CHECK(cio_sleep(0));
    }
}

static void *call_soon_batch_main(void *arg) {
    job *j = arg;
    long counter = 0;
    long rounds = j->n / BATCH + 1;
    call_soon_batches(warm(rounds), &counter);
    int64_t t0 = bench_now_ns();
    call_soon_batches(rounds, &counter);
    j->ns = (double)(bench_now_ns() - t0) / (double)(rounds * BATCH);
    if (counter != (warm(rounds) + rounds) * BATCH) {
        fprintf(stderr, "call_soon_batch: %ld callbacks ran\n", counter);
        exit(1);
    }
    return NULL;
}

/* ---- futures ------------------------------------------------------------------ */

static void resolve_await_loop(long n) {
    cio_loop *loop = cio_running_loop();
    for (long i = 0; i < n; i++) {
        cio_future *f;
        BENCH_CHECK(cio_future_new(loop, &f));
        BENCH_CHECK(cio_future_set_result(f, (void *)(intptr_t)i));
        void *r = NULL;
        BENCH_CHECK(cio_await(f, &r));
        BENCH_USE(r);
        cio_future_unref(f);
    }
}

static void *future_resolve_await_main(void *arg) {
    job *j = arg;
    resolve_await_loop(warm(j->n));
    int64_t t0 = bench_now_ns();
    resolve_await_loop(j->n);
    j->ns = (double)(bench_now_ns() - t0) / (double)j->n;
    return NULL;
}

/* Two tasks pass the turn: each creates the future it will await, resolves
 * the one the other awaits, then awaits its own. */
typedef struct pingpong {
    cio_future *slot[2]; /* the future task i awaits, while it awaits it */
    long rounds;
    int64_t t0, t1;
    long warm;
} pingpong;

typedef struct player {
    pingpong *pp;
    int me;
} player;

static void *player_main(void *arg) {
    player *p = arg;
    pingpong *pp = p->pp;
    cio_loop *loop = cio_running_loop();
    for (long i = 0; i < pp->warm + pp->rounds; i++) {
        if (p->me == 0 && i == pp->warm) pp->t0 = bench_now_ns();
        cio_future *mine;
        BENCH_CHECK(cio_future_new(loop, &mine));
        pp->slot[p->me] = mine;
        cio_future *other = pp->slot[1 - p->me];
        if (other) {
            pp->slot[1 - p->me] = NULL;
            BENCH_CHECK(cio_future_set_result(other, NULL));
        }
        BENCH_CHECK(cio_await(mine, NULL));
        cio_future_unref(mine);
    }
    if (p->me == 0) pp->t1 = bench_now_ns();
    /* The other player awaits one more future: resolve it. */
    cio_future *other = pp->slot[1 - p->me];
    if (other) {
        pp->slot[1 - p->me] = NULL;
        BENCH_CHECK(cio_future_set_result(other, NULL));
    }
    return NULL;
}

static double bench_future_await_suspend(long n) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    pingpong pp = {.rounds = n, .warm = warm(n)};
    /* Player 1 starts first and waits; player 0 then drives the rounds. */
    player p1 = {&pp, 1}, p0 = {&pp, 0};
    cio_task *t1, *t0;
    BENCH_CHECK(cio_spawn(loop, player_main, &p1, &t1));
    BENCH_CHECK(cio_spawn(loop, player_main, &p0, &t0));
    BENCH_CHECK(cio_run_until_complete(loop, t0, NULL));
    BENCH_CHECK(cio_run_until_complete(loop, t1, NULL));
    cio_future_unref(t0);
    cio_future_unref(t1);
    cio_loop_free(loop);
    /* Each round resolves and awaits two futures. */
    return (double)(pp.t1 - pp.t0) / (2.0 * (double)n);
}

/* ---- sleep(0) ---------------------------------------------------------------- */

typedef struct yielders {
    long n, warm;
    int64_t t0, t1;
} yielders;

static void *yielder_main(void *arg) {
    yielders *y = arg;
    for (long i = 0; i < y->warm; i++) BENCH_CHECK(cio_sleep(0));
    if (y->t0 == 0) y->t0 = bench_now_ns(); /* the first task to get here */
    for (long i = 0; i < y->n; i++) BENCH_CHECK(cio_sleep(0));
    y->t1 = bench_now_ns(); /* the last task to get here */
    return NULL;
}

/* ns per round: every one of the k tasks yielded once. */
static double bench_yielders(int k, long n) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    yielders y = {.n = n, .warm = warm(n)};
    cio_task *tasks[16];
    for (int i = 0; i < k; i++) BENCH_CHECK(cio_spawn(loop, yielder_main, &y, &tasks[i]));
    for (int i = 0; i < k; i++) {
        BENCH_CHECK(cio_run_until_complete(loop, tasks[i], NULL));
        cio_future_unref(tasks[i]);
    }
    cio_loop_free(loop);
    return (double)(y.t1 - y.t0) / (double)n;
}

/* Adapters: each runs one repetition and returns ns per operation. */
static double run_job(cio_coro_fn fn, long n) {
    job j = {.n = n};
    return run_main(fn, &j);
}
static double do_spawn_await(long n) { return run_job(spawn_await_main, n); }
static double do_spawn_await_eager(long n) { return run_job(spawn_await_eager_main, n); }
static double do_call_soon_batch(long n) { return run_job(call_soon_batch_main, n); }
static double do_future_resolve_await(long n) { return run_job(future_resolve_await_main, n); }
static double do_future_await_suspend(long n) { return bench_future_await_suspend(n / 2); }
static double do_sleep0(long n) { return bench_yielders(2, n); }
static double do_ring10(long n) { return bench_yielders(10, n / 5) / 10.0; }

typedef struct bench_case {
    bench_stat stat;
    double (*fn)(long n);
    long full;
    int selected;
} bench_case;

/* With arguments, runs only the benchmarks named (for profiling one). */
int main(int argc, char **argv) {
    int reps = bench_reps();
    bench_case cases[] = {
        {{.name = "spawn_await", .unit = "ns"}, do_spawn_await, 1000000, 0},
        {{.name = "spawn_await_eager", .unit = "ns"}, do_spawn_await_eager, 1000000, 0},
        {{.name = "call_soon_chain", .unit = "ns"}, bench_call_soon_chain, 3000000, 0},
        {{.name = "call_soon_batch", .unit = "ns"}, do_call_soon_batch, 3000000, 0},
        {{.name = "future_resolve_await", .unit = "ns"}, do_future_resolve_await, 3000000, 0},
        {{.name = "future_await_suspend", .unit = "ns"}, do_future_await_suspend, 3000000, 0},
        {{.name = "sleep0_roundtrip", .unit = "ns"}, do_sleep0, 1000000, 0},
        {{.name = "yield_ring10", .unit = "ns"}, do_ring10, 1000000, 0},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t c = 0; c < ncases; c++) {
        cases[c].selected = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], cases[c].stat.name) == 0) cases[c].selected = 1;
    }
    printf("# tasks: %d repetitions of", reps);
    for (size_t c = 0; c < ncases; c++)
        if (cases[c].selected) printf(" %s(%ld)", cases[c].stat.name, bench_iters(cases[c].full, 1000));
    printf("\n");
    /* Repetitions interleave the benchmarks, so a slow patch of the
     * machine spreads over all of them. */
    for (int r = 0; r < reps; r++)
        for (size_t c = 0; c < ncases; c++)
            if (cases[c].selected)
                bench_add(&cases[c].stat, cases[c].fn(bench_iters(cases[c].full, 1000)));
    for (size_t c = 0; c < ncases; c++)
        if (cases[c].selected) bench_report(&cases[c].stat);
    return 0;
}
