/* Queue, LifoQueue and PriorityQueue, with task_done/join and shutdown. */
#include "test.h"

#include "internal.h"

static cio_queue *q;

static int cmp_int(const void *a, const void *b) {
    int x = PTRI(a) / 10, y = PTRI(b) / 10; /* compare tens only: ties */
    return (x > y) - (x < y);
}

TEST(orders_fifo_lifo_priority) {
    int values[] = {31, 12, 35, 11, 20};
    int fifo[] = {31, 12, 35, 11, 20};
    int lifo[] = {20, 11, 35, 12, 31};
    int prio[] = {12, 11, 20, 31, 35}; /* by tens, ties in insertion order */
    int *expect[] = {fifo, lifo, prio};
    for (int kind = 0; kind < 3; kind++) {
        if (kind == 0) CHECK_OK(cio_queue_new(&q, 0));
        if (kind == 1) CHECK_OK(cio_lifo_queue_new(&q, 0));
        if (kind == 2) CHECK_OK(cio_priority_queue_new(&q, 0, cmp_int));
        for (int i = 0; i < 5; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(values[i])));
        CHECK_EQ(cio_queue_size(q), 5);
        for (int i = 0; i < 5; i++) {
            void *item;
            CHECK_OK(cio_queue_get_nowait(q, &item));
            CHECK_EQ(PTRI(item), expect[kind][i]);
        }
        void *item;
        CHECK_ERR(cio_queue_get_nowait(q, &item), -EAGAIN);
        CHECK(cio_queue_empty(q));
        cio_queue_free(q);
    }
    CHECK_ERR(cio_priority_queue_new(&q, 0, NULL), -EINVAL);
}

TEST(many_items_grow_the_buffer_in_order) {
    CHECK_OK(cio_queue_new(&q, 0));
    /* Interleave puts and gets so the ring wraps while it grows. */
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 37; i++) CHECK_OK(cio_queue_put_nowait(q, IPTR(next_in++)));
        for (int i = 0; i < 20; i++) {
            void *item;
            CHECK_OK(cio_queue_get_nowait(q, &item));
            CHECK_EQ(PTRI(item), next_out++);
        }
    }
    CHECK_EQ(cio_queue_size(q), (size_t)(next_in - next_out));
    cio_queue_free(q);
}

static void *producer(void *arg) {
    int base = PTRI(arg);
    for (int i = 0; i < 10; i++) {
        int rc = cio_queue_put(q, IPTR(base + i));
        if (rc < 0) return cio_raise(rc);
    }
    return NULL;
}

static int got[400];
static int got_count;

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(q, &item);
        if (rc == -CIO_ESHUTDOWN) return NULL;
        if (rc < 0) return cio_raise(rc);
        got[got_count++] = PTRI(item);
        CHECK_OK(cio_queue_task_done(q));
    }
}

static void *bounded_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *p[3], *c[2];
    for (int i = 0; i < 3; i++) CHECK_OK(cio_spawn(loop, producer, IPTR(100 * (i + 1)), &p[i]));
    for (int i = 0; i < 2; i++) CHECK_OK(cio_spawn(loop, consumer, NULL, &c[i]));
    for (int i = 0; i < 3; i++) CHECK_OK(cio_await(p[i], NULL));
    CHECK_OK(cio_queue_join(q));
    CHECK_EQ(got_count, 30);
    CHECK_OK(cio_queue_shutdown(q, 0));
    for (int i = 0; i < 2; i++) CHECK_OK(cio_await(c[i], NULL));
    for (int i = 0; i < 3; i++) cio_future_release(p[i]);
    for (int i = 0; i < 2; i++) cio_future_release(c[i]);
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(1)), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_put(q, IPTR(1)), -CIO_ESHUTDOWN);
    return NULL;
}

TEST(bounded_queue_with_producers_and_consumers) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 2));
    got_count = 0;
    CHECK_OK(test_run(loop, bounded_round, NULL, NULL));
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
    cio_queue_free(q);
    cio_loop_free(loop);
}

static void *getter(void *arg) {
    void *item;
    int rc = cio_queue_get(q, &item);
    if (rc < 0) return cio_raise(rc);
    got[got_count++] = PTRI(item) * 10 + PTRI(arg);
    return NULL;
}

static void *cancelled_getter_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, getter, IPTR(1), &a));
    CHECK_OK(cio_spawn(loop, getter, IPTR(2), &b));
    CHECK_OK(cio_sleep(0)); /* both wait, a first */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(7))); /* wakes a */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);  /* a is cancelled before it runs */
    CHECK_ERR(cio_await(a, NULL), -ECANCELED);
    CHECK_OK(cio_await(b, NULL)); /* the item went to b */
    CHECK_EQ(got_count, 1);
    CHECK_EQ(got[0], 72);
    CHECK(cio_queue_empty(q));
    cio_future_release(a);
    cio_future_release(b);
    return NULL;
}

