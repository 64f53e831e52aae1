/*
 * Queue, LifoQueue and PriorityQueue against asyncio 3.13: ordering,
 * maxsize, blocking put/get served FIFO, the _nowait forms, task_done/join,
 * shutdown (plain and immediate), the dispose callback, cancellation of
 * woken waiters, deadlines, bad arguments, allocation failures, freeing
 * while tasks wait, and a stress run with random cancellations.
 */
#include "test.h"

#include <stdarg.h>


static cio_queue *q;

/* ---- helpers -------------------------------------------------------------- */

static char trace[1024];
static size_t trace_len;

static void trace_reset(void) {
    trace[0] = '\0';
    trace_len = 0;
}

static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(trace + trace_len, sizeof trace - trace_len, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof trace - trace_len);
    trace_len += (size_t)n;
}

static cio_task *spawn(cio_coro_fn fn, void *arg) {
    cio_task *t = NULL;
    CHECK_OK(cio_spawn(cio_running_loop(), fn, arg, &t));
    return t;
}

/* Awaits a task, releases it and returns its outcome. */
static int finish(cio_task *t) {
    int rc = cio_await(t, NULL);
    cio_future_unref(t);
    return rc;
}

/* Lets every other task run n times. */
static void settle(int n) {
    while (n-- > 0) CHECK_OK(cio_sleep(0));
}

/* Any report through the exception handler is a failure, unless a test
 * counts refusals on purpose. */
static int refused;

static void no_reports(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    FAIL("unexpected report: %s", ctx->message);
}

static void count_refusals(cio_loop *loop, const cio_error_context *ctx, void *arg) {
    (void)loop;
    (void)arg;
    CHECK(strstr(ctx->message, "not freed") != NULL);
    CHECK_ERR(ctx->error, -EBUSY);
    refused++;
}

static cio_loop *strict_loop(void) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_loop_set_exception_handler(loop, no_reports, NULL));
    return loop;
}

/* A getter labelled by arg: notes "<label><item> " on success. */
static void *getter(void *arg) {
    void *item;
    int rc = cio_queue_get(q, &item);
    if (rc < 0) {
        CHECK(item == NULL);
        return cio_raise(rc);
    }
    note("%c%d ", (char)PTRI(arg), PTRI(item));
    return NULL;
}

/* A putter of the item arg: notes "+<item> " once the put succeeded. */
static void *putter(void *arg) {
    int rc = cio_queue_put(q, arg);
    if (rc < 0) return cio_raise(rc);
    note("+%d ", PTRI(arg));
    return NULL;
}

static void *joiner(void *arg) {
    int rc = cio_queue_join(q);
    if (rc < 0) return cio_raise(rc);
    note("J%c ", (char)PTRI(arg));
    return NULL;
}

static void drain_expect(const int *expect, int n) {
    for (int i = 0; i < n; i++) {
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), expect[i]);
    }
    CHECK(cio_queue_empty(q));
}

/* ---- ordering and storage ----------------------------------------------- */

static int cmp_tens(const void *a, const void *b) {
    int x = PTRI(a) / 10, y = PTRI(b) / 10; /* compare tens only: ties */
    return (x > y) - (x < y);
}

TEST(orders_fifo_lifo_priority) {
    cio_loop *loop = strict_loop();
    int values[] = {31, 12, 35, 11, 20};
    int fifo[] = {31, 12, 35, 11, 20};
    int lifo[] = {20, 11, 35, 12, 31};
    int prio[] = {12, 11, 20, 31, 35}; /* by tens, ties in insertion order */
    int *expect[] = {fifo, lifo, prio};
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0) CHECK_OK(cio_queue_new(0, &q));
        if (kind == 1) CHECK_OK(cio_lifo_queue_new(0, &q));
        if (kind == 2) CHECK_OK(cio_priority_queue_new(0, cmp_tens, &q));
        CHECK(cio_queue_empty(q));
        CHECK(!cio_queue_full(q));
        CHECK_EQ(cio_queue_maxsize(q), 0);
        for (int i = 0; i < 5; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(values[i])));
        CHECK_EQ(cio_queue_size(q), 5);
        CHECK(!cio_queue_empty(q));
        CHECK(!cio_queue_full(q)); /* unbounded: never full */
        drain_expect(expect[kind], 5);
        void *item = IPTR(1);
        CHECK_ERR(cio_queue_get_nowait(q, &item), -EAGAIN);
        CHECK(item == NULL);
        CHECK_OK(cio_queue_free(q));
    }
    cio_loop_free(loop);
}

TEST(null_items_are_items) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_OK(cio_queue_put_nowait(q, NULL));
    CHECK(cio_queue_full(q));
    void *item = IPTR(5);
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK(item == NULL);
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static uint64_t rng_state;
static unsigned rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

/* Items are key * 10000 + serial: the heap must give them in key order and,
 * for equal keys, in serial (insertion) order: a stable sort. */
static int cmp_key(const void *a, const void *b) {
    int x = PTRI(a) / 10000, y = PTRI(b) / 10000;
    return (x > y) - (x < y);
}

