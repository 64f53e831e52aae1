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
 * Every benchmark runs in three shapes, printed under three names:
 *
 *   <name>          warm: each repetition uses a fresh loop and warms it up
 *                   (stack pool, free lists, caches) with a tenth of the
 *                   iterations before the timed part
 *   <name>_cold     cold: the first COLD_OPS operations of a new loop, with
 *                   no warm-up, so the first spawns take their stacks
 *                   fresh from mmap (guard included) and touch them for the
 *                   first time, and the loop's pools start empty; the mean
 *                   of COLD_LOOPS new loops per repetition
 *   <name>_server   warm, while the loop watches a descriptor (cio_add_reader
 *                   on one end of an idle socketpair): a watcher makes
 *                   every loop iteration poll the backend without blocking,
 *                   as a server's loop does, so each iteration pays one
 *                   epoll_wait (or io_uring) system call
 *
 * asyncio's loop polls on every iteration whatever it watches, so its
 * figures (bench_asyncio.py) compare most evenly with the _server ones.
 * CIO_BENCH_SHAPES=warm,cold,server (any of them) runs only those shapes.
 */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "cio.h"

/* The shape of the runs under way (see above). */
enum { SHAPE_WARM, SHAPE_COLD, SHAPE_SERVER };
static int shape;

#define COLD_OPS 1000
#define COLD_LOOPS 5

static long warm(long n) {
    return shape == SHAPE_COLD ? 0 : n / 10 + 1;
}

/* The watched descriptor of a server-shaped run: nothing is ever written to
 * its peer, so the watcher never fires; it only keeps the loop polling. */
static int server_fds[2] = {-1, -1};

static void never_called(cio_loop *loop, void *arg) {
    (void)loop;
    (void)arg;
    fprintf(stderr, "bench_tasks: the idle descriptor became readable\n");
    exit(1);
}

static cio_loop *new_loop(void) {
    cio_loop *loop;
    BENCH_CHECK(cio_loop_new(&loop));
    /* CIO_BENCH_WATCHDOG=MS watches every loop with that threshold, to
     * measure what the stall watchdog costs (docs/debugging.md). */
    const char *wd = getenv("CIO_BENCH_WATCHDOG");
    if (wd && atoi(wd) > 0) BENCH_CHECK(cio_loop_set_watchdog(loop, (unsigned)atoi(wd), 0));
    if (shape == SHAPE_SERVER) {
        if (server_fds[0] < 0) BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, server_fds));
        BENCH_CHECK(cio_add_reader(loop, server_fds[0], never_called, NULL));
    }
    return loop;
}

static void free_loop(cio_loop *loop) {
    if (shape == SHAPE_SERVER) BENCH_CHECK(cio_remove_reader(loop, server_fds[0]));
    cio_loop_free(loop);
}

static double run_main(cio_coro_fn fn, void *arg) {
    cio_loop *loop = new_loop();
    cio_task *t;
    BENCH_CHECK(cio_spawn(loop, fn, arg, &t));
    void *result = NULL;
    BENCH_CHECK(cio_run_until_complete(loop, t, &result));
    cio_future_unref(t);
    free_loop(loop);
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
    cio_loop *loop = new_loop();
    chain c = {.left = warm(n)};
    if (c.left > 0) {
        BENCH_CHECK(cio_call_soon(loop, chain_step, &c, NULL));
        BENCH_CHECK(cio_run_forever(loop));
    }
    c.left = n;
    int64_t t0 = bench_now_ns();
    BENCH_CHECK(cio_call_soon(loop, chain_step, &c, NULL));
    BENCH_CHECK(cio_run_forever(loop));
    double ns = (double)(bench_now_ns() - t0) / (double)n;
    free_loop(loop);
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
    cio_loop *loop = new_loop();
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
    free_loop(loop);
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
    cio_loop *loop = new_loop();
    yielders y = {.n = n, .warm = warm(n)};
    cio_task *tasks[16];
    for (int i = 0; i < k; i++) BENCH_CHECK(cio_spawn(loop, yielder_main, &y, &tasks[i]));
    for (int i = 0; i < k; i++) {
        BENCH_CHECK(cio_run_until_complete(loop, tasks[i], NULL));
        cio_future_unref(tasks[i]);
    }
    free_loop(loop);
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
    const char *name;
    double (*fn)(long n);
    long full;
    int selected;
    bench_stat stat[3]; /* per shape: warm, cold, server */
    char names[3][64];
} bench_case;