TEST(cancelled_getter_never_eats_an_item) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 0));
    got_count = 0;
    CHECK_OK(test_run(loop, cancelled_getter_round, NULL, NULL));
    cio_queue_free(q);
    cio_loop_free(loop);
}

static void *putter(void *arg) {
    int rc = cio_queue_put(q, arg);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *cancelled_putter_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1))); /* full (maxsize 1) */
    CHECK(cio_queue_full(q));
    CHECK_ERR(cio_queue_put_nowait(q, IPTR(9)), -EAGAIN);
    cio_task *a, *b;
    CHECK_OK(cio_spawn(loop, putter, IPTR(2), &a));
    CHECK_OK(cio_spawn(loop, putter, IPTR(3), &b));
    CHECK_OK(cio_sleep(0));
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item)); /* frees a slot, wakes a */
    CHECK_EQ(cio_task_cancel(a, NULL), 1);
    CHECK_ERR(cio_await(a, NULL), -ECANCELED);
    CHECK_OK(cio_await(b, NULL)); /* the slot went to b */
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_EQ(PTRI(item), 3);
    cio_future_release(a);
    cio_future_release(b);
    /* Deadlines. */
    CHECK_ERR(cio_queue_get_until(q, &item, cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    CHECK_OK(cio_queue_put(q, IPTR(4)));
    CHECK_ERR(cio_queue_put_until(q, IPTR(5), cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    CHECK_EQ(cio_queue_size(q), 1);
    return NULL;
}

TEST(cancelled_putter_never_eats_a_slot) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 1));
    CHECK_EQ(cio_queue_maxsize(q), 1);
    CHECK_OK(test_run(loop, cancelled_putter_round, NULL, NULL));
    cio_queue_free(q);
    cio_loop_free(loop);
}

static void *join_round(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_queue_join(q)); /* nothing unfinished: at once */
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    CHECK_ERR(cio_queue_join_until(q, cio_loop_time(loop) + 0.005), -ETIMEDOUT);
    void *item;
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_OK(cio_queue_get_nowait(q, &item));
    CHECK_OK(cio_queue_task_done(q));
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    CHECK_OK(cio_queue_join(q));
    return NULL;
}

TEST(task_done_and_join) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 0));
    CHECK_OK(test_run(loop, join_round, NULL, NULL));
    cio_queue_free(q);
    cio_loop_free(loop);
}

static int disposed;
static void count_disposed(void *item, void *arg) {
    CHECK(arg == &disposed);
    disposed += PTRI(item);
}

static void *joiner(void *arg) {
    (void)arg;
    int rc = cio_queue_join(q);
    return rc < 0 ? cio_raise(rc) : NULL;
}

static void *shutdown_round(void *arg) {
    int immediate = PTRI(arg);
    cio_loop *loop = cio_running_loop();
    CHECK_OK(cio_queue_put_nowait(q, IPTR(1)));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(2)));
    cio_task *p, *j;
    CHECK_OK(cio_spawn(loop, putter, IPTR(4), &p)); /* waits: full */
    CHECK_OK(cio_spawn(loop, joiner, NULL, &j));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_queue_shutdown(q, immediate));
    CHECK_ERR(cio_await(p, NULL), -CIO_ESHUTDOWN); /* the waiting putter fails */
    void *item;
    if (!immediate) {
        /* Gets drain what is left, then fail. */
        CHECK_OK(cio_queue_get(q, &item));
        CHECK_EQ(PTRI(item), 1);
        CHECK_OK(cio_queue_get(q, &item));
        CHECK_EQ(PTRI(item), 2);
        CHECK_OK(cio_queue_task_done(q));
        CHECK_OK(cio_queue_task_done(q));
    } else {
        CHECK_EQ(disposed, 3); /* both items went to dispose */
    }
    CHECK_ERR(cio_queue_get(q, &item), -CIO_ESHUTDOWN);
    CHECK_ERR(cio_queue_get_nowait(q, &item), -CIO_ESHUTDOWN);
    CHECK_OK(cio_await(j, NULL)); /* join returns: nothing unfinished */
    cio_future_release(p);
    cio_future_release(j);
    return NULL;
}

TEST(shutdown_drains_then_fails) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 2));
    CHECK_OK(test_run(loop, shutdown_round, IPTR(0), NULL));
    cio_queue_free(q);
    cio_loop_free(loop);
}

TEST(immediate_shutdown_discards_through_dispose) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 2));
    disposed = 0;
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed));
    CHECK_OK(test_run(loop, shutdown_round, IPTR(1), NULL));
    cio_queue_free(q);
    /* Freeing a queue hands what is left to dispose. */
    CHECK_OK(cio_queue_new(&q, 0));
    CHECK_OK(cio_queue_set_dispose(q, count_disposed, &disposed));
    CHECK_OK(cio_queue_put_nowait(q, IPTR(10)));
    cio_queue_free(q);
    CHECK_EQ(disposed, 13);
    cio_loop_free(loop);
}