TEST(priority_heap_matches_a_stable_sort) {
    cio_loop *loop = strict_loop();
    rng_state = 0x9e3779b97f4a7c15u;
    CHECK_OK(cio_priority_queue_new(0, cmp_key, &q));
    int serial = 0, last = -1, out = 0;
    /* Mixed puts and gets, so the heap is reshaped at every size. */
    for (int round = 0; round < 200; round++) {
        int puts = (int)(rnd() % 40), gets = (int)(rnd() % 40);
        for (int i = 0; i < puts; i++)
            CHECK_OK(cio_queue_put_nowait(q, IPTR((int)(rnd() % 50) * 10000 + serial++)));
        /* Between puts, gets come out non-decreasing. */
        last = -1;
        for (int i = 0; i < gets && !cio_queue_empty(q); i++) {
            void *item;
            CHECK_OK(cio_queue_get_nowait(q, &item));
            CHECK_INT(PTRI(item), >, last); /* key first, then serial */
            last = PTRI(item);
            out++;
        }
    }
    last = -1;
    while (!cio_queue_empty(q)) {
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_INT(PTRI(item), >, last);
        last = PTRI(item);
        out++;
    }
    CHECK_EQ(out, serial);
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(equal_priorities_come_out_in_insertion_order) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_priority_queue_new(0, cmp_key, &q));
    /* All the same key: a priority queue then behaves as a FIFO. */
    for (int i = 0; i < 100; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(70000 + i)));
    for (int i = 0; i < 100; i++) {
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), 70000 + i);
    }
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(ring_wraps_and_grows_in_order) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_queue_new(0, &q));
    /* Interleave puts and gets so the ring wraps while it grows. */
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 60; round++) {
        for (int i = 0; i < 37; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(next_in++)));
        for (int i = 0; i < 20; i++) {
            void *item;
            CHECK_OK(cio_queue_get_nowait(q, &item));
            CHECK_EQ(PTRI(item), next_out++);
        }
    }
    CHECK_EQ(cio_queue_size(q), (size_t)(next_in - next_out));
    /* Emptied past the kept size, the buffer is released and regrown. */
    while (next_out < next_in) {
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), next_out++);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3000; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(next_in++)));
        for (int i = 0; i < 3000; i++) {
            void *item;
            CHECK_OK(cio_queue_get_nowait(q, &item));
            CHECK_EQ(PTRI(item), next_out++);
        }
    }
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(lifo_keeps_stack_order_through_growth) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_lifo_queue_new(0, &q));
    for (int i = 0; i < 2000; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    for (int i = 1999; i >= 1000; i--) {
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), i);
    }
    CHECK_OK(cio_queue_put_nowait(q, IPTR(-1)));
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), -1);
    for (int i = 999; i >= 0; i--) {
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), i);
    }
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(maxsize_bounds_put_nowait) {
    cio_loop *loop = strict_loop();
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0) CHECK_OK(cio_queue_new(3, &q));
        if (kind == 1) CHECK_OK(cio_lifo_queue_new(3, &q));
        if (kind == 2) CHECK_OK(cio_priority_queue_new(3, cmp_tens, &q));
        CHECK_EQ(cio_queue_maxsize(q), 3);
        for (int i = 0; i < 3; i++) {
            CHECK(!cio_queue_full(q));
            CHECK_OK(cio_queue_put_nowait(q, IPTR(10 * i)));
        }
        CHECK(cio_queue_full(q));
        CHECK_ERR(cio_queue_put_nowait(q, IPTR(99)), -EAGAIN); /* QueueFull */
        CHECK_EQ(cio_queue_size(q), 3);
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK(!cio_queue_full(q));
        CHECK_OK(cio_queue_put_nowait(q, IPTR(99)));
        CHECK_ERR(cio_queue_put_nowait(q, IPTR(98)), -EAGAIN);
        CHECK_OK(cio_queue_free(q));
    }
    /* A large bound is not allocated up front, and the buffer stops at it. */
    CHECK_OK(cio_queue_new(20, &q));
    for (int i = 0; i < 20; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(20)), -EAGAIN);
    for (int i = 0; i < 40; i++) { /* wrap the full ring around twice */
        void *item;
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), i);
        CHECK_OK(cio_queue_put_nowait(q, IPTR(i + 20)));
    }
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- blocking get and put ---------------------------------------------- */

static void *getters_fifo(void *arg) {
    (void)arg;
    cio_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(getter, IPTR('a' + i));
    settle(1); /* all three wait, a first */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(3)));
    for (int i = 0; i < 3; i++) CHECK_OK(finish(t[i]));
    return NULL;
}

TEST(waiting_getters_are_served_in_arrival_order) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, getters_fifo, NULL, NULL));
    CHECK_STR(trace, "a1 b2 c3 ");
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *no_barging_get(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *a = spawn(getter, IPTR('a'));
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(7))); /* wakes a: the item is promised */
    CHECK_EQ(cio_queue_size(q), 1);              /* still in the queue, as asyncio */
    /* A newcomer's blocking get does not overtake the woken getter. */
    void *item;
    CHECK_ERR(cio_queue_get_until(q, &item, cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    CHECK(item == NULL);
    CHECK_OK(finish(a));
    CHECK_STR(trace, "a7 ");
    return NULL;
}

TEST(blocking_get_never_overtakes_a_woken_getter) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, no_barging_get, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *nowait_barges(void *arg) {
    (void)arg;
    cio_task *a = spawn(getter, IPTR('a'));
    cio_task *b = spawn(getter, IPTR('b'));
    settle(1); /* a, b wait */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1))); /* wakes a */
    /* asyncio: get_nowait takes an item that is there, promised or not. */
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), 1);
    settle(1); /* a runs, finds nothing and waits again, behind b */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(3)));
    CHECK_OK(finish(a));
    CHECK_OK(finish(b));
    CHECK_STR(trace, "b2 a3 ");
    return NULL;
}

TEST(get_nowait_may_take_a_promised_item_and_the_getter_waits_again) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, nowait_barges, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *putters_fifo(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_queue_put_nowait(q, IPTR(0))); /* full: maxsize 1 */
    cio_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(putter, IPTR(i + 1));
    settle(1); /* all three wait, 1 first */
    CHECK_EQ(cio_queue_size(q), 1);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item)); /* frees the slot: wakes putter 1 */
    CHECK_EQ(PTRI(item), 0);
    CHECK(!cio_queue_full(q));
    /* A newcomer's blocking put does not take the promised slot. */
    CHECK_ERR(cio_queue_put_until(q, IPTR(9), cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    for (int expect = 1; expect <= 3; expect++) {
        CHECK_OK(cio_queue_get(q, &item));
        CHECK_EQ(PTRI(item), expect);
    }
    for (int i = 0; i < 3; i++) CHECK_OK(finish(t[i]));
    CHECK_STR(trace, "+1 +2 +3 ");
    CHECK(cio_queue_empty(q));
    return NULL;
}

TEST(waiting_putters_are_served_in_arrival_order) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_OK(test_run(loop, putters_fifo, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *put_nowait_barges(void *arg) {
    (void)arg;
    CHECK_OK(cio_queue_put_nowait(q, IPTR(0)));
    cio_task *a = spawn(putter, IPTR(1));
    cio_task *b = spawn(putter, IPTR(2));
    settle(1);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item)); /* wakes putter 1 */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(5))); /* takes the slot, as asyncio */
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(6)), -EAGAIN);
    settle(1); /* putter 1 finds the queue full and waits again, behind 2 */
    int expect[] = {5, 2, 1};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(cio_queue_get(q, &item));
        CHECK_EQ(PTRI(item), expect[i]);
    }
    CHECK_OK(finish(a));
    CHECK_OK(finish(b));
    return NULL;
}

TEST(put_nowait_may_take_a_promised_slot_and_the_putter_waits_again) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_OK(test_run(loop, put_nowait_barges, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *lifo_and_priority_waiters(void *arg) {
    (void)arg;
    /* A woken getter takes whatever is next when it runs: for a LIFO the
     * newest item, for a priority queue the smallest. */
    cio_task *a = spawn(getter, IPTR('a'));
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(30))); /* wakes a */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(10)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(20)));
    CHECK_OK(finish(a));
    return NULL;
}