static const char *const shape_suffix[3] = {"", "_cold", "_server"};

/* CIO_BENCH_SHAPES=warm (or a comma list of warm, cold, server) runs only
 * those shapes: instruction counts of the warm shape alone compare with a
 * build from before the shapes existed (bench/compare_instructions.sh). */
static int shape_selected(int s) {
    static const char *const shape_name[3] = {"warm", "cold", "server"};
    const char *list = getenv("CIO_BENCH_SHAPES");
    if (!list || !*list) return 1;
    size_t len = strlen(shape_name[s]);
    for (const char *p = list; (p = strstr(p, shape_name[s])) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == '\0' || p[len] == ',')) return 1;
    return 0;
}

/* One repetition of one benchmark in one shape: ns per operation. */
static double run_shape(const bench_case *c, int s) {
    shape = s;
    double ns;
    if (s == SHAPE_COLD) {
        long ops = bench_quick() ? 100 : COLD_OPS;
        double sum = 0;
        for (int i = 0; i < COLD_LOOPS; i++) sum += c->fn(ops);
        ns = sum / COLD_LOOPS;
    } else if (s == SHAPE_SERVER) {
        /* Every iteration makes a system call here: a twentieth of the
         * iterations keeps the run short and still lasts far longer than
         * the clock's resolution. */
        ns = c->fn(bench_iters(c->full / 20, 1000));
    } else {
        ns = c->fn(bench_iters(c->full, 1000));
    }
    shape = SHAPE_WARM;
    return ns;
}

/* With arguments, runs only the benchmarks named (for profiling one); a
 * name selects its three shapes. */
int main(int argc, char **argv) {
    int reps = bench_reps();
    bench_case cases[] = {
        {.name = "spawn_await", .fn = do_spawn_await, .full = 1000000},
        {.name = "spawn_await_eager", .fn = do_spawn_await_eager, .full = 1000000},
        {.name = "call_soon_chain", .fn = bench_call_soon_chain, .full = 3000000},
        {.name = "call_soon_batch", .fn = do_call_soon_batch, .full = 3000000},
        {.name = "future_resolve_await", .fn = do_future_resolve_await, .full = 3000000},
        {.name = "future_await_suspend", .fn = do_future_await_suspend, .full = 3000000},
        {.name = "sleep0_roundtrip", .fn = do_sleep0, .full = 1000000},
        {.name = "yield_ring10", .fn = do_ring10, .full = 1000000},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t c = 0; c < ncases; c++) {
        cases[c].selected = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], cases[c].name) == 0) cases[c].selected = 1;
        for (int s = 0; s < 3; s++) {
            snprintf(cases[c].names[s], sizeof cases[c].names[s], "%s%s", cases[c].name,
                     shape_suffix[s]);
            cases[c].stat[s].name = cases[c].names[s];
            cases[c].stat[s].unit = "ns";
        }
    }
    printf("# tasks: %d repetitions of", reps);
    for (size_t c = 0; c < ncases; c++)
        if (cases[c].selected) printf(" %s(%ld)", cases[c].name, bench_iters(cases[c].full, 1000));
    printf("\n# tasks: _cold is the first %d operations of a new loop (mean of %d loops), "
           "_server watches an idle socketpair end and runs a twentieth of the iterations\n",
           bench_quick() ? 100 : COLD_OPS, COLD_LOOPS);
    /* Repetitions interleave the benchmarks and their shapes, so a slow
     * patch of the machine spreads over all of them. */
    for (int r = 0; r < reps; r++)
        for (size_t c = 0; c < ncases; c++)
            if (cases[c].selected)
                for (int s = 0; s < 3; s++)
                    if (shape_selected(s)) bench_add(&cases[c].stat[s], run_shape(&cases[c], s));
    for (int s = 0; s < 3; s++)
        for (size_t c = 0; c < ncases; c++)
            if (cases[c].selected && shape_selected(s)) bench_report(&cases[c].stat[s]);
    if (server_fds[0] >= 0) {
        close(server_fds[0]);
        close(server_fds[1]);
    }
    return 0;
}