static void *getter_shutdown(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *g;
    CHECK_OK(cio_spawn(loop, getter, IPTR(0), &g));
    CHECK_OK(cio_sleep(0));
    CHECK_OK(cio_queue_shutdown(q, 0));
    CHECK_ERR(cio_await(g, NULL), -CIO_ESHUTDOWN);
    cio_future_release(g);
    return NULL;
}

TEST(shutdown_wakes_waiting_getters) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 0));
    CHECK_OK(test_run(loop, getter_shutdown, NULL, NULL));
    cio_queue_free(q);
    cio_loop_free(loop);
}

TEST(errors) {
    void *item;
    CHECK_ERR(cio_queue_new(NULL, 0), -EINVAL);
    CHECK_OK(cio_queue_new(&q, 0));
    CHECK_ERR(cio_queue_get(q, &item), -EPERM);
    CHECK_ERR(cio_queue_put(q, NULL), -EPERM);
    CHECK_ERR(cio_queue_join(q), -EPERM);
    CHECK_ERR(cio_queue_get_nowait(q, NULL), -EINVAL);
    CHECK_ERR(cio_queue_put_nowait(NULL, NULL), -EINVAL);
    CHECK_ERR(cio_queue_task_done(q), -CIO_EINVALSTATE);
    cio_queue_free(q);
    cio_queue_free(NULL);
}

/* ---- stress: producers, consumers and random cancels ------------------- */

#define ITEMS 3000
static int delivered[ITEMS];
static int never_put[ITEMS];
static int produced_count;
static uint64_t rng = 0x2545f4914f6cdd1du;
static unsigned rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static void *stress_producer(void *arg) {
    (void)arg;
    while (produced_count < ITEMS) {
        int item = produced_count++;
        int rc = cio_queue_put(q, IPTR(item + 1));
        if (rc < 0) {
            never_put[item] = 1; /* cancelled: the item was not put */
            return cio_raise(rc);
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg) {
    (void)arg;
    for (;;) {
        void *item;
        int rc = cio_queue_get(q, &item);
        if (rc < 0) return cio_raise(rc); /* cancelled: took nothing */
        delivered[PTRI(item) - 1]++;
        if (rnd() % 4 == 0 && cio_sleep(0) < 0) return cio_raise(-ECANCELED);
    }
}

static void *stress(void *arg) {
    (void)arg;
    cio_loop *loop = cio_running_loop();
    cio_task *prod[4] = {0}, *cons[6] = {0};
    int cancels = 0;
    while (produced_count < ITEMS) {
        for (int i = 0; i < 4; i++)
            if (!prod[i] || cio_future_done(prod[i])) {
                cio_future_release(prod[i]);
                CHECK_OK(cio_spawn(loop, stress_producer, NULL, &prod[i]));
            }
        for (int i = 0; i < 6; i++)
            if (!cons[i] || cio_future_done(cons[i])) {
                cio_future_release(cons[i]);
                CHECK_OK(cio_spawn(loop, stress_consumer, NULL, &cons[i]));
            }
        CHECK_OK(cio_sleep(0));
        if (rnd() % 3 == 0) {
            cio_task *victim = rnd() % 2 ? prod[rnd() % 4] : cons[rnd() % 6];
            if (cio_task_cancel(victim, NULL) == 1) cancels++;
        }
    }
    /* Stop everyone; what is left in the queue was never delivered. */
    for (int i = 0; i < 4; i++) {
        cio_task_cancel(prod[i], NULL);
        cio_await(prod[i], NULL);
        cio_future_release(prod[i]);
    }
    for (int i = 0; i < 6; i++) {
        cio_task_cancel(cons[i], NULL);
        cio_await(cons[i], NULL);
        cio_future_release(cons[i]);
    }
    void *item;
    while (cio_queue_get_nowait(q, &item) == 0) delivered[PTRI(item) - 1]++;
    CHECK_INT(cancels, >, 50);
    return NULL;
}

TEST(random_cancels_deliver_every_item_exactly_once) {
    cio_loop *loop = test_loop();
    CHECK_OK(cio_queue_new(&q, 3));
    CHECK_OK(test_run(loop, stress, NULL, NULL));
    int lost_to_cancelled_puts = 0;
    for (int i = 0; i < ITEMS; i++) {
        int expected = never_put[i] ? 0 : 1;
        lost_to_cancelled_puts += never_put[i];
        if (delivered[i] != expected)
            FAIL("item %d delivered %d times (put %s)", i + 1, delivered[i],
                 never_put[i] ? "cancelled" : "done");
    }
    CHECK_INT(lost_to_cancelled_puts, <, ITEMS / 2);
    cio_queue_free(q);
    cio_loop_free(loop);
}