TEST(woken_getter_takes_the_next_item_of_its_kind) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_lifo_queue_new(0, &q));
    CHECK_OK(test_run(loop, lifo_and_priority_waiters, NULL, NULL));
    CHECK_STR(trace, "a20 ");
    CHECK_OK(cio_queue_free(q));
    trace_reset();
    CHECK_OK(cio_priority_queue_new(0, cmp_tens, &q));
    CHECK_OK(test_run(loop, lifo_and_priority_waiters, NULL, NULL));
    CHECK_STR(trace, "a10 ");
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *priority_bounded(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) CHECK_OK(cio_queue_put(q, IPTR(50 + i)));
    cio_task *p[3];
    p[0] = spawn(putter, IPTR(40));
    p[1] = spawn(putter, IPTR(60));
    p[2] = spawn(putter, IPTR(10));
    settle(1);
    int expect[] = {50, 40, 10, 51, 60};
    /* Each get frees a slot for the next putter in line; its item is then
     * sorted into the heap. */
    void *item;
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), expect[0]);
    settle(1); /* putter 40 */
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), expect[1]);
    settle(1); /* putter 60 */
    CHECK_OK(cio_queue_get(q, &item)); /* 51 */
    CHECK_EQ(PTRI(item), 51);
    settle(1); /* putter 10 */
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), 10);
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), 60);
    for (int i = 0; i < 3; i++) CHECK_OK(finish(p[i]));
    CHECK_STR(trace, "+40 +60 +10 ");
    return NULL;
}

TEST(bounded_priority_queue_with_waiting_putters) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_priority_queue_new(2, cmp_tens, &q));
    CHECK_OK(test_run(loop, priority_bounded, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static int got[400];
static int got_count;

static void *producer(void *arg) {
    int base = PTRI(arg);
    for (int i = 0; i < 10; i++) {
        int rc = cio_queue_put(q, IPTR(base + i));
        if (rc < 0) return cio_raise(rc);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(q, &item);
        if (rc == -CIO_ESHUTDOWN) return NULL;
        if (rc < 0) return cio_raise(rc);
        got[got_count++] = PTRI(item);
        if (PTRI(item) % 3 == 0) CHECK_OK(cio_sleep(0)); /* some work */
        CHECK_OK(cio_queue_task_done(q));
    }
}

static void *producers_and_consumers(void *arg) {
    (void)arg;
    cio_task *p[3], *c[2];
    for (int i = 0; i < 3; i++) p[i] = spawn(producer, IPTR(100 * (i + 1)));
    for (int i = 0; i < 2; i++) c[i] = spawn(consumer, NULL);
    for (int i = 0; i < 3; i++) CHECK_OK(finish(p[i]));
    CHECK_OK(cio_queue_join(q));
    CHECK_EQ(got_count, 30);
    CHECK_OK(cio_queue_shutdown(q, 0));
    for (int i = 0; i < 2; i++) CHECK_OK(finish(c[i]));
    return NULL;
}

TEST(bounded_queue_with_producers_and_consumers) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_queue_new(2, &q));
    got_count = 0;
    CHECK_OK(test_run(loop, producers_and_consumers, NULL, NULL));
    /* Each producer's items arrive in its own order, none lost or doubled. */
    int seen[400] = {0};
    for (int i = 0; i < got_count; i++) seen[got[i]]++;
    for (int p = 1; p <= 3; p++)
        for (int i = 0; i < 10; i++) CHECK_EQ(seen[100 * p + i], 1);
    int last[4] = {-1, -1, -1, -1};
    for (int i = 0; i < got_count; i++) {
        int who = got[i] / 100;
        CHECK_INT(got[i], >, last[who]);
        last[who] = got[i];
    }
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- cancellation ----------------------------------------------------------- */

static void *cancel_woken_getter(void *arg) {
    int alone = PTRI(arg);
    cio_task *a = spawn(getter, IPTR('a'));
    cio_task *b = alone ? NULL : spawn(getter, IPTR('b'));
    settle(1); /* a (and b) wait, a first */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(7))); /* wakes a */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);     /* cancelled before it runs */
    CHECK_ERR(finish(a), -ECANCELED);
    if (!alone) {
        CHECK_OK(finish(b)); /* the wake-up went on to b */
        CHECK_STR(trace, "b7 ");
        CHECK(cio_queue_empty(q));
    } else {
        CHECK_STR(trace, "");
        CHECK_EQ(cio_queue_size(q), 1); /* the item stayed in the queue */
        /* And a later getter gets it at once. */
        cio_task *c = spawn(getter, IPTR('c'));
        CHECK_OK(finish(c));
        CHECK_STR(trace, "c7 ");
    }
    return NULL;
}

TEST(cancelled_woken_getter_passes_the_item_on) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, cancel_woken_getter, IPTR(0), NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(cancelled_woken_getter_leaves_the_item_in_the_queue) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, cancel_woken_getter, IPTR(1), NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *cancel_two_woken_getters(void *arg) {
    (void)arg;
    cio_task *t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(getter, IPTR('a' + i));
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1))); /* wakes a */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2))); /* wakes b */
    cio_task_cancel(t[0], NULL);
    cio_task_cancel(t[1], NULL);
    cio_task_cancel(t[3], NULL); /* not woken: just leaves */
    CHECK_ERR(finish(t[0]), -ECANCELED);
    CHECK_ERR(finish(t[1]), -ECANCELED);
    CHECK_ERR(finish(t[3]), -ECANCELED);
    CHECK_OK(finish(t[2])); /* c gets the first item; the second stays */
    CHECK_STR(trace, "c1 ");
    CHECK_EQ(cio_queue_size(q), 1);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), 2);
    return NULL;
}

TEST(several_cancelled_woken_getters_lose_nothing) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, cancel_two_woken_getters, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *cancel_woken_putter(void *arg) {
    int alone = PTRI(arg);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1))); /* full (maxsize 1) */
    cio_task *a = spawn(putter, IPTR(2));
    cio_task *b = alone ? NULL : spawn(putter, IPTR(3));
    settle(1);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item)); /* frees the slot, wakes putter 2 */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(finish(a), -ECANCELED);
    if (!alone) {
        CHECK_OK(finish(b)); /* the slot went to putter 3 */
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_EQ(PTRI(item), 3);
        CHECK_STR(trace, "+3 ");
    } else {
        CHECK(cio_queue_empty(q)); /* the slot stays free */
        CHECK_OK(cio_queue_put(q, IPTR(4)));
        CHECK_STR(trace, "");
    }
    /* A cancelled put counts nothing unfinished. */
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    return NULL;
}

TEST(cancelled_woken_putter_passes_the_slot_on) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_OK(test_run(loop, cancel_woken_putter, IPTR(0), NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(cancelled_woken_putter_leaves_the_slot_free) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_OK(test_run(loop, cancel_woken_putter, IPTR(1), NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *cancel_waiting_getter(void *arg) {
    (void)arg;
    cio_task *a = spawn(getter, IPTR('a'));
    cio_task *b = spawn(getter, IPTR('b'));
    settle(1);
    CHECK_EQ(cio_task_cancel(a, "bye"), 1); /* not woken yet: just leaves */
    settle(1);
    CHECK(cio_future_done(a));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(5)));
    CHECK_OK(finish(b));
    CHECK_ERR(finish(a), -ECANCELED);
    CHECK_STR(trace, "b5 ");
    return NULL;
}

TEST(cancelled_waiting_getter_leaves_the_line) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, cancel_waiting_getter, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *get_with_pending_cancel(void *arg) {
    (void)arg;
    /* Cancelled while running: a get that must wait fails at once... */
    cio_task *self = cio_current_task();
    CHECK_EQ(cio_task_cancel(self, NULL), 1);
    void *item;
    CHECK_ERR(cio_queue_get(q, &item), -ECANCELED);
    CHECK_EQ(cio_task_uncancel(self), 0);
    /* ...while one that need not wait takes the item without suspending,
     * as asyncio's get() on a non-empty queue. */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(3)));
    CHECK_EQ(cio_task_cancel(self, NULL), 1);
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), 3);
    CHECK_ERR(cio_sleep(0), -ECANCELED);
    CHECK_EQ(cio_task_uncancel(self), 0);
    return NULL;
}

TEST(cancellation_requested_before_get) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, get_with_pending_cancel, NULL, NULL));
    CHECK(cio_queue_empty(q));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- deadlines ----------------------------------------------------------- */

static void *deadlines(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    void *item;
    double start = cio_loop_time(loop);
    CHECK_ERR(cio_queue_get_until(q, &item, start + 0.02), -ETIMEDOUT);
    CHECK(cio_loop_time(loop) - start >= 0.019);
    CHECK_ERR(cio_queue_get_until(q, &item, start - 1), -ETIMEDOUT); /* already past */
    CHECK_ERR(cio_queue_get_until(q, &item, NAN), -EINVAL);
    CHECK_OK(cio_queue_put_until(q, IPTR(1), CIO_NO_TIMEOUT));
    /* A deadline matters only if the call must wait. */
    CHECK_OK(cio_queue_put_until(q, IPTR(2), start - 1));
    CHECK(cio_queue_full(q));
    CHECK_ERR(cio_queue_put_until(q, IPTR(3), cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    CHECK_ERR(cio_queue_put_until(q, IPTR(3), NAN), -EINVAL);
    CHECK_EQ(cio_queue_size(q), 2);
    CHECK_ERR(cio_queue_join_until(q, cio_loop_time(loop) + 0.01), -ETIMEDOUT);
    CHECK_ERR(cio_queue_join_until(q, NAN), -EINVAL);
    CHECK_OK(cio_queue_get_until(q, &item, start - 1));
    CHECK_EQ(PTRI(item), 1);
    CHECK_OK(cio_queue_get_until(q, &item, CIO_NO_TIMEOUT));
    CHECK_EQ(PTRI(item), 2);
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_join_until(q, start - 1)); /* nothing unfinished */
    return NULL;
}

TEST(until_forms_time_out) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_queue_new(2, &q));
    CHECK_OK(test_run(loop, deadlines, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *getter_until(void *arg) {
    void *item;
    int rc = cio_queue_get_until(q, &item, *(double *)arg);
    if (rc < 0) return cio_raise(rc);
    note("u%d ", PTRI(item));
    return NULL;
}

static void *timed_out_getter_then_next(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    static double soon, late;
    soon = cio_loop_time(loop) + 0.01;
    late = CIO_NO_TIMEOUT;
    cio_task *a = spawn(getter_until, &soon);
    cio_task *b = spawn(getter_until, &late);
    CHECK_ERR(finish(a), -ETIMEDOUT); /* left the line */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(8)));
    CHECK_OK(finish(b));
    CHECK_STR(trace, "u8 ");
    /* A getter woken before its deadline but run after it still takes the
     * item: the deadline only ends a wait nothing answered. */
    soon = cio_loop_time(loop) + 0.005;
    a = spawn(getter_until, &soon);
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(9))); /* wakes a */
    while (cio_loop_time(loop) < soon + 0.005) {
    } /* the deadline passes before a runs */
    CHECK_OK(finish(a));
    CHECK_STR(trace, "u8 u9 ");
    return NULL;
}

TEST(timed_out_getter_leaves_and_woken_one_keeps_its_item) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, timed_out_getter_then_next, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- task_done and join ------------------------------------------------- */

static void *join_round(void *arg) {
    (void)arg;
    CHECK_OK(cio_queue_join(q)); /* nothing unfinished: at once */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    cio_task *j[3];
    for (int i = 0; i < 3; i++) j[i] = spawn(joiner, IPTR('a' + i));
    settle(2);
    CHECK_STR(trace, ""); /* all wait */
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK(cio_queue_empty(q));
    CHECK_OK(cio_queue_task_done(q));
    settle(2);
    CHECK_STR(trace, ""); /* getting is not enough: one is still unfinished */
    CHECK_OK(cio_queue_task_done(q));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE); /* ValueError */
    /* Woken joiners return even though an item is put before they run, as
     * asyncio's Event.wait. */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(3)));
    for (int i = 0; i < 3; i++) CHECK_OK(finish(j[i]));
    CHECK_STR(trace, "Ja Jb Jc ");
    /* And a new join waits for that item. */
    cio_task *k = spawn(joiner, IPTR('k'));
    settle(1);
    CHECK(!cio_future_done(k));
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(finish(k));
    return NULL;
}

TEST(task_done_and_join) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, join_round, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *cancelled_joiner(void *arg) {
    (void)arg;
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    cio_task *a = spawn(joiner, IPTR('a'));
    cio_task *b = spawn(joiner, IPTR('b'));
    settle(1);
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(finish(a), -ECANCELED);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(finish(b));
    CHECK_STR(trace, "Jb ");
    return NULL;
}

TEST(cancelled_joiner_leaves_the_others_waiting) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, cancelled_joiner, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- shutdown ------------------------------------------------------------ */

static int disposed_sum, disposed_count;
static void count_disposed(void *item, void *arg) {
    CHECK(arg == &disposed_sum);
    disposed_sum += PTRI(item);
    disposed_count++;
}

static void *plain_shutdown(void *arg) {
    (void)arg;
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    cio_task *p1 = spawn(putter, IPTR(3)); /* both wait: full */
    cio_task *p2 = spawn(putter, IPTR(4));
    cio_task *j = spawn(joiner, IPTR('j'));
    settle(1);
    CHECK_OK(cio_queue_shutdown(q, 0));
    CHECK_ERR(finish(p1), -CIO_ESHUTDOWN); /* waiting putters fail */
    CHECK_ERR(finish(p2), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(5)), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_put(q, IPTR(5)), -CIO_ESHUTDOWN);
    CHECK_EQ(cio_queue_size(q), 2);
    /* Gets drain what is left, then fail; join waits for task_done. */
    void *item;
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), 1);
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), 2);
    CHECK_ERR(cio_queue_get(q, &item), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_get_nowait(q, &item), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_get_until(q, &item, 0), -CIO_ESHUTDOWN);
    settle(1);
    CHECK(!cio_future_done(j));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_task_done(q)); /* task_done still works (3.13) */
    CHECK_OK(finish(j));
    CHECK_OK(cio_queue_join(q));
    CHECK_OK(cio_queue_shutdown(q, 0)); /* twice: harmless */
    CHECK_EQ(disposed_count, 0);        /* a plain shutdown discards nothing */
    return NULL;
}

TEST(shutdown_fails_puts_and_drains_gets) {
    cio_loop *loop = strict_loop();
    trace_reset();
    disposed_count = disposed_sum = 0;
    CHECK_OK(cio_queue_new(2, &q));
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed_sum));
    CHECK_OK(test_run(loop, plain_shutdown, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    CHECK_EQ(disposed_count, 0);
    cio_loop_free(loop);
}

static void *shutdown_wakes_getters(void *arg) {
    int immediate = PTRI(arg);
    cio_task *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(getter, IPTR('a' + i));
    settle(1);
    CHECK_OK(cio_queue_shutdown(q, immediate));
    for (int i = 0; i < 3; i++) CHECK_ERR(finish(t[i]), -CIO_ESHUTDOWN);
    return NULL;
}

TEST(shutdown_wakes_waiting_getters) {
    cio_loop *loop = strict_loop();
    for (int immediate = 0; immediate < 2; immediate++) {
        CHECK_OK(cio_queue_new(0, &q));
        CHECK_OK(test_run(loop, shutdown_wakes_getters, IPTR(immediate), NULL));
        CHECK_OK(cio_queue_free(q));
    }
    cio_loop_free(loop);
}

static void *drain_then_fail_waiters(void *arg) {
    (void)arg;
    /* Getters that wait while every item left is promised to woken ones are
     * woken to fail once the queue runs empty after a shutdown. */
    cio_task *a = spawn(getter, IPTR('a'));
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1))); /* wakes a: promised */
    CHECK_OK(cio_queue_shutdown(q, 0));
    cio_task *b = spawn(getter, IPTR('b')); /* waits: the item is a's */
    CHECK_OK(finish(a));
    CHECK_ERR(finish(b), -CIO_ESHUTDOWN);
    CHECK_STR(trace, "a1 ");
    return NULL;
}

TEST(getters_waiting_behind_promised_items_fail_once_drained) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(loop, drain_then_fail_waiters, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *immediate_shutdown(void *arg) {
    (void)arg;
    for (int i = 1; i <= 4; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item)); /* 1 is taken, not yet done */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(5)));
    cio_task *p = spawn(putter, IPTR(6)); /* waits: full */
    cio_task *j = spawn(joiner, IPTR('j'));
    settle(1);
    CHECK_OK(cio_queue_shutdown(q, 1));
    /* Every item left went to dispose and counts as done. */
    CHECK_EQ(disposed_count, 4);
    CHECK_EQ(disposed_sum, 2 + 3 + 4 + 5);
    CHECK(cio_queue_empty(q));
    CHECK_ERR(finish(p), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_get(q, &item), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_get_nowait(q, &item), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(7)), -CIO_ESHUTDOWN);
    /* 3.13: join still waits for the item taken before the shutdown. */
    settle(2);
    CHECK(!cio_future_done(j));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(finish(j));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    CHECK_OK(cio_queue_join(q));
    CHECK_OK(cio_queue_shutdown(q, 1)); /* twice: harmless, nothing left */
    CHECK_EQ(disposed_count, 4);
    return NULL;
}

TEST(immediate_shutdown_discards_through_dispose) {
    cio_loop *loop = strict_loop();
    disposed_count = disposed_sum = 0;
    CHECK_OK(cio_queue_new(4, &q));
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed_sum));
    CHECK_OK(test_run(loop, immediate_shutdown, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    CHECK_EQ(disposed_count, 4);
    cio_loop_free(loop);
}

static void *immediate_wakes_joiners(void *arg) {
    (void)arg;
    for (int i = 1; i <= 3; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    cio_task *j[2] = {spawn(joiner, IPTR('a')), spawn(joiner, IPTR('b'))};
    cio_task *g = spawn(getter, IPTR('g')); /* takes 1 at once */
    settle(1);
    CHECK_OK(cio_queue_task_done(q)); /* for g's item */
    CHECK_OK(cio_queue_shutdown(q, 0));
    settle(1);
    CHECK_STR(trace, "g1 "); /* a plain shutdown does not release join */
    CHECK_OK(cio_queue_shutdown(q, 1)); /* discards 2 and 3: unfinished 0 */
    CHECK_EQ(disposed_count, 2);
    for (int i = 0; i < 2; i++) CHECK_OK(finish(j[i]));
    CHECK_OK(finish(g));
    CHECK_STR(trace, "g1 Ja Jb ");
    return NULL;
}

TEST(immediate_shutdown_after_plain_one_releases_joiners) {
    cio_loop *loop = strict_loop();
    trace_reset();
    disposed_count = disposed_sum = 0;
    CHECK_OK(cio_priority_queue_new(0, cmp_tens, &q));
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed_sum));
    CHECK_OK(test_run(loop, immediate_wakes_joiners, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(immediate_shutdown_without_dispose_and_outside_a_loop) {
    cio_loop *loop = strict_loop();
    CHECK_OK(cio_lifo_queue_new(0, &q));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    CHECK_OK(cio_queue_shutdown(q, 1)); /* no dispose: items simply dropped */
    CHECK(cio_queue_empty(q));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE); /* all counted done */
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void redispose(void *item, void *arg) {
    (void)arg;
    disposed_count++;
    /* Puts are refused from now on; gets still work. */
    CHECK_ERR(cio_queue_put_nowait(q, item), -CIO_ESHUTDOWN);
    void *other;
    if (PTRI(item) == 1) {
        CHECK_OK(cio_queue_get_nowait(q, &other));
        disposed_sum += 100 * PTRI(other);
    }
}

TEST(dispose_may_call_back_into_the_queue) {
    cio_loop *loop = strict_loop();
    disposed_count = disposed_sum = 0;
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(cio_queue_set_dispose(q, redispose, NULL));
    for (int i = 1; i <= 3; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    CHECK_OK(cio_queue_shutdown(q, 1));
    CHECK_EQ(disposed_count, 2); /* 1 and 3; 2 was taken by the callback */
    CHECK_EQ(disposed_sum, 200);
    CHECK_OK(cio_queue_free(q));
    /* The same at free. */
    disposed_count = disposed_sum = 0;
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(cio_queue_set_dispose(q, redispose, NULL));
    for (int i = 1; i <= 3; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    CHECK_OK(cio_queue_free(q));
    CHECK_EQ(disposed_count, 2);
    CHECK_EQ(disposed_sum, 200);
    cio_loop_free(loop);
}

TEST(free_hands_items_left_to_dispose) {
    cio_loop *loop = strict_loop();
    for (int kind = 0; kind < 3; kind++) {
        disposed_count = disposed_sum = 0;
        if (kind == 0) CHECK_OK(cio_queue_new(0, &q));
        if (kind == 1) CHECK_OK(cio_lifo_queue_new(0, &q));
        if (kind == 2) CHECK_OK(cio_priority_queue_new(0, cmp_tens, &q));
        CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed_sum));
        for (int i = 1; i <= 100; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
        CHECK_OK(cio_queue_free(q));
        CHECK_EQ(disposed_count, 100);
        CHECK_EQ(disposed_sum, 5050);
    }
    /* Without a callback, or with it reset, items are just dropped. */
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed_sum));
    CHECK_OK(cio_queue_set_dispose(q, NULL, NULL));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_free(q));
    CHECK_EQ(disposed_count, 100);
    cio_loop_free(loop);
}

/* ---- freeing while tasks wait ----------------------------------------- */

static void *free_while_waited(void *arg) {
    (void)arg;
    CHECK_OK(cio_loop_set_exception_handler(cio_running_loop(), count_refusals, NULL));
    refused = 0;
    cio_task *g = spawn(getter, IPTR('g'));
    settle(1);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(5))); /* wakes g: unfinished 1 */
    cio_task *j = spawn(joiner, IPTR('j'));     /* will wait for that */
    CHECK_ERR(cio_queue_free(q), -EBUSY); /* g is woken but has not run: refused */
    CHECK_EQ(refused, 1);
    CHECK_OK(finish(g));
    CHECK(!cio_future_done(j));
    CHECK_ERR(cio_queue_free(q), -EBUSY); /* j waits: refused */
    CHECK_EQ(refused, 2);
    CHECK_OK(cio_queue_task_done(q)); /* wakes j */
    CHECK_ERR(cio_queue_free(q), -EBUSY); /* j has not run yet: refused */
    CHECK_EQ(refused, 3);
    CHECK_OK(finish(j));
    /* A putter too. */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2))); /* full: maxsize 2 */
    cio_task *p = spawn(putter, IPTR(3));
    settle(1);
    CHECK_ERR(cio_queue_free(q), -EBUSY);
    CHECK_EQ(refused, 4);
    CHECK_OK(cio_queue_shutdown(q, 1));
    CHECK_ERR(finish(p), -CIO_ESHUTDOWN);
    CHECK_STR(trace, "g5 Jj ");
    CHECK_OK(cio_queue_free(q)); /* nobody left: freed */
    q = NULL;
    CHECK_EQ(refused, 4);
    return NULL;
}

TEST(free_is_refused_while_tasks_wait_or_are_woken) {
    cio_loop *loop = test_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(2, &q));
    CHECK_OK(test_run(loop, free_while_waited, NULL, NULL));
    CHECK(q == NULL);
    cio_loop_free(loop);
}

static void *leave_a_getter(void *arg) {
    *(cio_task **)arg = spawn(getter, IPTR('x'));
    settle(1);
    return NULL;
}

TEST(free_outside_a_loop_is_refused_while_a_task_waits) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(0, &q));
    cio_task *g = NULL;
    CHECK_OK(test_run(loop, leave_a_getter, &g, NULL));
    CHECK(!cio_future_done(g));
    /* No loop runs: the refusal goes to the default handler (stderr). */
    CHECK_ERR(cio_queue_free(q), -EBUSY);
    CHECK_OK(cio_queue_put_nowait(q, IPTR(4))); /* still usable */
    CHECK_OK(cio_run_until_complete(loop, g, NULL));
    cio_future_unref(g);
    CHECK_STR(trace, "x4 ");
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- errors --------------------------------------------------------------- */

TEST(bad_arguments) {
    cio_loop *loop = strict_loop();
    void *item;
    cio_queue *bad = (cio_queue *)1;
    CHECK_ERR(cio_queue_new(0, NULL), -EINVAL);
    CHECK_ERR(cio_lifo_queue_new(0, NULL), -EINVAL);
    CHECK_ERR(cio_priority_queue_new(0, cmp_tens, NULL), -EINVAL);
    CHECK_ERR(cio_priority_queue_new(0, NULL, &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK_ERR(cio_queue_set_dispose(NULL, count_disposed, NULL), -EINVAL);
    CHECK_ERR(cio_queue_put(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_put_until(NULL, NULL, 0), -EINVAL);
    CHECK_ERR(cio_queue_put_nowait(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_get(NULL, &item), -EINVAL);
    CHECK_ERR(cio_queue_get_until(NULL, &item, 0), -EINVAL);
    CHECK_ERR(cio_queue_get_nowait(NULL, &item), -EINVAL);
    CHECK_ERR(cio_queue_task_done(NULL), -EINVAL);
    CHECK_ERR(cio_queue_join(NULL), -EINVAL);
    CHECK_ERR(cio_queue_join_until(NULL, 0), -EINVAL);
    CHECK_ERR(cio_queue_shutdown(NULL, 0), -EINVAL);
    CHECK_EQ(cio_queue_size(NULL), 0);
    CHECK_EQ(cio_queue_maxsize(NULL), 0);
    CHECK(!cio_queue_empty(NULL)); /* a predicate: 0 for NULL */
    CHECK(!cio_queue_full(NULL));
    CHECK_OK(cio_queue_free(NULL));
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_ERR(cio_queue_get(q, NULL), -EINVAL);
    CHECK_ERR(cio_queue_get_until(q, NULL, 0), -EINVAL);
    CHECK_ERR(cio_queue_get_nowait(q, NULL), -EINVAL);
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(waiting_calls_outside_a_task_return_eperm) {
    cio_loop *loop = strict_loop();
    void *item = IPTR(1);
    CHECK_OK(cio_queue_new(1, &q));
    CHECK_ERR(cio_queue_get(q, &item), -EPERM);
    CHECK(item == NULL);
    CHECK_ERR(cio_queue_get_until(q, &item, 0), -EPERM);
    CHECK_ERR(cio_queue_put(q, NULL), -EPERM);
    CHECK_ERR(cio_queue_put_until(q, NULL, 0), -EPERM);
    CHECK_ERR(cio_queue_join(q), -EPERM);
    CHECK_ERR(cio_queue_join_until(q, 0), -EPERM);
    /* Even when they would not wait: the rule does not depend on state. */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    CHECK_ERR(cio_queue_get(q, &item), -EPERM);
    CHECK_EQ(cio_queue_size(q), 1);
    /* The non-waiting calls work anywhere. */
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_shutdown(q, 0));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

static void *bind_to_loop(void *arg) {
    (void)arg;
    void *item;
    CHECK_ERR(cio_queue_get_until(q, &item, cio_loop_time(cio_running_loop()) + 0.001),
              -ETIMEDOUT);
    return NULL;
}

static void *use_from_other_loop(void *arg) {
    (void)arg;
    void *item;
    CHECK_ERR(cio_queue_get(q, &item), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_get_until(q, &item, 0), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_put(q, IPTR(1)), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_join(q), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(1)), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_get_nowait(q, &item), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_task_done(q), -CIO_EWRONGLOOP);
    CHECK_ERR(cio_queue_shutdown(q, 1), -CIO_EWRONGLOOP);
    CHECK_EQ(cio_queue_size(q), 1); /* nothing changed */
    return NULL;
}

static void *use_from_own_loop(void *arg) {
    (void)arg;
    void *item;
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_EQ(PTRI(item), 9);
    CHECK_OK(cio_queue_task_done(q));
    return NULL;
}

TEST(queue_binds_to_the_loop_of_its_first_waiter) {
    cio_loop *a = strict_loop();
    cio_loop *b = strict_loop();
    CHECK_OK(cio_queue_new(0, &q));
    CHECK_OK(test_run(a, bind_to_loop, NULL, NULL));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(9))); /* outside any loop: fine */
    CHECK_OK(test_run(b, use_from_other_loop, NULL, NULL));
    CHECK_OK(test_run(a, use_from_own_loop, NULL, NULL));
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(a);
    cio_loop_free(b);
}

/* ---- allocation failures ------------------------------------------------ */

TEST(allocation_failures_change_nothing) {
    cio_loop *loop = strict_loop();
    cio_queue *bad = (cio_queue *)1;
    cio__fault_arm(1);
    CHECK_ERR(cio_queue_new(0, &bad), -ENOMEM);
    cio__fault_arm(0);
    CHECK(bad == NULL);
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0) CHECK_OK(cio_queue_new(0, &q));
        if (kind == 1) CHECK_OK(cio_lifo_queue_new(0, &q));
        if (kind == 2) CHECK_OK(cio_priority_queue_new(0, cmp_tens, &q));
        /* The first put allocates; so does the one that outgrows 8 slots. */
        cio__fault_arm(1);
        CHECK_ERR(cio_queue_put_nowait(q, IPTR(100)), -ENOMEM);
        cio__fault_arm(0);
        CHECK(cio_queue_empty(q));
        CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE); /* not counted */
        for (int i = 0; i < 8; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i * 10)));
        cio__fault_arm(1);
        CHECK_ERR(cio_queue_put_nowait(q, IPTR(1000)), -ENOMEM);
        cio__fault_arm(0);
        CHECK_EQ(cio_queue_size(q), 8);
        CHECK_OK(cio_queue_put_nowait(q, IPTR(80)));
        int fifo[] = {0, 10, 20, 30, 40, 50, 60, 70, 80};
        int lifo[] = {80, 70, 60, 50, 40, 30, 20, 10, 0};
        drain_expect(kind == 1 ? lifo : fifo, 9);
        for (int i = 0; i < 9; i++) CHECK_OK(cio_queue_task_done(q));
        CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
        CHECK_OK(cio_queue_free(q));
    }
    cio_loop_free(loop);
}

static void *woken_putter_without_memory(void *arg) {
    (void)arg;
    /* Fill past the kept buffer size, so that draining releases the
     * buffer and the woken putter must allocate again. */
    for (int i = 0; i < 2000; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(i)));
    cio_task *a = spawn(putter, IPTR(-1));
    cio_task *b = spawn(putter, IPTR(-2));
    settle(1);
    void *item;
    for (int i = 0; i < 2000; i++) {
        CHECK_OK(cio_queue_get_nowait(q, &item));
        CHECK_OK(cio_queue_task_done(q));
    }
    /* Putters -1 and -2 are woken (two slots are free); the next allocation,
     * the first putter's, fails. */
    cio__fault_arm(1);
    CHECK_ERR(finish(a), -ENOMEM);
    cio__fault_arm(0);
    CHECK_OK(finish(b));
    CHECK_EQ(cio_queue_size(q), 1);
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), -2);
    CHECK_OK(cio_queue_task_done(q));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    return NULL;
}

TEST(woken_putter_that_cannot_allocate_fails_and_passes_the_slot_on) {
    cio_loop *loop = strict_loop();
    trace_reset();
    CHECK_OK(cio_queue_new(2000, &q));
    CHECK_OK(test_run(loop, woken_putter_without_memory, NULL, NULL));
    CHECK_STR(trace, "+-2 ");
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

/* ---- stress: producers, consumers and random cancels ------------------- */

#define ITEMS 3000
#define PRODUCERS 4
#define CONSUMERS 6
static int delivered[ITEMS];
static int never_put[ITEMS];
static int produced_count;
static int cancels, timeouts, barges;

/* A deadline that often passes before the wait is answered: now, or a
 * tenth or a fifth of a millisecond from now. */
static double soon(cio_loop *loop) {
    return cio_loop_time(loop) + (double)(rnd() % 3) * 0.0001;
}

/* Puts item by one of the four ways at random; 0 or the error. */
static int stress_put(int item) {
    cio_loop *loop = cio_running_loop();
    switch (rnd() % 4) {
    case 0:
    case 1: return cio_queue_put(q, IPTR(item + 1));
    case 2: return cio_queue_put_until(q, IPTR(item + 1), soon(loop));
    default:
        for (;;) {
            int rc = cio_queue_put_nowait(q, IPTR(item + 1));
            if (rc != -EAGAIN) return rc;
            barges++;
            rc = cio_sleep(0);
            if (rc < 0) return rc;
        }
    }
}

static void *stress_producer(void *arg) {
    (void)arg;
    while (produced_count < ITEMS) {
        int item = produced_count++;
        int rc = stress_put(item);
        if (rc == -ETIMEDOUT) timeouts++;
        if (rc < 0) {
            never_put[item] = 1; /* the put failed: the item is not queued */
            return rc == -ETIMEDOUT ? NULL : cio_raise(rc);
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    for (;;) {
        void *item = NULL;
        int rc;
        switch (rnd() % 4) {
        case 0:
        case 1: rc = cio_queue_get(q, &item); break;
        case 2: rc = cio_queue_get_until(q, &item, soon(loop)); break;
        default:
            rc = cio_queue_get_nowait(q, &item);
            if (rc == -EAGAIN) {
                rc = cio_sleep(0);
                if (rc < 0) return cio_raise(rc);
                continue;
            }
            break;
        }
        if (rc == -ETIMEDOUT) {
            timeouts++;
            continue;
        }
        if (rc < 0) {
            CHECK(item == NULL); /* a failed get took nothing */
            return cio_raise(rc);
        }
        CHECK(item != NULL);
        delivered[PTRI(item) - 1]++;
        CHECK_OK(cio_queue_task_done(q));
        if (rnd() % 4 == 0 && cio_sleep(0) < 0) return cio_raise(-ECANCELED);
    }
}

static void *stress(void *arg) {
    (void)arg;
    cio_task *prod[PRODUCERS] = {0}, *cons[CONSUMERS] = {0};
    while (produced_count < ITEMS) {
        for (int i = 0; i < PRODUCERS; i++)
            if (!prod[i] || cio_future_done(prod[i])) {
                cio_future_unref(prod[i]);
                prod[i] = spawn(stress_producer, NULL);
            }
        for (int i = 0; i < CONSUMERS; i++)
            if (!cons[i] || cio_future_done(cons[i])) {
                cio_future_unref(cons[i]);
                cons[i] = spawn(stress_consumer, NULL);
            }
        /* Sometimes take or add an item ourselves, between the others. */
        if (rnd() % 5 == 0) {
            void *item;
            if (cio_queue_get_nowait(q, &item) == 0) {
                delivered[PTRI(item) - 1]++;
                CHECK_OK(cio_queue_task_done(q));
            }
        }
        CHECK_OK(cio_sleep(0));
        /* Cancel one or two tasks, often right after they were woken. */
        for (int n = (int)(rnd() % 3); n > 0; n--) {
            cio_task *victim = rnd() % 2 ? prod[rnd() % PRODUCERS] : cons[rnd() % CONSUMERS];
            if (cio_task_cancel(victim, NULL) == 1) cancels++;
        }
    }
    /* Stop everyone; what is left in the queue was never delivered. */
    for (int i = 0; i < PRODUCERS; i++) {
        cio_task_cancel(prod[i], NULL);
        cio_await(prod[i], NULL);
        cio_future_unref(prod[i]);
    }
    for (int i = 0; i < CONSUMERS; i++) {
        cio_task_cancel(cons[i], NULL);
        cio_await(cons[i], NULL);
        cio_future_unref(cons[i]);
    }
    void *item;
    while (cio_queue_get_nowait(q, &item) == 0) {
        delivered[PTRI(item) - 1]++;
        CHECK_OK(cio_queue_task_done(q));
    }
    /* Every put was matched by a task_done: join returns at once. */
    CHECK_OK(cio_queue_join(q));
    /* No promise is left behind: a new getter and putter work normally. */
    cio_task *g = spawn(getter, IPTR('z'));
    settle(1);
    CHECK_OK(cio_queue_put(q, IPTR(ITEMS + 1)));
    CHECK_OK(finish(g));
    for (int i = 0; i < (int)cio_queue_maxsize(q); i++)
        CHECK_OK(cio_queue_put_nowait(q, IPTR(i + 1)));
    cio_task *p = spawn(putter, IPTR(1));
    settle(1);
    CHECK_OK(cio_queue_get(q, &item));
    CHECK_OK(finish(p));
    CHECK_OK(cio_queue_shutdown(q, 1));
    return NULL;
}

static void run_stress(int kind) {
    cio_loop *loop = strict_loop();
    rng_state = 0x2545f4914f6cdd1du + (uint64_t)kind;
    memset(delivered, 0, sizeof delivered);
    memset(never_put, 0, sizeof never_put);
    produced_count = cancels = timeouts = barges = 0;
    trace_reset();
    if (kind == 0) CHECK_OK(cio_queue_new(3, &q));
    if (kind == 1) CHECK_OK(cio_lifo_queue_new(3, &q));
    if (kind == 2) CHECK_OK(cio_priority_queue_new(3, cmp_tens, &q));
    CHECK_OK(test_run(loop, stress, NULL, NULL));
    int not_put = 0;
    for (int i = 0; i < ITEMS; i++) {
        int expected = never_put[i] ? 0 : 1;
        not_put += never_put[i];
        if (delivered[i] != expected)
            FAIL("item %d delivered %d times (put %s)", i + 1, delivered[i],
                 never_put[i] ? "failed" : "done");
    }
    CHECK_INT(not_put, <, ITEMS / 2);
    CHECK_INT(cancels, >, 100);
    CHECK_INT(timeouts, >, 0);
    CHECK_INT(barges, >, 0);
    CHECK_OK(cio_queue_free(q));
    cio_loop_free(loop);
}

TEST(stress_fifo_random_cancels_deliver_every_item_exactly_once) {
    run_stress(0);
}

TEST(stress_lifo_random_cancels_deliver_every_item_exactly_once) {
    run_stress(1);
}

TEST(stress_priority_random_cancels_deliver_every_item_exactly_once) {
    run_stress(2);
}
